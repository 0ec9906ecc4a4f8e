//! Room names and topics (`chat:<room>`, `auction:<lot id>`), parsed once at
//! the edge so that past it a topic is known to be well formed.

use std::fmt;

/// The longest room name.
pub const MAX_ROOM_NAME: usize = 32;

/// A chat room's name: 1-32 lowercase letters, digits, `-` or `_`. It shows
/// in URLs and topics, so nothing in it needs escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(raw: &str) -> Result<RoomName, String> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_ROOM_NAME
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(RoomName(raw.to_owned()))
        } else {
            Err(format!(
                "room names are 1-{MAX_ROOM_NAME} lowercase letters, digits, - or _"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a socket can join.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    Chat(RoomName),
    Auction(u64),
}

impl Topic {
    pub fn parse(raw: &str) -> Result<Topic, String> {
        if let Some(room) = raw.strip_prefix("chat:") {
            return RoomName::parse(room).map(Topic::Chat);
        }
        if let Some(lot) = raw.strip_prefix("auction:") {
            return lot
                .parse::<u64>()
                .ok()
                .filter(|&id| id > 0)
                .map(Topic::Auction)
                .ok_or_else(|| format!("{raw:?} does not name a lot: expected auction:<id>"));
        }
        Err(format!(
            "unknown topic {raw:?}: expected chat:<room> or auction:<lot id>"
        ))
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Chat(room) => write!(f, "chat:{room}"),
            Topic::Auction(id) => write!(f, "auction:{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_short_lowercase_slugs() {
        for good in ["lobby", "deals-2026", "a", "retro_games", &"x".repeat(32)] {
            assert!(RoomName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Lobby", "a b", "x/y", "<script>", "ü", &"x".repeat(33)] {
            assert!(RoomName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topics_round_trip_and_bad_ones_say_why() {
        for raw in ["chat:lobby", "auction:42"] {
            assert_eq!(Topic::parse(raw).expect(raw).to_string(), raw);
        }
        assert!(Topic::parse("chat:").is_err());
        assert!(Topic::parse("auction:0").is_err());
        assert!(Topic::parse("auction:x").is_err());
        let err = Topic::parse("news:today").unwrap_err();
        assert!(err.contains("unknown topic"), "{err}");
    }
}
