//! `bazaar sites check` and `bazaar sites lint` against a running server's
//! demo stores: what an operator adding a store sees on stdout, and the
//! exit code a script can test.

use std::process::Command;

use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};

/// Runs `bazaar sites ARGS` with the demo sites pointing at `app`;
/// (exit code, stdout, stderr).
fn sites(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bazaar"))
        .arg("sites")
        .args(args)
        .current_dir(app.dir.path())
        .env("BAZAAR_SERVER__PUBLIC_URL", &app.base)
        .env("BAZAAR_DATA_DIR", app.dir.path())
        .output()
        .expect("run bazaar sites");
    (
        output.status.code().expect("an exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[actix_web::test]
async fn a_start_url_is_read_as_a_listing_with_its_game_links_and_next_page() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let start = format!("{}/demo/gamevault/", app.base);

    let (code, out, err) = sites(&app, &["check", "gamevault", &start]);

    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("site gamevault (meta profile, store GameVault"),
        "{out}"
    );
    assert!(out.contains(&format!("fetched {start}")), "{out}");
    assert!(out.contains("as a listing"), "{out}");
    assert!(
        out.contains(&format!("{}/demo/gamevault/p/portal-2", app.base)),
        "{out}"
    );
    assert!(
        out.contains(&format!("next listing page: {start}?page=2")),
        "{out}"
    );
}

#[actix_web::test]
async fn a_game_page_shows_each_field_and_the_rule_that_read_it() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let page = format!("{}/demo/gamevault/p/portal-2", app.base);

    let (code, out, err) = sites(&app, &["check", "gamevault", &page]);

    assert_eq!(code, 0, "{out}{err}");
    let line = |field: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(field))
            .unwrap_or_else(|| panic!("no {field} line in {out}"))
            .to_owned()
    };
    assert!(line("title").contains("PORTAL 2"), "{out}");
    assert!(line("title").contains("<- OpenGraph og:title"), "{out}");
    assert!(
        line("price").contains("<- OpenGraph product:price:amount"),
        "{out}"
    );
    assert!(line("currency").contains("EUR"), "{out}");
    assert!(line("availability").contains("in stock"), "{out}");
    assert!(line("external id").contains("steam:620"), "{out}");
}

#[actix_web::test]
async fn a_profile_that_matches_nothing_says_where_it_looked() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    // PixelBay's profile reads JSON-LD; GameVault's pages have none.
    let page = format!("{}/demo/gamevault/p/portal-2", app.base);

    let (code, out, _) = sites(&app, &["check", "pixelbay", &page]);

    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("nothing found: no product found on the page"),
        "{out}"
    );
    assert!(out.contains("how it looked:"), "{out}");
    assert!(out.contains("JSON-LD"), "{out}");
}

#[actix_web::test]
async fn a_saved_page_is_read_without_fetching() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let saved = app.dir.path().join("saved.html");
    std::fs::write(
        &saved,
        r#"<html><head><script type="application/ld+json">
        {"@context":"https://schema.org","@type":"VideoGame","name":"Celeste",
         "offers":{"@type":"Offer","price":"4.99","priceCurrency":"USD",
                   "availability":"https://schema.org/InStock"}}
        </script></head><body></body></html>"#,
    )
    .expect("save a page");
    // Nothing listens at this path; only the saved copy is read.
    let url = format!("{}/nowhere/celeste", app.base);

    let (code, out, err) = sites(
        &app,
        &[
            "check",
            "--html",
            saved.to_str().expect("a path"),
            "pixelbay",
            &url,
        ],
    );

    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("as {url}")), "{out}");
    assert!(!out.contains("fetched"), "{out}");
    assert!(out.contains("Celeste"), "{out}");
    assert!(out.contains("4.99 USD"), "{out}");
}

#[actix_web::test]
async fn a_page_robots_txt_forbids_or_off_the_site_is_not_fetched() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let private = format!("{}/demo/retroshelf/private/staff-picks", app.base);

    let (code, out, _) = sites(&app, &["check", "retroshelf", &private]);

    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("robots.txt disallows /demo/retroshelf/private/staff-picks"),
        "{out}"
    );
    assert!(out.contains("--html FILE"), "{out}");

    let (code, out, _) = sites(
        &app,
        &["check", "retroshelf", "https://elsewhere.example/game"],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("is not on the site's allowed_hosts"), "{out}");

    let (code, out, err) = sites(&app, &["check", "nosuchstore", &private]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("no site \"nosuchstore\""), "{err}");
    assert!(err.contains("pixelbay, gamevault, retroshelf"), "{err}");
}

#[actix_web::test]
async fn lint_passes_the_demo_sites_and_lists_every_problem_of_a_bad_file() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;

    let (code, out, err) = sites(&app, &["lint"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("3 sites (pixelbay, gamevault, retroshelf), no problems"),
        "{out}"
    );

    let bad = app.dir.path().join("sites.toml");
    std::fs::write(
        &bad,
        r#"
        [[site]]
        name = "mystore"
        start = ["https://shop.example.com/games/", "https://cdn.example.com/"]
        allowed_hosts = ["shop.example.com"]
        [site.politeness]
        delay_ms = 1000
        concurency = 1
        [site.profile]
        extract = "css"
        store = "MyStore"
        links = "a.game >"
        [site.profile.css]
        title = "h1"
        price = ".price::"
        "#,
    )
    .expect("write a sites file");
    let (code, out, _) = sites(&app, &["lint", "--sites", bad.to_str().expect("a path")]);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "start URL https://cdn.example.com/ is on cdn.example.com, which allowed_hosts does not list",
        r#"profile.links "a.game >" is not a CSS selector"#,
        r#"profile.css.price ".price::" is not a CSS selector"#,
        "unknown key site.0.politeness.concurency",
        "4 problems",
    ] {
        assert!(out.contains(expected), "{expected:?} in:\n{out}");
    }
}
