//! The sites to crawl (`sites.toml`): start URLs, allowed hosts, politeness and
//! the extraction profile sent to workers with each task.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use url::Url;

use crate::domain::title::TitlePattern;
// The worker checks every URL it fetches by the same rule.
use crate::protocol::worker::{Extractor, Profile};
pub use crate::scrape::hosts::{host_key, is_allowed};

/// The built-in configuration: the three demo stores this server serves.
pub const DEMO_SITES: &str = include_str!("../demo/sites.toml");

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

    /// Reads a sites file, refusing it with every problem it has (each on
    /// a line of its own). Keys nothing reads are logged, not refused.
    pub fn parse(text: &str, public_url: &str) -> anyhow::Result<Sites> {
        let checked = check(text, public_url)?;
        for key in &checked.unknown_keys {
            tracing::warn!(key = %key, "the sites file has a key nothing reads (a typo?)");
        }
        if !checked.problems.is_empty() {
            bail!("{}", checked.problems.join("\n"));
        }
        Ok(checked.sites)
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

/// A sites file read as far as it goes, for [`Sites::parse`] and for
/// `bazaar sites lint`.
pub struct Checked {
    /// The sites without problems.
    pub sites: Sites,
    /// What makes the file unusable, one line each, naming the site.
    pub problems: Vec<String>,
    /// Keys nothing reads, as paths (`site.0.profile.extrct`).
    pub unknown_keys: Vec<String>,
}

/// Reads a sites file and checks every site; `Err` only when the text is
/// not a sites file at all (TOML syntax, wrong types, missing keys).
pub fn check(text: &str, public_url: &str) -> anyhow::Result<Checked> {
    let public = Url::parse(public_url).context("server.public_url is not a URL")?;
    let text = text
        .replace("{public_url}", public_url.trim_end_matches('/'))
        .replace("{public_host}", &host_key(&public).unwrap_or_default());
    let mut unknown_keys = Vec::new();
    let file: SitesFile = serde_ignored::deserialize(toml::Deserializer::new(&text), |path| {
        unknown_keys.push(path.to_string());
    })?;
    let mut checked = Checked {
        sites: Sites::default(),
        problems: Vec::new(),
        unknown_keys,
    };
    for entry in file.site {
        let problems = site_problems(&entry, &checked.sites);
        if !problems.is_empty() {
            let name = &entry.name;
            checked
                .problems
                .extend(problems.into_iter().map(|p| format!("site {name:?}: {p}")));
            continue;
        }
        let start = entry
            .start
            .iter()
            .filter_map(|raw| Url::parse(raw).ok())
            .collect();
        let mut profile = entry.profile;
        profile.allowed_hosts = entry.allowed_hosts;
        let sites = &mut checked.sites;
        sites.by_name.insert(entry.name.clone(), sites.sites.len());
        sites.sites.push(Site {
            name: entry.name,
            start,
            politeness: entry.politeness,
            profile,
        });
    }
    Ok(checked)
}

/// What is wrong with one site, given the sites read before it.
fn site_problems(entry: &SiteEntry, before: &Sites) -> Vec<String> {
    let mut problems = Vec::new();
    if before.by_name.contains_key(&entry.name) {
        problems.push("configured twice".to_owned());
    }
    if entry.politeness.concurrency == 0 {
        problems.push("politeness.concurrency must be at least 1".to_owned());
    }
    if entry.start.is_empty() {
        problems.push("start lists no URL, so a crawl would find nothing".to_owned());
    }
    for raw in &entry.start {
        let url = match Url::parse(raw) {
            Ok(url) => url,
            Err(err) => {
                problems.push(format!("start URL {raw:?} is not a URL: {err}"));
                continue;
            }
        };
        // Workers fetch only http(s); any other start URL would fail
        // every crawl instead of failing here.
        if !matches!(url.scheme(), "http" | "https") {
            problems.push(format!("start URL {raw} is not an http or https URL"));
            continue;
        }
        let host = host_key(&url).unwrap_or_default();
        if !entry.allowed_hosts.contains(&host) {
            problems.push(format!(
                "start URL {raw} is on {host}, which allowed_hosts does not list"
            ));
        }
    }
    // A selector that does not parse would fail every task of the site.
    let profile = &entry.profile;
    let mut selectors = vec![
        ("profile.links", Some(&profile.links)),
        ("profile.next", profile.next.as_ref()),
    ];
    if let Some(css) = &profile.css {
        selectors.extend([
            ("profile.css.title", Some(&css.title)),
            ("profile.css.price", Some(&css.price)),
            ("profile.css.regular_price", css.regular_price.as_ref()),
            ("profile.css.unavailable", css.unavailable.as_ref()),
            ("profile.css.steam_id", css.steam_id.as_ref()),
        ]);
    } else if profile.extract == Extractor::Css {
        problems.push("extract = \"css\" needs a [site.profile.css] table of selectors".to_owned());
    }
    for (key, text) in selectors {
        let Some(text) = text.filter(|t| !t.trim().is_empty() || key == "profile.links") else {
            continue;
        };
        if let Err(err) = scraper::Selector::parse(text) {
            problems.push(format!("{key} {text:?} is not a CSS selector: {err}"));
        }
    }
    // A pattern that cannot match would leave titles unstripped unnoticed.
    for pattern in &profile.title_strip {
        if let Err(err) = TitlePattern::parse(pattern) {
            problems.push(format!("profile.title_strip: {err}"));
        }
    }
    problems
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
    fn every_problem_of_every_site_is_named_at_once() {
        let text = r#"
            [[site]]
            name = "one"
            start = ["http://elsewhere.example/", "not a url"]
            allowed_hosts = ["store.example"]
            [site.politeness]
            concurrency = 0
            [site.profile]
            extract = "css"
            store = "One"
            links = "a.game["
            next = "a[rel=next]"

            [[site]]
            name = "two"
            start = ["https://two.example/games"]
            allowed_hosts = ["two.example"]
            [site.profile]
            extrct = "jsonld"
            extract = "jsonld"
            store = "Two"
            links = "a.game"
            next = ">>"
        "#;
        let checked = check(text, "http://127.0.0.1:8080").expect("a sites file");
        let problems = checked.problems.join("\n");
        for expected in [
            r#"site "one": politeness.concurrency must be at least 1"#,
            r#"site "one": start URL http://elsewhere.example/ is on elsewhere.example"#,
            r#"site "one": start URL "not a url" is not a URL"#,
            r#"site "one": extract = "css" needs a [site.profile.css] table"#,
            r#"site "one": profile.links "a.game[" is not a CSS selector"#,
            r#"site "two": profile.next ">>" is not a CSS selector"#,
        ] {
            assert!(problems.contains(expected), "{expected} in:\n{problems}");
        }
        assert_eq!(checked.problems.len(), 6, "{problems}");
        assert_eq!(checked.unknown_keys, ["site.1.profile.extrct"]);
        assert_eq!(checked.sites.iter().count(), 0);
        // The server refuses the file with the same lines.
        let refusal = format!(
            "{:#}",
            Sites::parse(text, "http://127.0.0.1:8080").unwrap_err()
        );
        assert_eq!(refusal, problems);
    }

    #[test]
    fn title_strip_patterns_are_checked_and_sent_with_the_profile() {
        let text = r#"
            [[site]]
            name = "mystore"
            start = ["https://shop.example.com/games/"]
            allowed_hosts = ["shop.example.com"]
            [site.profile]
            extract = "jsonld"
            store = "MyStore"
            links = "a.game"
            title_strip = ["Buy {title}", "{title} | MyStore"]
        "#;
        let sites = Sites::parse(text, "http://127.0.0.1:8080").expect("valid");
        let site = sites.get("mystore").expect("the site");
        assert_eq!(
            site.profile.title_strip,
            ["Buy {title}", "{title} | MyStore"]
        );

        let bad = text.replace(
            r#"["Buy {title}", "{title} | MyStore"]"#,
            r#"["Buy", "{title}", "{title} on {title}"]"#,
        );
        let checked = check(&bad, "http://127.0.0.1:8080").expect("a sites file");
        assert_eq!(
            checked.problems,
            [
                "site \"mystore\": profile.title_strip: \"Buy\" has no {title} placeholder; \
                 write where the title goes, as in \"Buy {title}\" or \"{title} on Steam\"",
                "site \"mystore\": profile.title_strip: \"{title}\" has no text around \
                 {title}, so it would strip nothing",
                "site \"mystore\": profile.title_strip: \"{title} on {title}\" has {title} \
                 more than once",
            ]
        );
    }

    #[test]
    fn a_file_that_is_not_toml_is_refused_with_where() {
        let err = check("[[site]\nname = 1", "http://127.0.0.1:8080")
            .err()
            .expect("refused");
        assert!(format!("{err:#}").contains("line 1"), "{err:#}");
    }
}
