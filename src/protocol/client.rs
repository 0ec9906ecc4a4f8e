//! The client protocol (PROTOCOL.md §1): requests browsers and other clients
//! send on `GET /ws`, and the events and replies the server sends back. Each
//! outgoing frame is encoded here, once, into shared bytes.

use bytestring::ByteString;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request, parsed from one text frame.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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

/// Why a frame is not a request; `reference` is set when the frame carried
/// one, so the refusal can be its reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub reference: Option<String>,
    pub code: &'static str,
    pub message: String,
}

/// Parses a frame, telling malformed JSON, unknown ops and wrong types apart.
pub fn parse(text: &str) -> Result<Envelope, Refusal> {
    let refuse = |reference: Option<String>, code, message: String| Refusal {
        reference,
        code,
        message,
    };
    let value: Value = serde_json::from_str(text)
        .map_err(|e| refuse(None, "bad_frame", format!("malformed JSON: {e}")))?;
    let Value::Object(object) = &value else {
        return Err(refuse(
            None,
            "bad_frame",
            "expected an object with an op field".into(),
        ));
    };
    let reference = match object.get("ref") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r.len() <= 64 => Some(r.clone()),
        Some(_) => {
            return Err(refuse(
                None,
                "bad_frame",
                "ref must be a string of at most 64 bytes".into(),
            ))
        }
    };
    let op = match object.get("op") {
        Some(Value::String(op)) => op.clone(),
        _ => {
            return Err(refuse(
                reference,
                "bad_frame",
                "expected an object with an op field".into(),
            ))
        }
    };
    if !OPS.contains(&op.as_str()) {
        return Err(refuse(
            reference,
            "unknown_op",
            format!("unknown op {op:?}"),
        ));
    }
    match serde_json::from_value::<Request>(value) {
        Ok(request) => Ok(Envelope { reference, request }),
        Err(e) => Err(refuse(
            reference,
            "bad_frame",
            format!("invalid {op} frame: {e}"),
        )),
    }
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
    code: &'a str,
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

pub fn reply_error(reference: &str, code: &str, message: &str) -> ByteString {
    encode(&Reply {
        op: "reply",
        reference,
        status: "error",
        body: ErrorBody { code, message },
    })
}

/// An `error` frame: the answer to a frame that had no `ref`.
pub fn error(code: &str, message: &str) -> ByteString {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        code: &'a str,
        message: &'a str,
    }
    encode(&Frame {
        op: "error",
        code,
        message,
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

/// `{"op":"session","user":{...}}` after an account change, or with
/// `user: null` after logging out.
pub fn session(account: Option<&crate::accounts::Account>) -> ByteString {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        user: Option<&'a crate::accounts::Account>,
    }
    encode(&Frame {
        op: "session",
        user: account,
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
    use super::*;

    /// Every client request example in PROTOCOL.md §1 parses.
    #[test]
    fn the_protocol_examples_parse() {
        // PROTOCOL.md lives in shared/, beside the project's root.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/PROTOCOL.md");
        let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let section = doc
            .split("### Requests (client to server)")
            .nth(1)
            .and_then(|s| s.split("```json").nth(1))
            .and_then(|s| s.split("```").next())
            .expect("the requests example block");
        let mut count = 0;
        for line in section.lines().filter(|l| !l.trim().is_empty()) {
            parse(line).unwrap_or_else(|e| panic!("{line}: {e:?}"));
            count += 1;
        }
        assert!(count >= 9, "only {count} examples");
    }

    #[test]
    fn bad_frames_are_told_apart_and_keep_their_ref() {
        assert_eq!(parse("{nope").unwrap_err().code, "bad_frame");
        assert_eq!(parse("[1]").unwrap_err().code, "bad_frame");
        let unknown = parse(r#"{"op":"shout","ref":"9"}"#).unwrap_err();
        assert_eq!(unknown.code, "unknown_op");
        assert_eq!(unknown.reference.as_deref(), Some("9"));
        let wrong = parse(r#"{"op":"say","topic":"chat:a","text":5,"ref":"3"}"#).unwrap_err();
        assert_eq!(wrong.code, "bad_frame");
        assert!(
            wrong.message.contains("invalid say frame"),
            "{}",
            wrong.message
        );
        assert_eq!(wrong.reference.as_deref(), Some("3"));
        assert_eq!(
            parse(r#"{"op":"ping","ref":7}"#).unwrap_err().code,
            "bad_frame"
        );
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
        let reply: Value =
            serde_json::from_str(&reply_error("7", "bid_too_low", "too low")).expect("json");
        assert_eq!(reply["ref"], "7");
        assert_eq!(reply["status"], "error");
        assert_eq!(reply["body"]["code"], "bid_too_low");
    }
}
