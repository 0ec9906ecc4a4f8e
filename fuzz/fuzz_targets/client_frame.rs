//! `protocol::client::parse` on any text frame, and the encoders that answer
//! it: a refusal always names a known code, a `ref` is never longer than 64
//! bytes, and whatever text the frame carried comes back unchanged through
//! the frames the server writes.

#![no_main]

use bazaar::protocol::client::{self, MessageView, Request};
use bazaar::protocol::ErrorCode;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn decode(frame: &str) -> Value {
    serde_json::from_str(frame)
        .unwrap_or_else(|e| panic!("the server wrote bad JSON {frame:?}: {e}"))
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(values) => values.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match client::parse(text) {
        Err(unread) => {
            let refusal = &unread.refusal;
            assert!(
                matches!(refusal.code, ErrorCode::BadFrame | ErrorCode::UnknownOp),
                "{unread:?}"
            );
            let frame = match unread.reference.as_deref() {
                Some(r) => {
                    assert!(r.len() <= 64, "{unread:?}");
                    let frame = decode(&client::reply_error(r, refusal));
                    assert_eq!(frame["ref"], r);
                    assert_eq!(frame["body"]["message"], refusal.message.as_str());
                    frame
                }
                None => decode(&client::error(refusal)),
            };
            assert!(frame.is_object());
        }
        Ok(envelope) => {
            // Only a JSON object with a known op is a request.
            let value: Value = serde_json::from_str(text).expect("a request is JSON");
            assert!(value["op"].is_string(), "{text:?}");
            if let Some(r) = envelope.reference.as_deref() {
                assert!(r.len() <= 64);
                let reply = decode(&client::reply_ok(r, &serde_json::json!({})));
                assert_eq!(reply["ref"], r);
            }
            match envelope.request {
                Request::Say { topic, text } => {
                    let view = MessageView {
                        id: 1,
                        seq: 1,
                        user: "ana".into(),
                        text: text.clone(),
                        at: "2026-11-23T19:00:00.000Z".into(),
                    };
                    let frame = decode(&client::message(&topic, &view));
                    assert_eq!(frame["text"], text.as_str());
                    assert_eq!(frame["topic"], topic.as_str());
                }
                Request::Signal { topic, to, data } => {
                    let frame = decode(&client::signal(&topic, &to, &data));
                    // serde_json reads floats to the nearest value only
                    // approximately, so only float-free data must come back
                    // exactly.
                    if !has_float(&data) {
                        assert_eq!(frame["data"], data);
                    }
                }
                _ => {}
            }
        }
    }
});
