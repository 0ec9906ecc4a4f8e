//! Recognises Steam store links, whose app id is the most reliable key for
//! merging one game's offers across stores.

use url::Url;

/// The key under which a Steam app id goes into `Item.external_ids`.
pub const STEAM: &str = "steam";

/// The app id in a Steam store URL such as
/// `https://store.steampowered.com/app/620/Portal_2/` (also the `agecheck`
/// variant and scheme-less or protocol-relative forms). Digits only.
pub fn steam_app_id(url: &str) -> Option<String> {
    let url = url.trim();
    let parsed = if let Some(rest) = url.strip_prefix("//") {
        Url::parse(&format!("https://{rest}")).ok()?
    } else if url.starts_with("store.steampowered.com") {
        Url::parse(&format!("https://{url}")).ok()?
    } else {
        Url::parse(url).ok()?
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = parsed.host_str()?.to_ascii_lowercase();
    if host != "store.steampowered.com" {
        return None;
    }
    let mut segments = parsed.path_segments()?.filter(|s| !s.is_empty());
    let mut first = segments.next()?;
    if first == "agecheck" {
        first = segments.next()?;
    }
    if first != "app" {
        return None;
    }
    digits_only(segments.next()?)
}

/// A plausible app id: 1 to 10 ASCII digits, nothing else.
pub(crate) fn digits_only(text: &str) -> Option<String> {
    let text = text.trim();
    let valid = (1..=10).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_id_is_read_from_a_store_url() {
        let id = steam_app_id("https://store.steampowered.com/app/620/Portal_2/");
        assert_eq!(id.as_deref(), Some("620"));
        assert_eq!(
            steam_app_id("https://store.steampowered.com/app/620").as_deref(),
            Some("620")
        );
        assert_eq!(
            steam_app_id("http://STORE.steampowered.com/app/620/?l=german").as_deref(),
            Some("620")
        );
    }

    #[test]
    fn scheme_less_and_agecheck_urls_are_understood() {
        assert_eq!(
            steam_app_id("//store.steampowered.com/app/70/").as_deref(),
            Some("70")
        );
        assert_eq!(
            steam_app_id("store.steampowered.com/app/70").as_deref(),
            Some("70")
        );
        assert_eq!(
            steam_app_id("https://store.steampowered.com/agecheck/app/1091500/").as_deref(),
            Some("1091500")
        );
    }

    #[test]
    fn other_urls_have_no_app_id() {
        for url in [
            "https://store.steampowered.com/sub/620/",
            "https://store.steampowered.com/app/abc/",
            "https://store.steampowered.com/app/",
            "https://steamcommunity.com/app/620",
            "https://evil.example/store.steampowered.com/app/620",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(steam_app_id(url), None, "{url}");
        }
    }
}
