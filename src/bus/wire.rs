//! What travels on the cluster's Redis channels. Every publish is one text
//! payload: a header line, `<kind>\t<node>`, naming what it carries and the
//! node it came from, then the body. Frames inside are the exact bytes
//! members receive, so a node decodes a payload once and shares its frames
//! with every local member.
//!
//! Kinds:
//! - `m`: chat messages, one frame a line, numbered by the Redis script
//!   that published them (see `message_parts`);
//! - `p`: a presence diff frame;
//! - `t`: the users typing on the sending node, as a JSON array;
//! - `l`: a lot event frame (`bid`, `lot`, `started`, `finished`);
//! - `s`: a signal: the target connection on one line, its frame on the next;
//! - `a`: an account notice (`AccountNotice` as JSON), on `bazaar:accounts`;
//! - `c`: a command for every node (`Control` as JSON), on `bazaar:control`.

use bytestring::ByteString;
use serde::Deserialize;

use crate::protocol::client::{self, MemberView, MessageView};

/// What one payload carries, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Messages(Vec<(MessageView, ByteString)>),
    Presence {
        joins: Vec<MemberView>,
        leaves: Vec<MemberView>,
        frame: ByteString,
    },
    Typing(Vec<String>),
    Lot(ByteString),
    Signal {
        to: String,
        frame: ByteString,
    },
    Account(String),
    Control(String),
}

/// A payload from another node (or this one), decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub node: String,
    pub body: Body,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("no header line")]
    NoHeader,
    #[error("unknown kind {0:?}")]
    UnknownKind(String),
    #[error("a frame is not what its kind says: {0}")]
    BadFrame(String),
}

/// Where a message frame is cut for its seq: the frame is encoded with seq
/// 0, and the script writes the real one in. `op`, `topic` and `id` come
/// before it, and a `"` inside a string is always escaped, so the first
/// match is the field.
const SEQ_FIELD: &str = ",\"seq\":0,\"user\":";

/// A message frame cut where its seq goes: the numbering script joins
/// `prefix`, the seq and `suffix`, so the frame is encoded once, before the
/// seq is known.
pub fn message_parts(topic: &str, id: i64, user: &str, text: &str, at: &str) -> (String, String) {
    let frame = client::message(
        topic,
        &MessageView {
            id,
            seq: 0,
            user: user.to_owned(),
            text: text.to_owned(),
            at: at.to_owned(),
        },
    );
    match frame.split_once(SEQ_FIELD) {
        Some((before, after)) => (format!("{before},\"seq\":"), format!(",\"user\":{after}")),
        // Unreachable while `client::message` writes `id` then `seq`; the
        // test below holds it to that.
        None => (frame.to_string(), String::new()),
    }
}

fn header(kind: char, node: &str) -> String {
    format!("{kind}\t{node}\n")
}

pub fn presence(node: &str, frame: &str) -> String {
    header('p', node) + frame
}

pub fn typing(node: &str, users: &[&str]) -> String {
    header('t', node) + &serde_json::to_string(users).unwrap_or_else(|_| "[]".into())
}

pub fn lot(node: &str, frame: &str) -> String {
    header('l', node) + frame
}

pub fn signal(node: &str, to: &str, frame: &str) -> String {
    format!("{}{to}\n{frame}", header('s', node))
}

pub fn account(node: &str, notice: &str) -> String {
    header('a', node) + notice
}

pub fn control(node: &str, control: &str) -> String {
    header('c', node) + control
}

/// The header of a numbered batch, as the script writes it before the
/// frames.
pub fn messages_header(node: &str) -> String {
    format!("m\t{node}")
}

/// Decodes one payload. Frames are checked as far as the node needs them:
/// a message's fields (kept for resumes) and a diff's members.
pub fn decode(payload: &str) -> Result<Payload, WireError> {
    let (head, body) = payload.split_once('\n').unwrap_or((payload, ""));
    let (kind, node) = head.split_once('\t').ok_or(WireError::NoHeader)?;
    let node = node.to_owned();
    let bad = |e: serde_json::Error| WireError::BadFrame(e.to_string());
    let body = match kind {
        "m" => {
            let mut messages = Vec::new();
            for line in body.lines().filter(|l| !l.is_empty()) {
                let view: MessageView = serde_json::from_str(line).map_err(bad)?;
                messages.push((view, ByteString::from(line)));
            }
            Body::Messages(messages)
        }
        "p" => {
            #[derive(Deserialize)]
            struct Diff {
                joins: Vec<MemberView>,
                leaves: Vec<MemberView>,
            }
            let diff: Diff = serde_json::from_str(body).map_err(bad)?;
            Body::Presence {
                joins: diff.joins,
                leaves: diff.leaves,
                frame: ByteString::from(body),
            }
        }
        "t" => Body::Typing(serde_json::from_str(body).map_err(bad)?),
        "l" => Body::Lot(ByteString::from(body)),
        "s" => {
            let (to, frame) = body
                .split_once('\n')
                .ok_or_else(|| WireError::BadFrame("a signal without its target".into()))?;
            Body::Signal {
                to: to.to_owned(),
                frame: ByteString::from(frame),
            }
        }
        "a" => Body::Account(body.to_owned()),
        "c" => Body::Control(body.to_owned()),
        other => return Err(WireError::UnknownKind(other.to_owned())),
    };
    Ok(Payload { node, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_frame_joined_around_its_seq_is_the_frame_encoded_with_it() {
        let (prefix, suffix) = message_parts(
            "chat:lobby",
            88123,
            "ana",
            "\"seq\":0, says \\ the text",
            "2026-11-23T19:00:00.000Z",
        );
        let joined = format!("{prefix}1043{suffix}");
        let expected = client::message(
            "chat:lobby",
            &MessageView {
                id: 88123,
                seq: 1043,
                user: "ana".into(),
                text: "\"seq\":0, says \\ the text".into(),
                at: "2026-11-23T19:00:00.000Z".into(),
            },
        );
        assert_eq!(joined, &*expected);
    }

    #[test]
    fn a_numbered_batch_decodes_into_views_and_their_frames() {
        let (p1, s1) = message_parts("chat:a", 1, "ana", "hi", "2026-11-23T19:00:00.000Z");
        let (p2, s2) = message_parts("chat:a", 2, "bob", "yo", "2026-11-23T19:00:01.000Z");
        let payload = format!("{}\n{p1}7{s1}\n{p2}8{s2}", messages_header("n1"));
        let decoded = decode(&payload).expect("decodes");
        assert_eq!(decoded.node, "n1");
        let Body::Messages(messages) = decoded.body else {
            panic!("not messages: {decoded:?}");
        };
        let seqs: Vec<u64> = messages.iter().map(|(v, _)| v.seq).collect();
        assert_eq!(seqs, [7, 8]);
        assert_eq!(messages[1].0.user, "bob");
        assert!(messages[0].1.contains("\"seq\":7"));
    }

    #[test]
    fn every_kind_round_trips() {
        let frame = client::presence(
            "chat:a",
            &[MemberView {
                conn: "c-1".into(),
                user: "ana".into(),
            }],
            &[],
        );
        let decoded = decode(&presence("n1", &frame)).expect("presence");
        assert!(
            matches!(&decoded.body, Body::Presence { joins, leaves, .. } if joins.len() == 1 && leaves.is_empty())
        );
        assert_eq!(
            decode(&typing("n2", &["ana", "bob"])).expect("typing").body,
            Body::Typing(vec!["ana".into(), "bob".into()])
        );
        assert_eq!(
            decode(&signal("n3", "c-9", "{\"op\":\"signal\"}"))
                .expect("signal")
                .body,
            Body::Signal {
                to: "c-9".into(),
                frame: "{\"op\":\"signal\"}".into()
            }
        );
        assert_eq!(
            decode(&lot("n1", "{\"op\":\"lot\"}")).expect("lot").body,
            Body::Lot("{\"op\":\"lot\"}".into())
        );
    }

    #[test]
    fn garbage_is_refused_not_delivered() {
        assert_eq!(decode("hello"), Err(WireError::NoHeader));
        assert!(matches!(
            decode("x\tn1\n{}"),
            Err(WireError::UnknownKind(_))
        ));
        assert!(matches!(
            decode("m\tn1\n{\"op\":"),
            Err(WireError::BadFrame(_))
        ));
        assert!(matches!(decode("s\tn1\nc-1"), Err(WireError::BadFrame(_))));
    }
}
