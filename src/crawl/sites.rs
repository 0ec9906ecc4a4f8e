//! The sites to crawl (`sites.toml`): start URLs, allowed hosts, politeness and
//! the extraction profile sent to workers with each task.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use url::Url;

use crate::protocol::worker::Profile;

/// The built-in configuration: the three demo stores this server serves.
const DEMO_SITES: &str = include_str!("../demo/sites.toml");

/// One configured site.
#[derive(Debug, Clone)]
pub struct Site {
    pub name: String,
    pub start: Vec<Url>,
    pub politeness: Politeness,
    /// Sent with each task; carries the allowed hosts.
    pub profile: Profile,
}

/// How gently a host is crawled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Politeness {
    /// The most tasks in flight at once for one host.
    pub concurrency: u32,
    /// The least time between two fetches from one host, in milliseconds.
    pub delay_ms: u64,
    /// Whether robots.txt is obeyed.
    pub robots: bool,
}

impl Default for Politeness {
    fn default() -> Self {
        Politeness {
            concurrency: 2,
            delay_ms: 500,
            robots: true,
        }
    }
}

impl Politeness {
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms)
    }
}

#[derive(Deserialize)]
struct SitesFile {
    #[serde(default)]
    site: Vec<SiteEntry>,
}

#[derive(Deserialize)]
struct SiteEntry {
    name: String,
    start: Vec<String>,
    allowed_hosts: Vec<String>,
    #[serde(default)]
    politeness: Politeness,
    profile: Profile,
}

/// Every configured site, by name.
#[derive(Debug, Clone, Default)]
pub struct Sites {
    sites: Vec<Site>,
    by_name: HashMap<String, usize>,
}

impl Sites {
    /// Loads `file`, or the demo stores when `file` is `None`. `{public_url}`
    /// and `{public_host}` in the text are replaced by this server's.
    pub fn load(file: Option<&Path>, public_url: &str) -> anyhow::Result<Sites> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("could not read the sites file {}", path.display()))?,
            None => DEMO_SITES.to_owned(),
        };
        Sites::parse(&text, public_url).with_context(|| match file {
            Some(path) => format!("invalid sites file {}", path.display()),
            None => "invalid built-in sites".to_owned(),
        })
    }

    pub fn parse(text: &str, public_url: &str) -> anyhow::Result<Sites> {
        let public = Url::parse(public_url).context("server.public_url is not a URL")?;
        let text = text
            .replace("{public_url}", public_url.trim_end_matches('/'))
            .replace("{public_host}", &host_key(&public).unwrap_or_default());
        let file: SitesFile = toml::from_str(&text)?;
        let mut sites = Sites::default();
        for entry in file.site {
            if sites.by_name.contains_key(&entry.name) {
                bail!("site {:?} is configured twice", entry.name);
            }
            if entry.politeness.concurrency == 0 {
                bail!(
                    "site {:?}: politeness.concurrency must be at least 1",
                    entry.name
                );
            }
            let mut start = Vec::new();
            for raw in &entry.start {
                let url = Url::parse(raw)
                    .with_context(|| format!("site {:?}: start URL {raw:?}", entry.name))?;
                // Workers fetch only http(s); any other start URL would
                // fail every crawl instead of failing here.
                if !matches!(url.scheme(), "http" | "https") {
                    bail!(
                        "site {:?}: start URL {raw} is not an http or https URL",
                        entry.name
                    );
                }
                let host = host_key(&url).unwrap_or_default();
                if !entry.allowed_hosts.contains(&host) {
                    bail!(
                        "site {:?}: start URL {raw} is on {host}, which allowed_hosts does not list",
                        entry.name
                    );
                }
                start.push(url);
            }
            let mut profile = entry.profile;
            profile.allowed_hosts = entry.allowed_hosts;
            sites.by_name.insert(entry.name.clone(), sites.sites.len());
            sites.sites.push(Site {
                name: entry.name,
                start,
                politeness: entry.politeness,
                profile,
            });
        }
        Ok(sites)
    }

    pub fn get(&self, name: &str) -> Option<&Site> {
        self.by_name.get(name).map(|&i| &self.sites[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Site> {
        self.sites.iter()
    }

    /// The politeness for `host`: the strictest of the sites that allow it.
    pub fn politeness_for(&self, host: &str) -> Politeness {
        self.sites
            .iter()
            .filter(|s| s.profile.allowed_hosts.iter().any(|h| h == host))
            .map(|s| s.politeness)
            .reduce(|a, b| Politeness {
                concurrency: a.concurrency.min(b.concurrency),
                delay_ms: a.delay_ms.max(b.delay_ms),
                robots: a.robots || b.robots,
            })
            .unwrap_or_default()
    }
}

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
    fn the_demo_sites_point_at_this_server() {
        let sites = Sites::load(None, "http://127.0.0.1:9999").expect("demo sites parse");
        assert_eq!(sites.iter().count(), 3);
        for site in sites.iter() {
            assert_eq!(
                site.profile.allowed_hosts,
                vec!["127.0.0.1:9999".to_owned()]
            );
            assert!(site.start[0]
                .as_str()
                .starts_with("http://127.0.0.1:9999/demo/"));
        }
    }

    #[test]
    fn a_start_url_outside_the_allowed_hosts_is_refused() {
        let text = r#"
            [[site]]
            name = "x"
            start = ["http://elsewhere.example/"]
            allowed_hosts = ["store.example"]
            [site.profile]
            extract = "jsonld"
            store = "X"
            links = "a"
        "#;
        let err = Sites::parse(text, "http://127.0.0.1:8080").unwrap_err();
        assert!(format!("{err:#}").contains("allowed_hosts"), "{err:#}");
    }

    /// Found by fuzzing: the start URL's host was checked, its scheme not.
    #[test]
    fn a_start_url_that_is_not_http_is_refused() {
        let text = r#"
            [[site]]
            name = "mystore"
            start = ["httpvs://shop.example.com/games/"]
            allowed_hosts = ["shop.example.com", "cdn.example.com:8443"]
            [site.politeness]
            concurrency = 1
            [site.profile]
            extract = "css"
            store = "MyStore"
            links = "a.game"
        "#;
        let refusal = |text: &str| {
            let err = Sites::parse(text, "http://127.0.0.1:8080").unwrap_err();
            format!("{err:#}")
        };
        let err = refusal(text);
        assert!(
            err.contains("start URL httpvs://shop.example.com/games/ is not an http or https URL"),
            "{err}"
        );
        // A URL without a host matched an empty allowed host.
        let no_host = text
            .replace("httpvs://shop.example.com/games/", "file:///etc/passwd")
            .replace(r#""shop.example.com","#, r#""","#);
        let err = refusal(&no_host);
        assert!(err.contains("is not an http or https URL"), "{err}");
    }

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
