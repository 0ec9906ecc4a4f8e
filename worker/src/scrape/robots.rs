//! A small robots.txt reader (RFC 9309): which paths we may fetch on a site,
//! and how long to wait between requests.
//!
//! Written here rather than taken from a crate: the Rust parsers there are
//! (texting_robots, last released 2023; robotstxt, 2020) are no longer kept
//! up, one compiles every rule into a regex and brings second copies of nom
//! and bstr, and neither caps Crawl-delay. This one matches in linear time
//! and is tested against the RFC's rules below.

use std::time::Duration;

use url::Url;

/// What robots.txt rules are matched against: `/games?page=2`.
pub fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// The rules of one robots.txt that apply to our user agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Robots {
    /// (allow, pattern); empty patterns never make it in.
    rules: Vec<(bool, String)>,
    delay: Option<Duration>,
}

#[derive(Default)]
struct Group {
    agents: Vec<String>,
    rules: Vec<(bool, String)>,
    delay: Option<Duration>,
}

/// Longer delays are treated as hostile or broken; they would stall a site.
const MAX_DELAY: Duration = Duration::from_secs(60);

impl Robots {
    /// Rules that allow everything (no robots.txt, or it could not be read).
    pub fn allow_all() -> Robots {
        Robots::default()
    }

    /// Parses `text` for `user_agent` (e.g. "Bazaar/0.1 (+https://…)"): the
    /// groups naming our product token win, else the `*` groups, else nothing.
    pub fn parse(text: &str, user_agent: &str) -> Robots {
        let token: String = user_agent
            .trim()
            .split(|c: char| c == '/' || c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut groups: Vec<Group> = Vec::new();
        let mut in_agent_lines = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            if key == "user-agent" {
                if !in_agent_lines {
                    groups.push(Group::default());
                    in_agent_lines = true;
                }
                if let Some(group) = groups.last_mut() {
                    group.agents.push(value.to_ascii_lowercase());
                }
                continue;
            }
            // Rules before any User-agent line belong to no group (RFC 9309 §2.1).
            let Some(group) = groups.last_mut() else {
                continue;
            };
            match key.as_str() {
                "allow" | "disallow" => {
                    in_agent_lines = false;
                    if !value.is_empty() {
                        group.rules.push((key == "allow", normalize(value)));
                    }
                }
                "crawl-delay" => {
                    in_agent_lines = false;
                    group.delay = value
                        .parse::<f64>()
                        .ok()
                        .and_then(|s| Duration::try_from_secs_f64(s).ok())
                        .map(|d| d.min(MAX_DELAY));
                }
                _ => {}
            }
        }
        let ours = |g: &&Group| !token.is_empty() && g.agents.contains(&token);
        let star = |g: &&Group| g.agents.iter().any(|a| a == "*");
        let chosen: Vec<&Group> = if groups.iter().any(|g| ours(&g)) {
            groups.iter().filter(ours).collect()
        } else {
            groups.iter().filter(star).collect()
        };
        Robots {
            rules: chosen
                .iter()
                .flat_map(|g| g.rules.iter().cloned())
                .collect(),
            delay: chosen.iter().find_map(|g| g.delay),
        }
    }

    /// Whether `path_and_query` (e.g. "/games?page=2") may be fetched: the
    /// longest matching rule decides, and Allow wins a tie.
    pub fn allows(&self, path_and_query: &str) -> bool {
        let path = Some(path_and_query)
            .filter(|p| !p.is_empty())
            .unwrap_or("/");
        if path == "/robots.txt" {
            return true;
        }
        let path = normalize(path);
        let path = path.as_str();
        // `true > false`, so on equal length the Allow rule is the maximum.
        self.rules
            .iter()
            .filter(|(_, pattern)| matches(pattern, path))
            .max_by_key(|(allow, pattern)| (pattern.len(), *allow))
            .is_none_or(|(allow, _)| *allow)
    }

    /// The Crawl-delay for our group, if it set one.
    pub fn crawl_delay(&self) -> Option<Duration> {
        self.delay
    }
}

/// One spelling for what RFC 9309 §2.2.2 compares: octets outside ASCII are
/// percent-encoded, an encoded unreserved character (`%62` for `b`) is
/// decoded, and the hex digits of the other escapes are upper case. So a rule
/// written `/ä` matches the `/%C3%A4` a URL carries, and `/%62az` matches
/// `/baz`. Applied to rules and paths alike.
fn normalize(text: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escaped = (b == b'%')
            .then(|| Some(hex(*bytes.get(i + 1)?)? << 4 | hex(*bytes.get(i + 2)?)?))
            .flatten();
        match escaped {
            Some(octet) if octet.is_ascii_alphanumeric() || b"-._~".contains(&octet) => {
                out.push(char::from(octet));
                i += 3;
            }
            Some(octet) => {
                out.push_str(&format!("%{octet:02X}"));
                i += 3;
            }
            None if b.is_ascii() => {
                out.push(char::from(b));
                i += 1;
            }
            None => {
                out.push_str(&format!("%{b:02X}"));
                i += 1;
            }
        }
    }
    out
}

/// Prefix match with `*` (any run) and a trailing `$` (end of path). The
/// classic two-pointer glob: linear in practice, never exponential.
fn matches(pattern: &str, path: &str) -> bool {
    let anchored = pattern.ends_with('$');
    let pattern = pattern.strip_suffix('$').unwrap_or(pattern);
    let (p, s) = (pattern.as_bytes(), path.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi == p.len() && (!anchored || si == s.len()) {
            return true;
        }
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && si < s.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star.filter(|&(_, ss)| ss < s.len()) {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UA: &str = "Bazaar/0.1 (+https://bazaar.example/bot)";

    #[test]
    fn missing_or_empty_rules_allow_everything() {
        assert!(Robots::allow_all().allows("/anything"));
        let r = Robots::parse("User-agent: *\nDisallow:\n", UA);
        assert!(r.allows("/games/1"));
        assert!(Robots::parse("", UA).allows("/"));
    }

    #[test]
    fn our_group_beats_the_star_group() {
        let text = "User-agent: *\nDisallow: /\n\nUser-agent: BAZAAR\nDisallow: /private\n";
        let r = Robots::parse(text, UA);
        assert!(r.allows("/games"));
        assert!(!r.allows("/private/x"));
        let other = Robots::parse(text, "OtherBot/2.0");
        assert!(!other.allows("/games"));
    }

    #[test]
    fn longest_match_wins_and_allow_wins_ties() {
        let text = "User-agent: *\nDisallow: /shop\nAllow: /shop/games\nDisallow: /shop/games/secret\nAllow: /tie\nDisallow: /tie\n";
        let r = Robots::parse(text, UA);
        assert!(!r.allows("/shop/cart"));
        assert!(r.allows("/shop/games/1"));
        assert!(!r.allows("/shop/games/secret/1"));
        assert!(r.allows("/tie"));
        assert!(r.allows("/other"));
    }

    #[test]
    fn wildcards_and_end_anchors_match() {
        let text = "User-agent: *\nDisallow: /*.pdf$\nDisallow: /*?sort=\nAllow: /games/*/reviews$\nDisallow: /games/\n";
        let r = Robots::parse(text, UA);
        assert!(!r.allows("/docs/manual.pdf"));
        assert!(r.allows("/docs/manual.pdf?x=1"));
        assert!(!r.allows("/games?sort=price"));
        assert!(r.allows("/games/portal-2/reviews"));
        assert!(!r.allows("/games/portal-2/reviews/2"));
        assert!(!r.allows("/games/portal-2"));
    }

    #[test]
    fn comments_crlf_and_shared_groups_are_handled() {
        let text = "# hello\r\nUser-agent: foo\r\nUser-agent: bazaar # us\r\nDisallow: /a # no a\r\nCrawl-delay: 2.5\r\n\r\nUser-agent: *\r\nDisallow: /\r\n";
        let r = Robots::parse(text, UA);
        assert!(!r.allows("/a/b"));
        assert!(r.allows("/b"));
        assert_eq!(r.crawl_delay(), Some(Duration::from_millis(2500)));
    }

    #[test]
    fn crawl_delay_is_capped_and_garbage_ignored() {
        let r = Robots::parse("User-agent: *\nCrawl-delay: 86400\n", UA);
        assert_eq!(r.crawl_delay(), Some(MAX_DELAY));
        let r = Robots::parse("User-agent: *\nCrawl-delay: soon\n", UA);
        assert_eq!(r.crawl_delay(), None);
        let r = Robots::parse("User-agent: *\nCrawl-delay: -1\n", UA);
        assert_eq!(r.crawl_delay(), None);
    }

    #[test]
    fn rules_and_paths_compare_percent_encoded_as_rfc_9309_says() {
        let text = "User-agent: *\nDisallow: /juegos/año\nDisallow: /%62az\nDisallow: /q?x=%2f\n";
        let r = Robots::parse(text, UA);
        // What a URL carries: url::Url percent-encodes its path.
        assert!(!r.allows("/juegos/a%C3%B1o/2"));
        assert!(!r.allows("/juegos/a%c3%b1o"));
        assert!(!r.allows("/baz"));
        assert!(!r.allows("/q?x=%2F"));
        // A reserved character stays apart from its escape.
        assert!(r.allows("/q?x=/"));
        assert!(r.allows("/juegos/ano"));
        // A lone or broken `%` is an ordinary character.
        assert!(Robots::parse("User-agent: *\nDisallow: /100%\n", UA).allows("/100"));
        assert!(!Robots::parse("User-agent: *\nDisallow: /100%\n", UA).allows("/100%zz"));
    }

    #[test]
    fn robots_txt_itself_is_always_allowed() {
        let r = Robots::parse("User-agent: *\nDisallow: /\n", UA);
        assert!(r.allows("/robots.txt"));
        assert!(!r.allows(""));
    }
}
