//! `bazaar sites check` and `bazaar sites lint`: what an operator adding a
//! store runs before starting a crawl. `check` reads one page the way a
//! worker would (the same fetcher, limits and robots.txt) and prints what
//! the site's profile finds on it, and which rule found each field; `lint`
//! reads a sites file and lists every problem in it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use url::Url;

use crate::crawl::sites::{check as check_sites, host_key, Sites};
use crate::domain::money::Money;
use crate::protocol::worker::{Item, Profile, TaskKind};
use crate::scrape::fetch::Fetcher;
use crate::scrape::robots::path_and_query;
use crate::scrape::{
    extract_listing, extract_page_traced, Field, FieldTrace, ProductTrace, Robots,
};

/// The most links a listing check prints; the rest are counted.
const LINKS_SHOWN: usize = 20;

/// What `bazaar sites check` was asked.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub sites_file: Option<PathBuf>,
    pub public_url: String,
    pub site: String,
    pub url: String,
    /// Read this saved page instead of fetching `url`.
    pub html: Option<PathBuf>,
    /// Read the page as this kind; by default a start URL is a listing and
    /// anything else a game page.
    pub kind: Option<TaskKind>,
}

/// Runs a check and prints its findings; the exit code is 0 when the
/// profile found something, 1 when it found nothing, 2 when the page could
/// not be read at all.
pub async fn check(options: CheckOptions) -> anyhow::Result<i32> {
    let sites = Sites::load(options.sites_file.as_deref(), &options.public_url)?;
    let Some(site) = sites.get(&options.site) else {
        let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
        anyhow::bail!(
            "no site {:?} in {}; the sites are: {}",
            options.site,
            sites_source(options.sites_file.as_deref()),
            names.join(", ")
        );
    };
    let url =
        Url::parse(&options.url).with_context(|| format!("{:?} is not a URL", options.url))?;
    let profile = &site.profile;
    println!(
        "site {} ({} profile, store {}, currency {})",
        site.name,
        profile.extract.as_str(),
        profile.store,
        profile.currency
    );
    let kind = options.kind.unwrap_or(if site.start.contains(&url) {
        TaskKind::Listing
    } else {
        TaskKind::Page
    });
    let (html, url) = match &options.html {
        Some(path) => {
            let html = std::fs::read_to_string(path)
                .with_context(|| format!("could not read {}", path.display()))?;
            println!("read {} ({}) as {url}", path.display(), size(html.len()));
            (html, url)
        }
        None => match fetch(&url, profile, site.politeness.robots).await {
            Ok(page) => page,
            Err(reason) => {
                println!("! {reason}");
                return Ok(2);
            }
        },
    };
    let found = match kind {
        TaskKind::Listing => check_listing(&html, &url, &site.name, profile),
        TaskKind::Page => check_page(&html, &url, profile),
    };
    Ok(if found { 0 } else { 1 })
}

/// Fetches like a worker: robots.txt first when the site obeys it, then
/// the page on the site's allowed hosts.
async fn fetch(url: &Url, profile: &Profile, robots: bool) -> Result<(String, Url), String> {
    let fetcher = Fetcher::new();
    if !crate::crawl::sites::is_allowed(url, &profile.allowed_hosts) {
        return Err(format!(
            "{} is not on the site's allowed_hosts ({}); a worker would refuse it",
            url,
            profile.allowed_hosts.join(", ")
        ));
    }
    if robots {
        let host = host_key(url).unwrap_or_default();
        let robots_url = format!("{}://{host}/robots.txt", url.scheme());
        let rules = match fetcher.robots(&robots_url).await {
            Ok(Some(text)) => Robots::parse(&text, "bazaar"),
            Ok(None) => Robots::allow_all(),
            Err(err) => {
                println!("* {robots_url} could not be read ({err}); a crawl would allow all");
                Robots::allow_all()
            }
        };
        let path = path_and_query(url);
        if !rules.allows(&path) {
            return Err(format!(
                "{robots_url} disallows {path} for bazaar, so a crawl would skip it; \
                 to check the profile anyway, save the page and pass --html FILE"
            ));
        }
    }
    let page = fetcher
        .page(url, &profile.allowed_hosts)
        .await
        .map_err(|err| format!("could not fetch {url}: {err}"))?;
    let redirected = if page.url == *url {
        String::new()
    } else {
        format!(", redirected to {}", page.url)
    };
    println!("fetched {url} ({}{redirected})", size(page.html.len()));
    Ok((page.html, page.url))
}

fn check_listing(html: &str, url: &Url, site: &str, profile: &Profile) -> bool {
    println!(
        "as a listing (links: {:?}, next: {:?}):",
        profile.links,
        profile.next.as_deref().unwrap_or("")
    );
    let links = match extract_listing(html, url, site, profile) {
        Ok(links) => links,
        Err(err) => {
            println!("  nothing found: {err}");
            return false;
        }
    };
    let (games, next): (Vec<_>, Vec<_>) = links.iter().partition(|l| l.kind == TaskKind::Page);
    println!("  {} game link{}", games.len(), plural(games.len()));
    for link in games.iter().take(LINKS_SHOWN) {
        println!("    {}", link.url);
    }
    if games.len() > LINKS_SHOWN {
        println!("    … and {} more", games.len() - LINKS_SHOWN);
    }
    match next.first() {
        Some(next) => println!("  next listing page: {}", next.url),
        None if profile.next.is_some() => {
            println!("  no next listing page (the `next` selector matched no link)")
        }
        None => println!("  no next listing page (the profile has no `next` selector)"),
    }
    if games.is_empty() {
        println!(
            "  nothing found: the `links` selector {:?} matched no element with a link",
            profile.links
        );
    }
    !games.is_empty()
}

fn check_page(html: &str, url: &Url, profile: &Profile) -> bool {
    println!("as a game page:");
    let (result, trace) = extract_page_traced(html, url, profile);
    match result {
        Ok(items) => {
            for (n, item) in items.iter().enumerate() {
                let product = trace.products.iter().find(|p| p.item == Some(n));
                let source = product
                    .map(|p| format!(" ({})", p.source))
                    .unwrap_or_default();
                println!("  offer {} of {}{source}", n + 1, items.len());
                print_item(item, product);
            }
            for product in trace.products.iter().filter(|p| p.item.is_none()) {
                let note = product.note.as_deref().unwrap_or("no item");
                println!("  also considered {}: {note}", product.source);
            }
            true
        }
        Err(err) => {
            println!("  nothing found: {err}");
            println!("  how it looked:");
            for line in trace.lines() {
                println!("    {line}");
            }
            false
        }
    }
}

/// One offer, each field with the rule that read it.
fn print_item(item: &Item, product: Option<&ProductTrace>) {
    let money = |cents: i64| Money::new(cents, &item.currency).with_code();
    let external = item
        .external_ids
        .iter()
        .map(|(kind, id)| format!("{kind}:{id}"))
        .collect::<Vec<_>>()
        .join(", ");
    let values = [
        (Field::Title, item.title.clone()),
        (Field::Price, money(item.price_cents)),
        (
            Field::RegularPrice,
            item.regular_cents
                .map(money)
                .unwrap_or_else(|| "(none: not on sale)".into()),
        ),
        (Field::Currency, item.currency.clone()),
        (
            Field::Availability,
            if item.available {
                "in stock"
            } else {
                "out of stock"
            }
            .to_owned(),
        ),
        (
            Field::ExternalId,
            if external.is_empty() {
                "(none)".to_owned()
            } else {
                external
            },
        ),
    ];
    // Rules line up after the longest value (up to a point).
    let width = values
        .iter()
        .map(|(_, v)| v.chars().count())
        .max()
        .unwrap_or(0)
        .min(40);
    for (field, value) in values {
        let rule = match product.and_then(|p| p.field(field)) {
            Some(FieldTrace {
                rule: Some(rule), ..
            }) => format!("  <- {rule}"),
            Some(FieldTrace { looked_at, .. }) if !looked_at.is_empty() => {
                format!("  (looked at {})", looked_at.join("; "))
            }
            _ => String::new(),
        };
        println!("    {:<14} {value:<width$}{rule}", field.name());
    }
    println!("    {:<14} {}", "url", item.url);
}

/// Lists every problem in a sites file; 0 when there is none, 1 otherwise.
pub fn lint(file: Option<&Path>, public_url: &str) -> anyhow::Result<i32> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("could not read the sites file {}", path.display()))?,
        None => crate::crawl::sites::DEMO_SITES.to_owned(),
    };
    let source = sites_source(file);
    let checked = match check_sites(&text, public_url) {
        Ok(checked) => checked,
        Err(err) => {
            println!("! {source} is not a sites file: {err:#}");
            return Ok(1);
        }
    };
    for problem in &checked.problems {
        println!("! {problem}");
    }
    for key in &checked.unknown_keys {
        println!("! unknown key {key}: nothing reads it (a typo?)");
    }
    let names: Vec<&str> = checked.sites.iter().map(|s| s.name.as_str()).collect();
    let bad = checked.problems.len() + checked.unknown_keys.len();
    if bad == 0 {
        println!(
            "{source}: {} site{} ({}), no problems",
            names.len(),
            plural(names.len()),
            names.join(", ")
        );
        Ok(0)
    } else {
        println!("{source}: {bad} problem{}", plural(bad));
        Ok(1)
    }
}

fn sites_source(file: Option<&Path>) -> String {
    match file {
        Some(path) => path.display().to_string(),
        None => "the built-in demo sites (give --sites FILE or crawl.sites_file)".to_owned(),
    }
}

fn size(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} bytes")
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
