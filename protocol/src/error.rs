//! The error codes of docs/protocol.md: the `code` of an `error` frame or an
//! error `reply` on either socket, and of every refusal over HTTP (a
//! handshake refused before the upgrade, a JSON API error). Codes are
//! public API and meant for programs; the message beside one is for people.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Declares [`ErrorCode`] with each variant's wire name written out, so that
/// `ErrorCode::ALL` and [`ErrorCode::as_str`] cannot miss a variant.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// A stable error code, written on the wire in snake_case.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order declared: what the tests hold
            /// docs/protocol.md and serde to.
            #[cfg(test)]
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as the wire writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                }
            }
        }
    };
}

error_codes! {
    // Both sockets (docs/protocol.md §1, §2).
    /// A frame that is not a request: malformed JSON, not an object, no `op`,
    /// a missing or mistyped field, a bad `ref`, a binary message.
    BadFrame = "bad_frame",
    /// An `op` the server does not know.
    UnknownOp = "unknown_op",
    /// A frame over the socket's soft size limit.
    FrameTooLarge = "frame_too_large",
    /// The server failed; trying again may work. Also the JSON API's 500.
    Internal = "internal",

    // The client socket (§1).
    /// Over the connection's rate.
    RateLimited = "rate_limited",
    /// Not a topic, or a topic of the wrong kind for the request.
    BadTopic = "bad_topic",
    /// The socket has not joined that topic.
    NotJoined = "not_joined",
    /// `join` of a lot that does not exist.
    NoSuchTopic = "no_such_topic",
    /// `join` of a topic beyond those a socket may hold.
    TooManyTopics = "too_many_topics",
    /// `signal` to a connection that is not in the room.
    NotInTopic = "not_in_topic",
    /// `say` with a blank text.
    EmptyText = "empty_text",
    /// `say` with a text over `chat.max_text` characters.
    TextTooLong = "text_too_long",
    /// `say` with control characters.
    BadText = "bad_text",
    /// `signal` data over 16 KiB.
    SignalTooLarge = "signal_too_large",
    /// A guest's bid, or a request after the account logged out.
    NotLoggedIn = "not_logged_in",
    /// A bid on a lot that is not running.
    LotNotOpen = "lot_not_open",
    /// A bid's amount or maximum out of range.
    InvalidAmount = "invalid_amount",
    /// A bid whose maximum is below its amount.
    BidAboveMax = "bid_above_max",
    /// A bid whose maximum is below the lot's minimum next bid.
    BidTooLow = "bid_too_low",
    /// The leader bid again without raising their maximum.
    OwnBidIsHighest = "own_bid_is_highest",
    /// The lot vanished while the bid was placed.
    LotNotFound = "lot_not_found",
    /// The lot took too many bids at once; try again.
    Busy = "busy",
    /// Something the request needs is cut off for now (in a cluster, the
    /// bus). Also the JSON API's 503.
    Unavailable = "unavailable",

    // The worker socket (§2).
    /// A worker's frame before its `hello`.
    HelloRequired = "hello_required",
    /// A result whose items or links break the rules.
    InvalidResult = "invalid_result",

    // Refusals over HTTP, before an upgrade or from the JSON API (§3).
    /// A socket opened from a page of another origin.
    ForbiddenOrigin = "forbidden_origin",
    /// No login session, guest name or token where one is needed.
    Unauthorized = "unauthorized",
    /// A guest name that breaks the rules.
    BadName = "bad_name",
    /// A request that is not a valid WebSocket upgrade.
    BadHandshake = "bad_handshake",
    /// The node holds as many sockets as it takes.
    ServerFull = "server_full",
    /// The client's address holds as many sockets as it may.
    TooManySockets = "too_many_sockets",
    /// The node is handing over and opens no socket.
    Draining = "draining",
    /// Nothing at that address.
    NotFound = "not_found",
    /// A query string, path, form or body that does not parse or breaks a rule.
    BadRequest = "bad_request",
    /// The caller may not do that.
    Forbidden = "forbidden",
    /// The object is not in a state the call applies to.
    Conflict = "conflict",
    /// Too many calls; wait before the next.
    TooManyRequests = "too_many_requests",
    /// A body over its limit.
    TooLarge = "too_large",
    /// A body of a media type the call does not take.
    UnsupportedMediaType = "unsupported_media_type",
}

/// A request refused: the code for programs and the message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// The body of a refusal over HTTP: `{"error":{"code":...,"message":...}}`.
    pub fn http_body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::doc_examples;

    #[test]
    fn each_code_is_written_and_read_as_its_name() {
        for &code in ErrorCode::ALL {
            let written = serde_json::to_value(code).expect("json");
            assert_eq!(written, code.as_str(), "{code:?}");
            let read: ErrorCode = serde_json::from_value(written).expect("read back");
            assert_eq!(read, code);
        }
    }

    /// The codes docs/protocol.md lists in its code tables are exactly the
    /// codes the server sends: a code added, renamed or dropped on one side
    /// only fails here.
    #[test]
    fn the_protocol_tables_list_every_code_and_no_other() {
        let doc = doc_examples::protocol();
        let documented = doc_examples::error_codes(&doc);
        let sent: BTreeSet<String> = ErrorCode::ALL
            .iter()
            .map(|code| code.as_str().to_owned())
            .collect();
        assert_eq!(documented, sent);
    }

    #[test]
    fn an_http_refusal_has_the_api_error_shape() {
        let refusal = Refusal::new(ErrorCode::TooManySockets, "close one first");
        assert_eq!(
            refusal.http_body().to_string(),
            r#"{"error":{"code":"too_many_sockets","message":"close one first"}}"#
        );
    }
}
