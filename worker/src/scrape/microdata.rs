//! schema.org microdata (`itemscope`, `itemtype`, `itemprop`), read into
//! the JSON shape JSON-LD has, so that one reader (`schema.rs`) serves both.

use std::collections::HashMap;

use scraper::ElementRef;
use serde_json::{Map, Value};

use super::markup::{element_text, static_selector};
use super::page::Page;
use super::schema::{short_name, PRODUCT_TYPES};

/// Items read per page at most; a store's game page has a handful.
const MAX_ITEMS: usize = 2000;

/// Items nested in items, at most, when turned into JSON.
const MAX_DEPTH: usize = 8;

/// The properties the product reader uses; the values of others are not
/// read (a review's text can be long).
const READ: &[&str] = &[
    "name",
    "offers",
    "price",
    "lowPrice",
    "highPrice",
    "offerCount",
    "priceCurrency",
    "priceSpecification",
    "priceComponent",
    "priceType",
    "availability",
    "itemOffered",
    "mainEntity",
    "hasVariant",
    "sameAs",
    "url",
    "identifier",
    "propertyID",
    "value",
];

/// A top-level microdata item, as JSON, with the element it is on.
pub(super) struct TopItem<'a> {
    pub(super) value: Value,
    pub(super) element: ElementRef<'a>,
}

struct Item<'a> {
    element: ElementRef<'a>,
    types: Vec<String>,
    props: Vec<(String, Prop)>,
    /// Not the value of another item's property.
    top: bool,
    /// The item whose element encloses this one's, property or not.
    enclosing: Option<usize>,
}

enum Prop {
    Text(String),
    Item(usize),
}

/// The page's top-level items in document order, leaving out products
/// nested in a product (a bundle's parts belong to the bundle).
pub(super) fn read<'a>(page: &Page<'a>) -> Vec<TopItem<'a>> {
    let Some(sel) = static_selector("[itemscope], [itemprop]") else {
        return vec![];
    };
    let mut items: Vec<Item<'a>> = Vec::new();
    let mut by_element = HashMap::new();
    for el in page.doc.select(&sel) {
        let v = el.value();
        // The nearest enclosing item; document order has read it already.
        let owner = el
            .ancestors()
            .filter_map(ElementRef::wrap)
            .find(|a| a.value().attr("itemscope").is_some())
            .and_then(|a| by_element.get(&a.id()).copied());
        let names: Vec<&str> = v
            .attr("itemprop")
            .unwrap_or("")
            .split_whitespace()
            .map(short_name)
            .collect();
        let value = if v.attr("itemscope").is_some() {
            if items.len() >= MAX_ITEMS {
                break;
            }
            by_element.insert(el.id(), items.len());
            items.push(Item {
                element: el,
                types: v
                    .attr("itemtype")
                    .unwrap_or("")
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                props: Vec::new(),
                top: names.is_empty() || owner.is_none(),
                enclosing: owner,
            });
            Prop::Item(items.len() - 1)
        } else if owner.is_some() && names.iter().any(|n| READ.contains(n)) {
            Prop::Text(prop_value(el))
        } else {
            continue;
        };
        let Some(owner) = owner else {
            continue;
        };
        for name in names.iter().filter(|n| READ.contains(n)) {
            let value = match &value {
                Prop::Text(text) => Prop::Text(text.clone()),
                Prop::Item(i) => Prop::Item(*i),
            };
            items[owner].props.push(((*name).to_owned(), value));
        }
    }

    let is_product = |item: &Item<'_>| {
        item.types
            .iter()
            .any(|t| PRODUCT_TYPES.contains(&short_name(t)))
    };
    let in_product = |mut i: usize| {
        while let Some(parent) = items[i].enclosing {
            if is_product(&items[parent]) {
                return true;
            }
            i = parent;
        }
        false
    };
    items
        .iter()
        .enumerate()
        .filter(|(i, item)| item.top && !in_product(*i))
        .map(|(i, item)| TopItem {
            value: to_json(&items, i, 0),
            element: item.element,
        })
        .collect()
}

fn to_json(items: &[Item<'_>], index: usize, depth: usize) -> Value {
    let item = &items[index];
    let mut obj = Map::new();
    match item.types.as_slice() {
        [] => {}
        [one] => {
            obj.insert("@type".to_owned(), Value::String(one.clone()));
        }
        many => {
            let types = many.iter().cloned().map(Value::String).collect();
            obj.insert("@type".to_owned(), Value::Array(types));
        }
    }
    for (name, prop) in &item.props {
        let value = match prop {
            Prop::Text(text) => Value::String(text.clone()),
            Prop::Item(_) if depth >= MAX_DEPTH => continue,
            Prop::Item(i) => to_json(items, *i, depth + 1),
        };
        // A repeated property (two offers) becomes an array.
        match obj.get_mut(name) {
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                obj.insert(name.clone(), value);
            }
        }
    }
    Value::Object(obj)
}

/// A property's value as microdata defines it (`content` on meta, `href`
/// on links, `src` on media, `value` on data, `datetime` on time), else a
/// `content` attribute (which stores put on any element: `<span
/// itemprop="price" content="19.99">19,99 €</span>`), else the text.
fn prop_value(el: ElementRef<'_>) -> String {
    let v = el.value();
    let attr = match v.name() {
        "meta" => Some("content"),
        "a" | "area" | "link" => Some("href"),
        "audio" | "embed" | "iframe" | "img" | "source" | "track" | "video" => Some("src"),
        "object" => Some("data"),
        "data" | "meter" => Some("value"),
        "time" => Some("datetime"),
        _ => None,
    };
    attr.and_then(|a| v.attr(a))
        .or_else(|| v.attr("content"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| element_text(el))
}
