//! Which URLs a site's profile lets a worker fetch: the server checks its
//! start URLs and links by the same rule before they become tasks.

use url::Url;

/// `host[:port]`: the unit of politeness and of the allowed-host lists.
pub fn host_key(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// Whether `url` may be fetched for a site allowing `allowed_hosts`.
pub fn is_allowed(url: &Url, allowed_hosts: &[String]) -> bool {
    matches!(url.scheme(), "http" | "https")
        && host_key(url).is_some_and(|h| allowed_hosts.contains(&h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_hosts_over_http_are_fetchable() {
        let allowed = vec!["store.example".to_owned(), "127.0.0.1:8080".to_owned()];
        let ok = |u: &str| is_allowed(&Url::parse(u).expect("url"), &allowed);
        assert!(ok("https://store.example/game/1"));
        assert!(ok("http://127.0.0.1:8080/demo/"));
        assert!(!ok("http://127.0.0.1:8081/demo/"));
        assert!(!ok("https://evil.example/"));
        assert!(!ok("file:///etc/passwd"));
    }
}
