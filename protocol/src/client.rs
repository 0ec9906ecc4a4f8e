//! The client protocol (docs/protocol.md §1): requests browsers and other
//! clients send on `GET /ws`, and the events and replies the server sends
//! back. Each outgoing frame is encoded here, once, into shared bytes.

use bytestring::ByteString;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ErrorCode, Refusal};
use crate::frame::{self, Refs, Unread};

/// A request, parsed from one text frame.
#[derive(Debug, Clone, PartialEq, Deserialize)]
// Written back only by the tests that hold docs/protocol.md to the parser.
#[cfg_attr(test, derive(Serialize))]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Join {
        topic: String,
        #[serde(default)]
        since: Option<u64>,
    },
    Leave {
        topic: String,
    },
    Say {
        topic: String,
        text: String,
    },
    Typing {
        topic: String,
    },
    Bid {
        topic: String,
        amount_cents: i64,
        #[serde(default)]
        max_cents: Option<i64>,
    },
    Signal {
        topic: String,
        to: String,
        data: Value,
    },
    Ping,
}

/// The ops a client may send.
const OPS: [&str; 7] = ["join", "leave", "say", "typing", "bid", "signal", "ping"];

/// A request with the `ref` its reply must carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub reference: Option<String>,
    pub request: Request,
}

/// Parses a frame, telling malformed JSON, unknown ops and wrong types apart.
pub fn parse(text: &str) -> Result<Envelope, Unread> {
    let read = frame::parse_op_frame(text, &OPS, Refs::Read)?;
    Ok(Envelope {
        reference: read.reference,
        request: read.frame,
    })
}

/// A member of a topic, as presence lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub conn: String,
    pub user: String,
}

/// A chat message as events and history carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: i64,
    pub seq: u64,
    pub user: String,
    pub text: String,
    pub at: String,
}

/// Times on the wire: RFC 3339, UTC, milliseconds.
pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn encode(value: &impl Serialize) -> ByteString {
    // Serializing these plain structs cannot fail; an empty frame would
    // only ever be a bug, and the client ignores it.
    serde_json::to_string(value).unwrap_or_default().into()
}

#[derive(Serialize)]
struct Reply<'a, B: Serialize> {
    op: &'static str,
    #[serde(rename = "ref")]
    reference: &'a str,
    status: &'static str,
    body: B,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: ErrorCode,
    message: &'a str,
}

pub fn reply_ok(reference: &str, body: &impl Serialize) -> ByteString {
    encode(&Reply {
        op: "reply",
        reference,
        status: "ok",
        body,
    })
}

pub fn reply_error(reference: &str, refusal: &Refusal) -> ByteString {
    encode(&Reply {
        op: "reply",
        reference,
        status: "error",
        body: ErrorBody {
            code: refusal.code,
            message: &refusal.message,
        },
    })
}

/// An `error` frame: the answer to a frame that had no `ref`.
pub fn error(refusal: &Refusal) -> ByteString {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        code: ErrorCode,
        message: &'a str,
    }
    encode(&Frame {
        op: "error",
        code: refusal.code,
        message: &refusal.message,
    })
}

pub fn message(topic: &str, message: &MessageView) -> ByteString {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        topic: &'a str,
        #[serde(flatten)]
        message: &'a MessageView,
    }
    encode(&Frame {
        op: "message",
        topic,
        message,
    })
}

pub fn presence(topic: &str, joins: &[MemberView], leaves: &[MemberView]) -> ByteString {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        topic: &'a str,
        joins: &'a [MemberView],
        leaves: &'a [MemberView],
    }
    encode(&Frame {
        op: "presence",
        topic,
        joins,
        leaves,
    })
}

pub fn typing(topic: &str, users: &[&str]) -> ByteString {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        topic: &'a str,
        users: &'a [&'a str],
    }
    encode(&Frame {
        op: "typing",
        topic,
        users,
    })
}

pub fn signal(topic: &str, from: &str, data: &Value) -> ByteString {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        topic: &'a str,
        from: &'a str,
        data: &'a Value,
    }
    encode(&Frame {
        op: "signal",
        topic,
        from,
        data,
    })
}

/// An account as the `session` event shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: i64,
    pub name: String,
    pub display_name: String,
}

/// `{"op":"session","user":{...}}` after an account change, or with
/// `user: null` after logging out.
pub fn session(user: Option<&UserView>) -> ByteString {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        user: Option<&'a UserView>,
    }
    encode(&Frame {
        op: "session",
        user,
    })
}

/// A row of a lot's bids, as `bid` events and the lot's join reply list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidView {
    pub seq: i64,
    pub bidder: String,
    pub amount_cents: i64,
    pub proxy: bool,
    pub at: String,
}

/// `bid`: a bid moved a lot's price. The bid's last row goes on top, and
/// `state` is the lot after it. A bid that wrote no rows (the leader raised
/// their maximum silently) moved no price: that is a `lot` event.
pub fn bid(topic: &str, seq: u64, ends_at: &str, rows: &[BidView], state: &Value) -> ByteString {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        topic: &'a str,
        seq: u64,
        amount_cents: i64,
        bidder: &'a str,
        proxy: bool,
        ends_at: &'a str,
        at: &'a str,
        rows: &'a [BidView],
        lot: &'a Value,
    }
    let Some(last) = rows.last() else {
        return lot(topic, seq, state);
    };
    encode(&Frame {
        op: "bid",
        topic,
        seq,
        amount_cents: last.amount_cents,
        bidder: &last.bidder,
        proxy: last.proxy,
        ends_at,
        at: &last.at,
        rows,
        lot: state,
    })
}

/// `lot`: a lot changed without a price move.
pub fn lot(topic: &str, seq: u64, state: &Value) -> ByteString {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        topic: &'a str,
        seq: u64,
        lot: &'a Value,
    }
    encode(&Frame {
        op: "lot",
        topic,
        seq,
        lot: state,
    })
}

/// `outbid`, for the sockets of the account that lost the lead.
pub fn outbid(topic: &str, seq: u64, amount_cents: i64, state: &Value) -> ByteString {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        topic: &'a str,
        seq: u64,
        amount_cents: i64,
        lot: &'a Value,
    }
    encode(&Frame {
        op: "outbid",
        topic,
        seq,
        amount_cents,
        lot: state,
    })
}

/// `started`: the lot opened.
pub fn started(topic: &str, seq: u64, ends_at: &str, state: &Value) -> ByteString {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        topic: &'a str,
        seq: u64,
        ends_at: &'a str,
        lot: &'a Value,
    }
    encode(&Frame {
        op: "started",
        topic,
        seq,
        ends_at,
        lot: state,
    })
}

/// `finished`: the lot closed. `outcome` is `sold` (with the winner's
/// display name), `reserve_not_met` or `no_bids`; `final_cents` is the last
/// price, if anyone bid.
pub fn finished(
    topic: &str,
    seq: u64,
    outcome: &str,
    winner: Option<&str>,
    final_cents: Option<i64>,
    state: &Value,
) -> ByteString {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        topic: &'a str,
        seq: u64,
        winner: Option<&'a str>,
        final_cents: Option<i64>,
        outcome: &'a str,
        lot: &'a Value,
    }
    encode(&Frame {
        op: "finished",
        topic,
        seq,
        winner,
        final_cents,
        outcome,
        lot: state,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::doc_examples;

    /// The client requests of docs/protocol.md §1.
    fn request_examples(doc: &str) -> Vec<&str> {
        doc_examples::block_after(
            doc_examples::section(doc, 1),
            "### Requests (client to server)",
        )
    }

    /// Every client request example in docs/protocol.md §1 parses, the
    /// parser reads every field it shows, and every op has an example.
    #[test]
    fn the_protocol_examples_parse() {
        let doc = doc_examples::protocol();
        let mut shown_ops = BTreeSet::new();
        for line in request_examples(&doc) {
            let envelope = parse(line).unwrap_or_else(|e| panic!("{line}: {e:?}"));
            let mut shown = doc_examples::json(line);
            let reference = shown.as_object_mut().and_then(|o| o.remove("ref"));
            assert_eq!(
                reference.as_ref().and_then(Value::as_str),
                envelope.reference.as_deref(),
                "{line}"
            );
            let read = serde_json::to_value(&envelope.request).expect("json");
            assert!(
                doc_examples::shows(&read, &shown),
                "{line}: the parser read only {read}"
            );
            shown_ops.insert(read["op"].as_str().unwrap_or_default().to_owned());
        }
        let ops: BTreeSet<String> = OPS.iter().map(|op| op.to_string()).collect();
        assert_eq!(shown_ops, ops, "every op the parser knows, and no other");
    }

    /// `shown[key]` as a `T`.
    fn field<T: serde::de::DeserializeOwned>(shown: &Value, key: &str) -> T {
        serde_json::from_value(shown[key].clone())
            .unwrap_or_else(|e| panic!("{key} in {shown}: {e}"))
    }

    /// The `code` and `message` of `shown`.
    fn refusal(shown: &Value) -> Refusal {
        Refusal::new(field(shown, "code"), field::<String>(shown, "message"))
    }

    /// The frame the server's encoder for `shown`'s op writes from the values
    /// `shown` holds.
    fn written_like(shown: &Value) -> ByteString {
        let text = |key: &str| {
            shown[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key} in {shown}"))
        };
        let number = |key: &str| {
            shown[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{key} in {shown}"))
        };
        let topic = || text("topic");
        match text("op") {
            "reply" => {
                let body = &shown["body"];
                match text("status") {
                    "ok" => reply_ok(text("ref"), body),
                    _ => reply_error(text("ref"), &refusal(body)),
                }
            }
            "error" => error(&refusal(shown)),
            "message" => {
                let view: MessageView = serde_json::from_value(shown.clone()).expect("a message");
                message(topic(), &view)
            }
            "presence" => {
                let (joins, leaves): (Vec<MemberView>, Vec<MemberView>) =
                    (field(shown, "joins"), field(shown, "leaves"));
                presence(topic(), &joins, &leaves)
            }
            "typing" => {
                let users: Vec<String> = field(shown, "users");
                typing(
                    topic(),
                    &users.iter().map(String::as_str).collect::<Vec<_>>(),
                )
            }
            "signal" => signal(topic(), text("from"), &shown["data"]),
            "session" => {
                let user: Option<UserView> = field(shown, "user");
                session(user.as_ref())
            }
            "bid" => {
                let rows: Vec<BidView> = field(shown, "rows");
                bid(
                    topic(),
                    number("seq"),
                    text("ends_at"),
                    &rows,
                    &shown["lot"],
                )
            }
            "lot" => lot(topic(), number("seq"), &shown["lot"]),
            "outbid" => {
                let amount = shown["amount_cents"].as_i64().expect("amount_cents");
                outbid(topic(), number("seq"), amount, &shown["lot"])
            }
            "started" => started(topic(), number("seq"), text("ends_at"), &shown["lot"]),
            "finished" => finished(
                topic(),
                number("seq"),
                text("outcome"),
                shown["winner"].as_str(),
                shown["final_cents"].as_i64(),
                &shown["lot"],
            ),
            other => panic!("no encoder writes {other:?}: {shown}"),
        }
    }

    /// Every server frame example in docs/protocol.md §1 is exactly what the
    /// encoder of its op writes from the same values, and every op the
    /// encoders write has an example.
    #[test]
    fn the_protocol_event_examples_are_what_the_server_writes() {
        let doc = doc_examples::protocol();
        let events = doc_examples::block_after(
            doc_examples::section(&doc, 1),
            "### Events (server to client)",
        );
        let mut shown_ops = BTreeSet::new();
        for line in events {
            let shown = doc_examples::json(line);
            let written: Value = serde_json::from_str(&written_like(&shown)).expect("json");
            assert_eq!(written, shown, "{line}");
            shown_ops.insert(shown["op"].as_str().unwrap_or_default().to_owned());
        }
        let ops: BTreeSet<String> = [
            "reply", "error", "message", "presence", "typing", "signal", "session", "bid", "lot",
            "outbid", "started", "finished",
        ]
        .iter()
        .map(|op| op.to_string())
        .collect();
        assert_eq!(shown_ops, ops);
    }

    #[test]
    fn bad_frames_are_told_apart_and_keep_their_ref() {
        let code = |text: &str| parse(text).unwrap_err().refusal.code;
        assert_eq!(code("{nope"), ErrorCode::BadFrame);
        assert_eq!(code("[1]"), ErrorCode::BadFrame);
        let unknown = parse(r#"{"op":"shout","ref":"9"}"#).unwrap_err();
        assert_eq!(unknown.refusal.code, ErrorCode::UnknownOp);
        assert_eq!(unknown.reference.as_deref(), Some("9"));
        let wrong = parse(r#"{"op":"say","topic":"chat:a","text":5,"ref":"3"}"#).unwrap_err();
        assert_eq!(wrong.refusal.code, ErrorCode::BadFrame);
        assert!(
            wrong.refusal.message.contains("invalid say frame"),
            "{}",
            wrong.refusal.message
        );
        assert_eq!(wrong.reference.as_deref(), Some("3"));
        assert_eq!(code(r#"{"op":"ping","ref":7}"#), ErrorCode::BadFrame);
    }

    #[test]
    fn events_match_the_protocol_shapes() {
        let m = MessageView {
            id: 88123,
            seq: 1043,
            user: "ana".into(),
            text: "<b>hi</b>".into(),
            at: "2026-11-23T19:00:00.000Z".into(),
        };
        let frame: Value = serde_json::from_str(&message("chat:lobby", &m)).expect("json");
        assert_eq!(frame["op"], "message");
        assert_eq!(frame["seq"], 1043);
        assert_eq!(frame["text"], "<b>hi</b>");
        let too_low = Refusal::new(ErrorCode::BidTooLow, "too low");
        let reply: Value = serde_json::from_str(&reply_error("7", &too_low)).expect("json");
        assert_eq!(reply["ref"], "7");
        assert_eq!(reply["status"], "error");
        assert_eq!(reply["body"]["code"], "bid_too_low");
    }
}
