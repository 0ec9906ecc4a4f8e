//! HTTP-level tests of the demo stores, run against the real routes and templates.

use super::pages::{OfferLd, PixelBayGame, PriceSpecLd, VideoGameLd};
use super::*;
use actix_web::{test as actix_test, web, App};
use askama::Template;

async fn get(seed: u64, uri: &str) -> (u16, String) {
    let app = actix_test::init_service(
        App::new()
            .app_data(web::Data::new(DemoState::new(seed)))
            .configure(configure),
    )
    .await;
    let resp =
        actix_test::call_service(&app, actix_test::TestRequest::get().uri(uri).to_request()).await;
    let status = resp.status().as_u16();
    let body = actix_test::read_body(resp).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn offers_of(store: &str, seed: u64) -> Vec<ExpectedOffer> {
    expected_catalog(seed)
        .into_iter()
        .filter(|o| o.store == store)
        .collect()
}

/// The JSON inside the page's ld+json script element.
fn json_ld(body: &str) -> serde_json::Value {
    let open = "<script type=\"application/ld+json\">";
    let start = body.find(open).map(|i| i + open.len()).unwrap();
    let end = body[start..].find("</script>").unwrap() + start;
    serde_json::from_str(&body[start..end]).unwrap()
}

#[actix_rt::test]
async fn pixelbay_page_one_lists_eight_games_and_links_to_page_two() {
    let (status, body) = get(1, "/demo/pixelbay/").await;
    assert_eq!(status, 200);
    assert_eq!(
        body.matches("<a class=\"game-link\" href=\"/demo/pixelbay/games/")
            .count(),
        8
    );
    assert!(body.contains("<a rel=\"next\" href=\"/demo/pixelbay/?page=2\">"));
}

#[actix_rt::test]
async fn pixelbay_last_page_has_no_next_link() {
    let total = offers_of("PixelBay", 1).len();
    let last = total.div_ceil(8);
    let (status, body) = get(1, &format!("/demo/pixelbay/?page={last}")).await;
    assert_eq!(status, 200);
    assert!(!body.contains("rel=\"next\""));
    assert_eq!(
        body.matches("class=\"game-link\"").count(),
        total - (last - 1) * 8
    );
}

#[actix_rt::test]
async fn every_listing_page_together_links_every_game_of_the_store_once() {
    let seed = 5;
    for (store, first, next_marker) in [
        ("PixelBay", "/demo/pixelbay/", "<a rel=\"next\" href=\""),
        ("GameVault", "/demo/gamevault/", "<a class=\"next\" href=\""),
        (
            "RetroShelf",
            "/demo/retroshelf/",
            "<a class=\"next-page\" href=\"",
        ),
    ] {
        let mut uri = first.to_owned();
        let mut slugs = Vec::new();
        for _ in 0..20 {
            let (status, body) = get(seed, &uri).await;
            assert_eq!(status, 200, "{uri}");
            for link in ["/games/", "/p/", "/item/"] {
                for part in body.split(link).skip(1) {
                    slugs.push(part.split('"').next().unwrap().to_owned());
                }
            }
            match body.find(next_marker) {
                Some(i) => {
                    let rest = &body[i + next_marker.len()..];
                    uri = rest.split('"').next().unwrap().to_owned();
                }
                None => break,
            }
        }
        let expected: Vec<String> = offers_of(store, seed)
            .iter()
            .map(|o| o.slug.to_owned())
            .collect();
        assert_eq!(slugs, expected, "{store}");
    }
}

#[actix_rt::test]
async fn pixelbay_game_page_has_json_ld_with_the_expected_offer() {
    let seed = 11;
    for o in offers_of("PixelBay", seed) {
        let (status, body) = get(seed, &format!("/demo/pixelbay/games/{}", o.slug)).await;
        assert_eq!(status, 200);
        let v = json_ld(&body);
        assert_eq!(v["@context"], "https://schema.org");
        assert_eq!(v["@type"], "VideoGame");
        assert_eq!(v["name"], o.store_title);
        assert_eq!(v["offers"]["price"], decimal_price(o.price_cents));
        assert_eq!(v["offers"]["priceCurrency"], "EUR");
        assert_eq!(
            v["offers"]["priceSpecification"]["price"],
            decimal_price(o.regular_cents)
        );
        let availability = if o.available { "InStock" } else { "OutOfStock" };
        assert_eq!(
            v["offers"]["availability"],
            format!("https://schema.org/{availability}")
        );
        match o.steam_id {
            Some(id) => assert_eq!(
                v["sameAs"],
                format!("https://store.steampowered.com/app/{id}/")
            ),
            None => assert!(v.get("sameAs").is_none()),
        }
    }
}

#[actix_rt::test]
async fn portal_2_json_ld_has_exactly_the_documented_shape() {
    let (_, body) = get(1, "/demo/pixelbay/games/portal-2").await;
    let o = offers_of("PixelBay", 1)
        .into_iter()
        .find(|o| o.slug == "portal-2")
        .unwrap();
    let expected = format!(
        r#"{{"@context":"https://schema.org","@type":"VideoGame","name":"Portal 2","sameAs":"https://store.steampowered.com/app/620/","offers":{{"@type":"Offer","price":"{}","priceCurrency":"EUR","availability":"https://schema.org/{}","priceSpecification":{{"@type":"UnitPriceSpecification","priceType":"https://schema.org/ListPrice","price":"9.99","priceCurrency":"EUR"}}}}}}"#,
        decimal_price(o.price_cents),
        if o.available { "InStock" } else { "OutOfStock" },
    );
    assert!(body.contains(&expected), "{body}");
}

#[actix_rt::test]
async fn gamevault_page_one_lists_seven_products_and_links_to_page_two() {
    let (status, body) = get(1, "/demo/gamevault/").await;
    assert_eq!(status, 200);
    assert_eq!(
        body.matches("<a class=\"product\" href=\"/demo/gamevault/p/")
            .count(),
        7
    );
    assert!(body.contains("<a class=\"next\" href=\"/demo/gamevault/?page=2\">"));
}

#[actix_rt::test]
async fn gamevault_last_page_has_no_next_link() {
    let last = offers_of("GameVault", 1).len().div_ceil(7);
    let (status, body) = get(1, &format!("/demo/gamevault/?page={last}")).await;
    assert_eq!(status, 200);
    assert!(!body.contains("class=\"next\""));
}

#[actix_rt::test]
async fn gamevault_pages_use_opengraph_or_for_every_third_game_microdata() {
    let seed = 4;
    let offers = offers_of("GameVault", seed);
    assert!(offers.iter().any(|o| o.markup == "microdata"));
    assert!(offers.iter().any(|o| o.markup == "opengraph"));
    for o in offers {
        let (status, body) = get(seed, &format!("/demo/gamevault/p/{}", o.slug)).await;
        assert_eq!(status, 200);
        let price = decimal_price(o.price_cents);
        if o.markup == "opengraph" {
            assert!(body.contains(&format!(
                "<meta property=\"product:price:amount\" content=\"{price}\">"
            )));
            assert!(body.contains("<meta property=\"product:price:currency\" content=\"EUR\">"));
            assert!(body.contains(&format!(
                "<meta property=\"product:original_price:amount\" content=\"{}\">",
                decimal_price(o.regular_cents)
            )));
            let avail = if o.available { "instock" } else { "oos" };
            assert!(body.contains(&format!(
                "<meta property=\"product:availability\" content=\"{avail}\">"
            )));
            assert!(!body.contains("itemprop"));
        } else {
            assert_eq!(o.markup, "microdata");
            assert!(body.contains(
                "<div itemscope itemtype=\"https://schema.org/Product\"><h1 itemprop=\"name\">"
            ));
            assert!(body.contains(&format!("<meta itemprop=\"price\" content=\"{price}\">")));
            assert!(body.contains("<meta itemprop=\"priceCurrency\" content=\"EUR\">"));
            let avail = if o.available { "InStock" } else { "OutOfStock" };
            assert!(body.contains(&format!(
                "<link itemprop=\"availability\" href=\"https://schema.org/{avail}\">"
            )));
            assert!(!body.contains("product:price:amount"));
        }
        match o.steam_id {
            Some(id) => assert!(body.contains(&format!(
                "<a href=\"https://store.steampowered.com/app/{id}/\">View on Steam</a>"
            ))),
            None => assert!(!body.contains("View on Steam")),
        }
    }
}

#[actix_rt::test]
async fn gamevault_shows_its_own_spelling_of_portal_2_escaped() {
    let (_, body) = get(1, "/demo/gamevault/p/portal-2").await;
    assert!(body.contains("<meta property=\"og:title\" content=\"PORTAL 2™\">"));
}

#[actix_rt::test]
async fn retroshelf_page_one_lists_six_games_and_links_to_page_two() {
    let (status, body) = get(1, "/demo/retroshelf/").await;
    assert_eq!(status, 200);
    assert!(body.contains("<ul class=\"games\">"));
    assert_eq!(
        body.matches("<li><a class=\"game\" href=\"/demo/retroshelf/item/")
            .count(),
        6
    );
    assert!(body.contains("<a class=\"next-page\" href=\"/demo/retroshelf/page/2\">"));
    assert!(!body.contains("/private/"));
}

#[actix_rt::test]
async fn retroshelf_last_page_has_no_next_link_but_a_disallowed_private_link() {
    let last = offers_of("RetroShelf", 1).len().div_ceil(6);
    let (status, body) = get(1, &format!("/demo/retroshelf/page/{last}")).await;
    assert_eq!(status, 200);
    assert!(!body.contains("next-page"));
    assert!(body.contains(&format!("href=\"{RETROSHELF_PRIVATE_PATH}\"")));
    let (status, private) = get(1, RETROSHELF_PRIVATE_PATH).await;
    assert_eq!(status, 200);
    assert!(!private.contains("class=\"price\""));
    assert!(!private.contains('€'));
}

#[actix_rt::test]
async fn retroshelf_game_pages_show_european_prices_stock_and_steam_id() {
    let seed = 9;
    for o in offers_of("RetroShelf", seed) {
        let (status, body) = get(seed, &format!("/demo/retroshelf/item/{}", o.slug)).await;
        assert_eq!(status, 200);
        let now = if o.price_cents == 0 {
            "Free".to_owned()
        } else {
            euro_price(o.price_cents)
        };
        assert!(body.contains(&format!(
            "<div class=\"price\"><span class=\"now\">{now}</span> <s class=\"was\">{}</s></div>",
            euro_price(o.regular_cents)
        )));
        assert_eq!(
            body.contains("<p class=\"stock out\">Out of stock</p>"),
            !o.available
        );
        match o.steam_id {
            Some(id) => assert!(body.contains(&format!("<span class=\"steam-id\">{id}</span>"))),
            None => assert!(!body.contains("steam-id")),
        }
    }
}

#[actix_rt::test]
async fn retroshelf_titles_are_html_escaped() {
    let (_, body) = get(1, "/demo/retroshelf/item/moss-and-marrow").await;
    assert!(
        body.contains("<h1 class=\"title\">Moss &#38; Marrow</h1>")
            || body.contains("<h1 class=\"title\">Moss &amp; Marrow</h1>"),
        "{body}"
    );
}

#[actix_rt::test]
async fn a_free_game_at_retroshelf_says_free() {
    let free = offers_of("RetroShelf", 1)
        .into_iter()
        .find(|o| o.price_cents == 0)
        .unwrap();
    let (_, body) = get(1, &format!("/demo/retroshelf/item/{}", free.slug)).await;
    assert!(body.contains("<span class=\"now\">Free</span>"));
}

#[actix_rt::test]
async fn a_different_seed_changes_prices_on_the_pages() {
    let a = offers_of("PixelBay", 1);
    let b = offers_of("PixelBay", 2);
    let changed = a
        .iter()
        .zip(&b)
        .find(|(x, y)| x.price_cents != y.price_cents)
        .map(|(x, _)| x.slug)
        .unwrap();
    let uri = format!("/demo/pixelbay/games/{changed}");
    let (_, one) = get(1, &uri).await;
    let (_, two) = get(2, &uri).await;
    assert_ne!(
        json_ld(&one)["offers"]["price"],
        json_ld(&two)["offers"]["price"]
    );
}

#[actix_rt::test]
async fn set_seed_takes_effect_on_the_next_request() {
    let state = web::Data::new(DemoState::new(1));
    let app =
        actix_test::init_service(App::new().app_data(state.clone()).configure(configure)).await;
    let changed = offers_of("GameVault", 1)
        .iter()
        .zip(&offers_of("GameVault", 2))
        .find(|(x, y)| x.price_cents != y.price_cents && x.markup == "opengraph")
        .map(|(_, y)| y.clone())
        .unwrap();
    state.set_seed(2);
    assert_eq!(state.seed(), 2);
    let req = actix_test::TestRequest::get()
        .uri(&format!("/demo/gamevault/p/{}", changed.slug))
        .to_request();
    let body = actix_test::call_and_read_body(&app, req).await;
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains(&format!(
        "<meta property=\"product:price:amount\" content=\"{}\">",
        decimal_price(changed.price_cents)
    )));
}

#[actix_rt::test]
async fn unknown_stores_slugs_and_pages_are_404_pages() {
    for uri in [
        "/demo/pixelbay/games/no-such-game",
        "/demo/pixelbay/games/undertale",
        "/demo/gamevault/p/no-such-game",
        "/demo/retroshelf/item/no-such-game",
        "/demo/nostore/",
        "/demo/nostore",
        "/demo/pixelbay/?page=abc",
        "/demo/pixelbay/?page=0",
        "/demo/pixelbay/?page=-1",
        "/demo/pixelbay/?page=999",
        "/demo/pixelbay/?page=99999999999999999999999",
        "/demo/gamevault/?page=",
        "/demo/retroshelf/page/0",
        "/demo/retroshelf/page/abc",
        "/demo/retroshelf/page/99",
    ] {
        let (status, body) = get(1, uri).await;
        assert_eq!(status, 404, "{uri}");
        assert!(body.contains("<h1>Not found</h1>"), "{uri}");
    }
}

#[actix_rt::test]
async fn a_store_root_without_slash_redirects_to_the_listing() {
    let app = actix_test::init_service(
        App::new()
            .app_data(web::Data::new(DemoState::new(1)))
            .configure(configure),
    )
    .await;
    let resp = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/demo/pixelbay")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers().get("location").unwrap(), "/demo/pixelbay/");
}

#[actix_rt::test]
async fn robots_txt_disallows_api_admin_and_the_private_area() {
    let (status, body) = get(1, "/robots.txt").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "User-agent: *\nDisallow: /api/\nDisallow: /admin/\nDisallow: /demo/retroshelf/private/\n"
    );
}

#[test]
fn json_ld_escaping_keeps_a_script_closing_title_inside_the_script() {
    let title = "Evil</script><script>alert(1)</script><!-- x";
    let ld = VideoGameLd {
        context: "https://schema.org",
        kind: "VideoGame",
        name: title,
        same_as: None,
        offers: OfferLd {
            kind: "Offer",
            price: "1.00".into(),
            price_currency: "EUR",
            availability: "https://schema.org/InStock",
            price_specification: PriceSpecLd {
                kind: "UnitPriceSpecification",
                price_type: "https://schema.org/ListPrice",
                price: "1.00".into(),
                price_currency: "EUR",
            },
        },
    };
    let json = json_for_script(&ld).unwrap();
    assert!(!json.contains("</"));
    assert!(!json.contains("<!--"));
    let back: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(back["name"], title);
}

#[test]
fn escaping_rewrites_every_closing_tag_opener() {
    assert_eq!(
        escape_json_for_script(r#"{"a":"</b></c>"}"#),
        r#"{"a":"<\/b><\/c>"}"#
    );
    assert_eq!(
        escape_json_for_script(r#"{"a":"<!--"}"#),
        r#"{"a":"<\u0021--"}"#
    );
}

#[test]
fn a_pixelbay_page_with_a_hostile_title_has_one_script_element() {
    let page = PixelBayGame {
        title: "</script><b>x".into(),
        price: "1.00".into(),
        regular: "2.00".into(),
        available: true,
        steam_url: None,
        json_ld: escape_json_for_script(r#"{"name":"</script><b>x"}"#),
    };
    let html = page.render().unwrap();
    assert_eq!(html.matches("</script>").count(), 1);
    assert!(!html.contains("</script><b>x"));
    assert!(!html.contains("<h1></script>"), "{html}");
    assert!(html.contains("<h1>&#60;/script&#62;&#60;b&#62;x</h1>"));
}

#[test]
fn the_sites_config_parses_after_substitution_and_names_three_stores() {
    let text = sites_toml("http://127.0.0.1:8080/", "127.0.0.1:8080");
    let v: toml::Value = toml::from_str(&text).unwrap();
    let sites = v["site"].as_array().unwrap();
    let stores: Vec<_> = sites
        .iter()
        .map(|s| s["profile"]["store"].as_str().unwrap())
        .collect();
    assert_eq!(stores, ["PixelBay", "GameVault", "RetroShelf"]);
    assert_eq!(
        sites[0]["start"][0].as_str(),
        Some("http://127.0.0.1:8080/demo/pixelbay/")
    );
    assert_eq!(
        sites[2]["allowed_hosts"][0].as_str(),
        Some("127.0.0.1:8080")
    );
    assert_eq!(
        sites[2]["profile"]["css"]["price"].as_str(),
        Some(".price .now")
    );
    assert!(sites[0]["profile"].get("css").is_none());
    let extracts: Vec<_> = sites
        .iter()
        .map(|s| s["profile"]["extract"].as_str().unwrap())
        .collect();
    assert_eq!(extracts, ["jsonld", "meta", "css"]);
}

#[test]
fn catalog_has_about_forty_titles() {
    assert_eq!(catalog_titles().len(), 38);
}
