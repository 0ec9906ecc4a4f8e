//! The `css` extractor: plain HTML read with the selectors the site's
//! profile supplies (`profile.css`).

use super::markup::{element_text, selector};
use super::page::Page;
use super::trace::Field;
use super::{parse_price, ExtractError};
use crate::protocol::worker::Item;
use crate::scrape::steam::{digits_only, STEAM};

pub(super) fn extract(page: &Page<'_>) -> Result<Vec<Item>, ExtractError> {
    let Some(css) = &page.profile.css else {
        return Err(ExtractError::MissingCssSelectors {
            store: page.profile.store.clone(),
        });
    };
    // Parse every selector first so a typo is reported even on odd pages.
    let title_sel = selector("css.title", &css.title)?;
    let price_sel = selector("css.price", &css.price)?;
    let optional = |field, text: &Option<String>| {
        text.as_deref()
            .filter(|t| !t.trim().is_empty())
            .map(|t| selector(field, t))
            .transpose()
    };
    let regular_sel = optional("css.regular_price", &css.regular_price)?;
    let unavailable_sel = optional("css.unavailable", &css.unavailable)?;
    let steam_sel = optional("css.steam_id", &css.steam_id)?;

    let doc = page.doc;
    let rec = page.rec;
    rec.product(|| "the css profile's selectors".to_owned());
    let count = |sel: &scraper::Selector| doc.select(sel).count();
    // A `<meta content>` has no text: `meta[property="og:title"]` works too.
    let title = doc
        .select(&title_sel)
        .map(|el| match el.value().attr("content") {
            Some(content) if el.value().name() == "meta" => (content.to_owned(), "content"),
            _ => (element_text(el), "text"),
        })
        .find_map(|(raw, from)| {
            let rule = || format!("css.title {:?} {from} {raw:?}", css.title);
            page.title(&raw, rule)
        });
    let Some(title) = title else {
        rec.looked(Field::Title, || {
            format!(
                "css.title {:?} ({} matches, none with text)",
                css.title,
                count(&title_sel)
            )
        });
        return Err(page.no_product());
    };
    let currency = &page.profile.currency;
    let Some((price_text, from)) = doc
        .select(&price_sel)
        .map(|el| match el.value().attr("content") {
            Some(content) => (content.trim().to_owned(), "content"),
            None => (element_text(el), "text"),
        })
        .find(|(t, _)| !t.is_empty())
    else {
        rec.looked(Field::Price, || {
            format!(
                "css.price {:?} ({} matches, none with text)",
                css.price,
                count(&price_sel)
            )
        });
        return Err(page.no_price(title.clone()));
    };
    let price = parse_price(&price_text, currency).map_err(|source| {
        rec.looked(Field::Price, || {
            format!("css.price {:?} {from} {price_text:?}: {source}", css.price)
        });
        ExtractError::BadPrice {
            title: title.clone(),
            source,
        }
    })?;
    rec.found(Field::Price, || {
        format!("css.price {:?} {from} {price_text:?}", css.price)
    });
    rec.found(Field::Currency, || {
        if price.currency.eq_ignore_ascii_case(currency) {
            format!("profile currency {currency:?} (or the same named in the price text)")
        } else {
            format!("the price text {price_text:?}")
        }
    });
    // A garbled strikethrough price should not cost us the offer itself.
    let regular = match (&regular_sel, &css.regular_price) {
        (Some(sel), Some(text)) => {
            let found = doc.select(sel).map(element_text).find(|t| !t.is_empty());
            let cents = found.as_ref().and_then(|t| {
                let regular = parse_price(t, currency).ok()?;
                (regular.currency == price.currency).then_some(regular.cents)
            });
            match (&found, cents) {
                (Some(t), Some(_)) => rec.found(Field::RegularPrice, || {
                    format!("css.regular_price {text:?} text {t:?}")
                }),
                (Some(t), None) => rec.looked(Field::RegularPrice, || {
                    format!(
                        "css.regular_price {text:?} text {t:?} (not a price in {})",
                        price.currency
                    )
                }),
                (None, _) => rec.looked(Field::RegularPrice, || {
                    format!("css.regular_price {text:?} (no match with text)")
                }),
            }
            cents
        }
        _ => {
            rec.looked(Field::RegularPrice, || {
                "css.regular_price (not set)".to_owned()
            });
            None
        }
    };
    let available = match (&unavailable_sel, &css.unavailable) {
        (Some(sel), Some(text)) => {
            let out = doc.select(sel).next().is_some();
            rec.found(Field::Availability, || match out {
                true => format!("css.unavailable {text:?} matches: unavailable"),
                false => format!("css.unavailable {text:?} matches nothing: available"),
            });
            !out
        }
        _ => {
            rec.found(Field::Availability, || {
                "css.unavailable not set: available".to_owned()
            });
            true
        }
    };
    let steam = steam_sel
        .as_ref()
        .and_then(|sel| {
            let found = doc.select(sel).find_map(|el| {
                let text = element_text(el);
                // "App ID: 620" as well as "620".
                let digits: String = text
                    .chars()
                    .skip_while(|c| !c.is_ascii_digit())
                    .take_while(char::is_ascii_digit)
                    .collect();
                Some((digits_only(&digits)?, text))
            });
            let selector = css.steam_id.as_deref().unwrap_or("");
            match &found {
                Some((_, text)) => rec.found(Field::ExternalId, || {
                    format!("css.steam_id {selector:?} text {text:?}")
                }),
                None => rec.looked(Field::ExternalId, || {
                    format!("css.steam_id {selector:?} (no match with an app id)")
                }),
            }
            found.map(|(id, _)| id)
        })
        .or_else(|| page.steam_link());

    let mut item = page.item(title, price);
    item.regular_cents = regular;
    item.available = available;
    if let Some(id) = steam {
        item.external_ids.insert(STEAM.to_owned(), id);
    }
    rec.item(0);
    Ok(vec![item])
}

#[cfg(test)]
mod tests {
    use crate::protocol::worker::{CssSelectors, Extractor, Item, Profile};
    use crate::scrape::fixtures::{profile, STEAM_APP};
    use crate::scrape::{extract_page, extract_page_traced, ExtractError};
    use url::Url;

    fn retroshelf() -> Profile {
        let mut p = profile(Extractor::Css);
        p.store = "RetroShelf".to_owned();
        p.css = Some(CssSelectors {
            title: "h1.title".to_owned(),
            price: ".price .now".to_owned(),
            regular_price: Some(".price .was".to_owned()),
            unavailable: Some(".stock.out".to_owned()),
            steam_id: Some(".steam-id".to_owned()),
        });
        p
    }

    fn run(html: &str, p: &Profile) -> Result<Vec<Item>, ExtractError> {
        let url = match p.store.as_str() {
            "Steam" => STEAM_URL,
            _ => "https://retroshelf.example/item/42",
        };
        extract_page(html, &Url::parse(url).unwrap(), p)
    }

    const PAGE: &str = r#"<!doctype html><html><body>
  <h1 class="title">
     Baldur&#39;s   Gate &amp; Friends
  </h1>
  <div class="price"><span class="was">1.499,00&nbsp;€</span> <span class="now">1.299,00 €</span></div>
  <p class="stock in">In stock</p>
  <p>Steam: <span class="steam-id">App 1086940</span></p>
</body></html>"#;

    #[test]
    fn retroshelf_page_with_european_prices_is_extracted() {
        let items = run(PAGE, &retroshelf()).unwrap();
        assert_eq!(items.len(), 1);
        let item = &items[0];
        assert_eq!(item.title, "Baldur's Gate & Friends");
        assert_eq!(item.store, "RetroShelf");
        assert_eq!(item.price_cents, 129_900);
        assert_eq!(item.regular_cents, Some(149_900));
        assert_eq!(item.currency, "EUR");
        assert!(item.available);
        assert_eq!(item.external_ids["steam"], "1086940");
    }

    #[test]
    fn free_games_and_out_of_stock_markers_are_read() {
        let html = PAGE
            .replace("1.299,00 €", "Free")
            .replace(r#"class="stock in""#, r#"class="stock out""#);
        let item = &run(&html, &retroshelf()).unwrap()[0];
        assert_eq!(item.price_cents, 0);
        assert!(!item.available);
    }

    #[test]
    fn steam_link_is_used_without_a_steam_id_element() {
        let html = PAGE.replace(
            r#"<span class="steam-id">App 1086940</span>"#,
            r#"<a href="https://store.steampowered.com/app/620/Portal_2/">store</a>"#,
        );
        assert_eq!(
            run(&html, &retroshelf()).unwrap()[0].external_ids["steam"],
            "620"
        );
    }

    #[test]
    fn the_trace_names_the_selectors_and_what_they_matched() {
        let url = Url::parse("https://retroshelf.example/item/42").unwrap();
        let html = PAGE.replace(r#"<span class="was">1.499,00&nbsp;€</span>"#, "");
        let (_, trace) = extract_page_traced(&html, &url, &retroshelf());
        let lines = trace.lines();
        assert_eq!(
            lines[..4],
            [
                "product 1: the css profile's selectors -> item 1",
                r#"  title: css.title "h1.title" text "Baldur's Gate & Friends""#,
                r#"  price: css.price ".price .now" text "1.299,00 €""#,
                r#"  regular price: not found; looked at css.regular_price ".price .was" (no match with text)"#,
            ]
        );
        assert_eq!(
            lines[6],
            r#"  external id: css.steam_id ".steam-id" text "App 1086940""#
        );
    }

    #[test]
    fn missing_selectors_are_a_clear_error() {
        let mut p = retroshelf();
        p.css = None;
        let err = run(PAGE, &p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the css profile for RetroShelf has no selectors (profile.css is missing)"
        );
    }

    #[test]
    fn invalid_selector_is_an_error() {
        let mut p = retroshelf();
        if let Some(css) = p.css.as_mut() {
            css.unavailable = Some("..stock".to_owned());
        }
        assert!(matches!(
            run(PAGE, &p),
            Err(ExtractError::InvalidSelector {
                field: "css.unavailable",
                ..
            })
        ));
    }

    #[test]
    fn title_without_price_is_no_price_and_no_title_is_no_product() {
        let html = PAGE.replace(r#"class="now""#, r#"class="later""#);
        let err = run(&html, &retroshelf()).unwrap_err();
        assert!(matches!(err, ExtractError::NoPrice { .. }));
        assert!(
            err.to_string().contains("css profile of RetroShelf"),
            "{err}"
        );
        let html = PAGE.replace(r#"class="title""#, r#"class="subtitle""#);
        assert!(matches!(
            run(&html, &retroshelf()),
            Err(ExtractError::NoProduct { .. })
        ));
    }

    #[test]
    fn unparseable_price_text_names_the_problem() {
        let html = PAGE.replace("1.299,00 €", "Call us");
        let err = run(&html, &retroshelf()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "could not read the price of \"Baldur's Gate & Friends\": \"Call us\" is not a price"
        );
    }

    fn steam() -> Profile {
        let mut p = profile(Extractor::Css);
        p.store = "Steam".to_owned();
        p.css = Some(CssSelectors {
            title: "#appHubAppName".to_owned(),
            price: ".game_purchase_action .discount_final_price, \
                    .game_purchase_action .game_purchase_price"
                .to_owned(),
            regular_price: Some(".game_purchase_action .discount_original_price".to_owned()),
            unavailable: None,
            steam_id: None,
        });
        p
    }

    const STEAM_URL: &str = "https://store.steampowered.com/app/620/Portal_2/?l=english";

    #[test]
    fn steam_page_gives_the_first_package_and_the_canonical_app_id() {
        let items = run(STEAM_APP, &steam());
        let item = &items.unwrap()[0];
        assert_eq!(item.title, "Portal 2");
        assert_eq!(item.url, "https://store.steampowered.com/app/620/Portal_2/");
        assert_eq!(
            (item.price_cents, item.regular_cents, item.currency.as_str()),
            (199, Some(799), "EUR")
        );
        assert_eq!(item.external_ids["steam"], "620");

        let free = STEAM_APP.replace("1,99€", "Free To Play");
        assert_eq!(run(&free, &steam()).unwrap()[0].price_cents, 0);
    }

    #[test]
    fn a_title_may_come_from_a_meta_tag_with_the_stores_text_stripped() {
        let mut p = steam();
        if let Some(css) = p.css.as_mut() {
            css.title = r#"meta[property="og:title"]"#.to_owned();
        }
        p.title_strip = vec!["{title} on Steam".to_owned()];
        let html = STEAM_APP.replace("Save 75% on Portal 2 on Steam", "Portal 2 on Steam");
        let url = Url::parse(STEAM_URL).unwrap();
        let (items, trace) = extract_page_traced(&html, &url, &p);
        assert_eq!(items.unwrap()[0].title, "Portal 2");
        assert_eq!(
            trace.lines()[1],
            r#"  title: css.title "meta[property=\"og:title\"]" content "Portal 2 on Steam", title_strip "{title} on Steam""#
        );
    }
}
