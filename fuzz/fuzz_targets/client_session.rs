//! The client session's handling of one text frame up to the point where a
//! room would be asked (`rooms::session::read_request`, then the checks a
//! session makes of a request on its own: its topic, a message's text). The
//! frame a refusal sends is always JSON a client can match to its request.

#![no_main]

use bazaar::domain::topic::Topic;
use bazaar::protocol::client::Request;
use bazaar::protocol::{ErrorCode, Refusal};
use bazaar::rooms::session::{answer_frame, check_text, read_request, refused_frame};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// Smaller than the server's default so the fuzzer's inputs reach it.
const SOFT_FRAME_LIMIT: usize = 2048;
/// The default `chat.max_text`.
const MAX_TEXT: usize = 2000;

fn decode(frame: &str) -> Value {
    serde_json::from_str(frame)
        .unwrap_or_else(|e| panic!("the server wrote bad JSON {frame:?}: {e}"))
}

/// A topic the request names, checked as the session checks it.
fn check_topic(raw: &str) {
    if let Ok(topic) = Topic::parse(raw) {
        // The topic's name in replies ("join chat:x first") names it again.
        assert_eq!(Topic::parse(&topic.to_string()), Ok(topic));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let envelope = match read_request(text, SOFT_FRAME_LIMIT) {
        Err(unread) => {
            let frame = decode(&refused_frame(&unread));
            match frame["op"].as_str() {
                Some("error") => assert!(frame["code"].is_string(), "{frame}"),
                Some("reply") => {
                    assert_eq!(frame["status"], "error", "{frame}");
                    let reference = frame["ref"].as_str().expect("a reply has a ref");
                    assert!(reference.len() <= 64, "{frame}");
                }
                _ => panic!("a refusal is an error or a reply: {frame}"),
            }
            if text.len() > SOFT_FRAME_LIMIT {
                assert_eq!(frame["code"], "frame_too_large", "{frame}");
            }
            return;
        }
        Ok(envelope) => envelope,
    };
    assert!(text.len() <= SOFT_FRAME_LIMIT);
    let reference = envelope.reference.as_deref();
    match &envelope.request {
        Request::Join { topic, .. }
        | Request::Leave { topic }
        | Request::Typing { topic }
        | Request::Bid { topic, .. }
        | Request::Signal { topic, .. } => check_topic(topic),
        Request::Say { topic, text } => {
            check_topic(topic);
            if check_text(text, MAX_TEXT).is_ok() {
                assert!(!text.trim().is_empty());
                assert!(text.chars().count() <= MAX_TEXT);
            }
        }
        Request::Ping => {
            let body = json!({ "server_time": "2026-11-23T19:00:00.000Z" });
            match answer_frame(reference, Ok(body)) {
                Some(frame) => {
                    let frame = decode(&frame);
                    assert_eq!(frame["status"], "ok");
                    assert_eq!(frame["ref"].as_str(), reference);
                }
                None => assert!(reference.is_none()),
            }
        }
    }
    // Whatever a room answers, a request without a ref hears only failures.
    let not_joined = Refusal::new(ErrorCode::NotJoined, "join chat:x first");
    let failure = answer_frame(reference, Err(not_joined));
    let failure = decode(&failure.expect("a failure always makes a frame"));
    assert_eq!(failure["ref"].as_str(), reference);
});
