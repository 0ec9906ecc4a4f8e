//! The frames both sockets carry: one JSON object per text message, with an
//! `op` field (docs/protocol.md, conventions). Each socket names its ops and
//! its frame types; reading a frame, and telling malformed JSON, a frame
//! that is not an op, an unknown op and a mistyped field apart, is the same
//! for both, and so are the refusals of a frame that is never read.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{ErrorCode, Refusal};

/// The longest `ref` a frame may carry, in bytes.
const MAX_REF: usize = 64;

/// Whether a socket's frames carry a `ref` that their answer repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refs {
    /// Client frames: `ref`, when present, must be a string of at most 64
    /// bytes. It is read before anything else that can fail, so that the
    /// refusal of a frame can still be its reply.
    Read,
    /// Worker frames have none: a `ref` is ignored as any unknown field is.
    Ignored,
}

/// A frame read as one of a socket's ops.
#[derive(Debug, Clone, PartialEq)]
pub struct OpFrame<T> {
    /// The frame's `ref`; always `None` with [`Refs::Ignored`].
    pub reference: Option<String>,
    pub frame: T,
}

/// A frame that is not one of a socket's ops; `reference` is set when the
/// frame carried one that could be read, so the refusal can be its reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Unread {
    pub reference: Option<String>,
    pub refusal: Refusal,
}

/// Reads a text frame as one of `ops`, deserialized as a `T` (an enum
/// tagged by `op`).
pub fn parse_op_frame<T: DeserializeOwned>(
    text: &str,
    ops: &[&str],
    refs: Refs,
) -> Result<OpFrame<T>, Unread> {
    let refuse = |reference: Option<String>, code, message: String| Unread {
        reference,
        refusal: Refusal::new(code, message),
    };
    let value: Value = serde_json::from_str(text)
        .map_err(|e| refuse(None, ErrorCode::BadFrame, format!("malformed JSON: {e}")))?;
    let Value::Object(object) = &value else {
        return Err(refuse(
            None,
            ErrorCode::BadFrame,
            "expected an object with an op field".into(),
        ));
    };
    let reference = match (refs, object.get("ref")) {
        (Refs::Ignored, _) | (Refs::Read, None | Some(Value::Null)) => None,
        (Refs::Read, Some(Value::String(r))) if r.len() <= MAX_REF => Some(r.clone()),
        (Refs::Read, Some(_)) => {
            return Err(refuse(
                None,
                ErrorCode::BadFrame,
                format!("ref must be a string of at most {MAX_REF} bytes"),
            ))
        }
    };
    let op = match object.get("op") {
        Some(Value::String(op)) => op.clone(),
        _ => {
            return Err(refuse(
                reference,
                ErrorCode::BadFrame,
                "expected an object with an op field".into(),
            ))
        }
    };
    if !ops.contains(&op.as_str()) {
        return Err(refuse(
            reference,
            ErrorCode::UnknownOp,
            format!("unknown op {op:?}"),
        ));
    }
    match serde_json::from_value::<T>(value) {
        Ok(frame) => Ok(OpFrame { reference, frame }),
        Err(e) => Err(refuse(
            reference,
            ErrorCode::BadFrame,
            format!("invalid {op} frame: {e}"),
        )),
    }
}

/// Refuses a text frame over a socket's soft size limit. It is not read,
/// so its `ref` is unknown; the connection stays open.
pub fn within_soft_limit(text: &str, limit: usize) -> Result<(), Refusal> {
    if text.len() > limit {
        return Err(Refusal::new(
            ErrorCode::FrameTooLarge,
            format!("frames are limited to {limit} bytes"),
        ));
    }
    Ok(())
}

/// The answer to a binary message: both sockets speak JSON text only.
pub fn binary_refused() -> Refusal {
    Refusal::new(ErrorCode::BadFrame, "frames must be JSON text")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(tag = "op", rename_all = "snake_case")]
    enum Op {
        Add { n: u32 },
        Stop,
    }

    const OPS: [&str; 2] = ["add", "stop"];

    fn read(text: &str, refs: Refs) -> Result<OpFrame<Op>, Unread> {
        parse_op_frame(text, &OPS, refs)
    }

    fn refused(text: &str, refs: Refs) -> (Option<String>, ErrorCode) {
        let unread = read(text, refs).unwrap_err();
        (unread.reference, unread.refusal.code)
    }

    #[test]
    fn frames_are_read_as_their_op_with_their_ref() {
        assert_eq!(
            read(r#"{"op":"add","n":2,"ref":"a"}"#, Refs::Read).unwrap(),
            OpFrame {
                reference: Some("a".into()),
                frame: Op::Add { n: 2 },
            }
        );
        assert_eq!(
            read(r#"{"op":"stop","ref":null}"#, Refs::Read).unwrap(),
            OpFrame {
                reference: None,
                frame: Op::Stop,
            }
        );
    }

    #[test]
    fn refusals_tell_the_faults_apart_and_keep_a_readable_ref() {
        let bad = ErrorCode::BadFrame;
        assert_eq!(refused("{nope", Refs::Read), (None, bad));
        assert_eq!(refused(r#"[{"op":"stop"}]"#, Refs::Read), (None, bad));
        assert_eq!(
            refused(r#"{"ref":"1"}"#, Refs::Read),
            (Some("1".into()), bad)
        );
        assert_eq!(
            refused(r#"{"op":7,"ref":"2"}"#, Refs::Read),
            (Some("2".into()), bad)
        );
        assert_eq!(
            refused(r#"{"op":"jump","ref":"3"}"#, Refs::Read),
            (Some("3".into()), ErrorCode::UnknownOp)
        );
        let mistyped = read(r#"{"op":"add","n":"two","ref":"4"}"#, Refs::Read).unwrap_err();
        assert_eq!(mistyped.reference.as_deref(), Some("4"));
        assert_eq!(mistyped.refusal.code, bad);
        assert!(
            mistyped.refusal.message.starts_with("invalid add frame: "),
            "{}",
            mistyped.refusal.message
        );
    }

    #[test]
    fn a_bad_ref_is_refused_only_where_refs_are_read() {
        let long = "r".repeat(MAX_REF + 1);
        for frame in [
            r#"{"op":"stop","ref":7}"#.to_owned(),
            format!(r#"{{"op":"stop","ref":"{long}"}}"#),
        ] {
            assert_eq!(refused(&frame, Refs::Read), (None, ErrorCode::BadFrame));
            assert_eq!(
                read(&frame, Refs::Ignored).unwrap(),
                OpFrame {
                    reference: None,
                    frame: Op::Stop,
                }
            );
        }
        assert_eq!(
            refused(r#"{"op":"jump","ref":"5"}"#, Refs::Ignored),
            (None, ErrorCode::UnknownOp)
        );
    }

    #[test]
    fn frames_over_the_soft_limit_and_binary_frames_are_refused_unread() {
        assert!(within_soft_limit("12345", 5).is_ok());
        let over = within_soft_limit("123456", 5).unwrap_err();
        assert_eq!(over.code, ErrorCode::FrameTooLarge);
        assert_eq!(over.message, "frames are limited to 5 bytes");
        assert_eq!(binary_refused().code, ErrorCode::BadFrame);
    }
}
