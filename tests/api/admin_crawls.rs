//! One crawl's admin page, `/admin/crawls/{id}`, after a real crawl of the
//! demo stores in which one site's profile matches nothing on its pages:
//! each site's pages read and failed, the failed tasks with their reason,
//! and who may see it.

use std::time::Duration;

use bazaar::demo::SITES_TOML_TEMPLATE;
use serde_json::Value;

use crate::accounts::Visitor;
use crate::auction_pages::account;
use crate::helpers::{spawn_app, AppOptions, Backend};
use crate::on_both_backends;

/// Failed tasks a site's table lists before linking to the rest.
const SHOWN: usize = 20;

/// The part of `html` from the element with `id` to the end of its section.
fn section<'h>(html: &'h str, id: &str) -> &'h str {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[start..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}

/// `text` as the templates write it into HTML.
fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

async fn a_crawls_page_shows_each_sites_failed_pages_and_why(backend: Backend) {
    // Arrange: GameVault's profile reads its pages with CSS selectors that
    // match nothing there, so each of its game pages yields nothing.
    let sites = SITES_TOML_TEMPLATE
        .replacen(
            "extract = \"meta\"\nstore = \"GameVault\"",
            "extract = \"css\"\nstore = \"GameVault\"",
            1,
        )
        .replacen(
            "next = \"a.next\"\n",
            "next = \"a.next\"\n[site.profile.css]\ntitle = \"h1.no-such-title\"\nprice = \".no-such-price\"\n",
            1,
        );
    let css = |text: &str| text.matches("extract = \"css\"").count();
    assert_eq!(
        (sites.matches("no-such").count(), css(&sites)),
        (2, css(SITES_TOML_TEMPLATE) + 1),
        "the GameVault profile changed: {sites}"
    );
    let app = spawn_app(
        backend,
        AppOptions {
            local_workers: 1,
            sites: Some(sites),
            ..Default::default()
        },
    )
    .await;
    let crawl = app.start_crawl().await;
    app.wait_crawl(crawl, Duration::from_secs(60)).await;
    let mut admin = account(&app, "root", true).await;
    let mut member = account(&app, "ana", false).await;
    let mut visitor = Visitor::new(&app);
    let path = format!("/admin/crawls/{crawl}");

    // Act
    let page = admin.get(&path).await;

    // Assert: the summary, and the list links to the page.
    assert_eq!(page.status, 200, "{}", page.body);
    let html = &page.body;
    assert!(
        html.contains("<dt>Status</dt><dd id=\"crawl-status\">finished</dd>"),
        "{html}"
    );
    let dead = app
        .count(&format!(
            "SELECT COUNT(*) FROM tasks WHERE crawl_id = {crawl} AND state = 'dead'"
        ))
        .await;
    assert!(
        html.contains(&format!(
            "<a href=\"/admin/tasks?crawl={crawl}&amp;state=dead\" data-state=\"dead\">dead {dead}</a>"
        )),
        "{html}"
    );
    let list = admin.get("/admin/crawls").await.body;
    assert!(
        list.contains(&format!("<a href=\"/admin/crawls/{crawl}\">{crawl}</a>")),
        "{list}"
    );

    // Every GameVault game page died at its first attempt, for one reason,
    // and the page says so before anything else about the site.
    let failed = app
        .rows(&format!(
            "SELECT id, url, state, attempts, last_error FROM tasks \
             WHERE crawl_id = {crawl} AND site = 'gamevault' AND kind = 'page' ORDER BY id"
        ))
        .await;
    assert!(!failed.is_empty(), "GameVault's listing led to game pages");
    let reason = failed[0][4].clone();
    assert!(
        reason.starts_with("no product found on the page"),
        "{failed:?}\nlog:\n{}",
        app.log()
    );
    for row in &failed {
        assert_eq!((&row[2][..], &row[3][..], &row[4]), ("dead", "1", &reason));
    }
    let shown = escaped(&reason);
    let gamevault = section(html, "site-gamevault");
    assert!(
        gamevault.contains(&format!(
            "<p class=\"banner verdict\" role=\"alert\">0 items from {} game pages; every one failed: {shown}</p>",
            failed.len()
        )),
        "{gamevault}"
    );
    assert!(
        gamevault.contains(&format!(
            "<li>{} game pages: <span class=\"error\">{shown}</span></li>",
            failed.len()
        )),
        "{gamevault}"
    );
    assert!(
        gamevault.contains(&format!(
            "Game pages: 0 of {n} read · <a href=\"/admin/tasks?crawl={crawl}&#38;site=gamevault&#38;state=queued\">failed, to retry: 0</a> · \
             <a href=\"/admin/tasks?crawl={crawl}&#38;site=gamevault&#38;state=dead\">dead: {n}</a>",
            n = failed.len()
        )),
        "{gamevault}"
    );
    for row in failed.iter().take(SHOWN) {
        let (id, url) = (&row[0], &row[1]);
        let tr = format!(
            "<tr id=\"task-{id}\" class=\"state-dead\">\n        \
             <td><a href=\"/admin/tasks/{id}\">{id}</a></td><td>page</td>\n        \
             <td class=\"url\">{url}</td><td>dead</td><td>1</td>\n        \
             <td class=\"error\">{shown}</td>"
        );
        assert!(gamevault.contains(&tr), "no row {tr} in {gamevault}");
    }
    let rows = gamevault.matches("<tr id=\"task-").count();
    assert_eq!(rows, failed.len().min(SHOWN));
    if failed.len() > SHOWN {
        assert!(
            gamevault.contains(&format!(
                "<a href=\"/admin/tasks?crawl={crawl}&#38;site=gamevault&#38;state=dead\">{} more dead</a>",
                failed.len() - SHOWN
            )),
            "{gamevault}"
        );
    }

    // The other stores yielded their items: no alarm. RetroShelf's page
    // that robots.txt keeps out is listed with its reason.
    let pixelbay = section(html, "site-pixelbay");
    assert!(!pixelbay.contains("role=\"alert\""), "{pixelbay}");
    assert!(pixelbay.contains("<p>No page failed.</p>"), "{pixelbay}");
    let retroshelf = section(html, "site-retroshelf");
    assert!(!retroshelf.contains("role=\"alert\""), "{retroshelf}");
    let blocked = app
        .rows(&format!(
            "SELECT id, last_error FROM tasks WHERE crawl_id = {crawl} AND site = 'retroshelf' AND state = 'cancelled'"
        ))
        .await;
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert!(blocked[0][1].contains("robots.txt"), "{blocked:?}");
    assert!(
        retroshelf.contains(&format!(
            "<tr id=\"task-{}\" class=\"state-cancelled\">",
            blocked[0][0]
        )),
        "{retroshelf}"
    );
    assert!(
        retroshelf.contains(&format!(
            "<td class=\"error\">{}</td>",
            escaped(&blocked[0][1])
        )),
        "{retroshelf}"
    );

    // Scripts read the same with the API token.
    let api = |path: String| {
        app.client
            .get(format!("{}{path}", app.base))
            .bearer_auth(&app.api_token)
            .send()
    };
    let mut resp = api(format!("/api/admin/crawls/{crawl}"))
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().limit(4 << 20).await.expect("json");
    assert_eq!(body["crawl"]["id"], crawl);
    assert_eq!(body["crawl"]["tasks"]["dead"], dead);
    let site = |name: &str| {
        body["sites"]
            .as_array()
            .and_then(|sites| sites.iter().find(|s| s["site"] == name))
            .unwrap_or_else(|| panic!("no {name} in {body}"))
            .clone()
    };
    let gamevault = site("gamevault");
    assert_eq!(
        gamevault["verdict"],
        format!(
            "0 items from {} game pages; every one failed: {reason}",
            failed.len()
        ),
        "{gamevault}"
    );
    assert_eq!(gamevault["pages"]["total"], failed.len());
    assert_eq!(gamevault["pages"]["done"], 0);
    assert_eq!(gamevault["failed"]["dead"], failed.len());
    let listed = gamevault["failures"].as_array().expect("failures");
    assert_eq!(listed.len(), failed.len().min(SHOWN));
    assert_eq!(listed[0]["url"], failed[0][1]);
    assert_eq!(listed[0]["last_error"], reason);
    assert_eq!(site("pixelbay")["verdict"], Value::Null);
    let resp = api(format!("/api/admin/crawls/{}", crawl + 1000))
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 404);

    // Others are turned away as from every admin page; a crawl that does not
    // exist is the 404 page.
    let page = visitor.get(&path).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(
        page.location
            .as_deref()
            .is_some_and(|to| to.starts_with("/login?next=")),
        "{:?}",
        page.location
    );
    let page = member.get(&path).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body.contains("Only admins can see this page."),
        "{}",
        page.body
    );
    for unknown in [
        format!("/admin/crawls/{}", crawl + 1000),
        "/admin/crawls/latest".to_owned(),
        "/admin/crawls/99999999999999999999".to_owned(),
    ] {
        let page = admin.get(&unknown).await;
        assert_eq!(page.status, 404, "{unknown}: {}", page.body);
        assert!(
            page.body.contains("There is nothing at this address."),
            "{unknown}: {}",
            page.body
        );
    }
}
on_both_backends!(a_crawls_page_shows_each_sites_failed_pages_and_why);
