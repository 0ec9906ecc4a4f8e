//! schema.org product data, read the same way from JSON-LD and from
//! microdata (which `microdata.rs` turns into the JSON shape JSON-LD has):
//! `Product`/`VideoGame`/`SoftwareApplication` nodes with `offers` (`Offer`,
//! `AggregateOffer`, `priceSpecification`), their availability and Steam
//! ids. OpenGraph tags fill in what a product lacks.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::markup::{clean_text, machine_price};
use super::meta::OpenGraph;
use super::page::Page;
use super::price::parse_currency;
use super::steam::{digits_only, steam_app_id, STEAM};
use super::trace::Field;
use super::{ExtractError, Price, PriceError};
use crate::protocol::worker::Item;

pub(super) type Object = Map<String, Value>;

/// Nesting followed through `@graph`, `mainEntity`, variants and nested
/// offers; real pages use two or three levels.
const MAX_DEPTH: usize = 8;

/// Types whose nodes are products with offers (schema.org `Product` and the
/// subtypes stores use for games).
pub(super) const PRODUCT_TYPES: &[&str] = &[
    "Product",
    "VideoGame",
    "SoftwareApplication",
    "IndividualProduct",
    "ProductModel",
    "SomeProducts",
];

/// One block of structured data: a JSON-LD script, or a microdata item.
pub(super) struct Block<'a> {
    /// How a trace names it: "JSON-LD block 2", "microdata item 1".
    pub(super) name: String,
    /// JSON-LD is raw script text, so entities its CMS escaped are still
    /// there; microdata text comes out of the HTML parser unescaped.
    pub(super) escaped: bool,
    /// The block's objects by `@id`, for references such as
    /// `"offers": {"@id": "#offer"}`.
    ids: HashMap<&'a str, &'a Object>,
}

impl<'a> Block<'a> {
    pub(super) fn new(name: String, escaped: bool, root: &'a Value) -> Block<'a> {
        let mut ids = HashMap::new();
        index_ids(root, 0, &mut ids);
        Block { name, escaped, ids }
    }

    /// The object a reference (an object with only `@id`) points to.
    fn resolve(&self, obj: &'a Object) -> &'a Object {
        if obj.len() == 1 {
            if let Some(target) = obj.get("@id").and_then(Value::as_str) {
                return self.ids.get(target).copied().unwrap_or(obj);
            }
        }
        obj
    }

    /// The objects in a value that may be one object or an array of them,
    /// references resolved.
    fn objects(&self, value: Option<&'a Value>) -> Vec<&'a Object> {
        objects(value)
            .into_iter()
            .map(|o| self.resolve(o))
            .collect()
    }
}

fn index_ids<'a>(value: &'a Value, depth: usize, ids: &mut HashMap<&'a str, &'a Object>) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Array(values) => values.iter().for_each(|v| index_ids(v, depth + 1, ids)),
        Value::Object(obj) => {
            if let Some(id) = obj.get("@id").and_then(Value::as_str) {
                if obj.len() > 1 {
                    ids.entry(id).or_insert(obj);
                }
            }
            obj.values().for_each(|v| index_ids(v, depth + 1, ids));
        }
        _ => {}
    }
}

/// A product found in a block.
pub(super) struct Node<'a, 'b> {
    pub(super) block: &'b Block<'a>,
    pub(super) product: &'a Object,
    /// Its offers, with where each is; an `Offer` whose `itemOffered` is
    /// the product gives that one offer.
    offers: Vec<(String, &'a Object)>,
    /// Where the product is, for traces ("JSON-LD block 1, @graph[2] >
    /// VideoGame"); empty when not tracing.
    pub(super) at: String,
}

/// The products in a block: nodes of a product type, inside `@graph`
/// arrays, a page's `mainEntity`, a `ProductGroup`'s `hasVariant`, or as the
/// `itemOffered` of an offer. `tracing` says whether to describe where.
pub(super) fn products<'a, 'b>(
    block: &'b Block<'a>,
    root: &'a Value,
    tracing: bool,
) -> Vec<Node<'a, 'b>> {
    let mut walk = Walk {
        block,
        tracing,
        seen: HashSet::new(),
        out: Vec::new(),
    };
    walk.value(root, String::new(), 0);
    walk.out
}

struct Walk<'a, 'b> {
    block: &'b Block<'a>,
    tracing: bool,
    /// Objects walked already: references may point anywhere, any number
    /// of times, in loops.
    seen: HashSet<*const Object>,
    out: Vec<Node<'a, 'b>>,
}

impl<'a, 'b> Walk<'a, 'b> {
    /// `a > b`, or `a[0]`; paths are only built when tracing.
    fn join(&self, a: &str, b: &str) -> String {
        match (self.tracing, a.is_empty()) {
            (false, _) => String::new(),
            (true, true) => b.to_owned(),
            (true, false) if b.starts_with('[') => format!("{a}{b}"),
            (true, false) => format!("{a} > {b}"),
        }
    }

    fn at(&self, path: &str) -> String {
        match self.tracing {
            true => format!("{}, {path}", self.block.name),
            false => String::new(),
        }
    }

    fn value(&mut self, value: &'a Value, path: String, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        match value {
            Value::Array(values) => {
                for (i, v) in values.iter().enumerate() {
                    let path = self.join(&path, &format!("[{i}]"));
                    self.value(v, path, depth + 1);
                }
            }
            Value::Object(obj) => self.object(obj, path, depth),
            _ => {}
        }
    }

    fn object(&mut self, obj: &'a Object, path: String, depth: usize) {
        let obj = self.block.resolve(obj);
        if !self.seen.insert(obj) {
            return;
        }
        // "@graph[1] > VideoGame"; an untyped wrapper adds nothing.
        let here = match types(obj).is_empty() {
            true => path,
            false => self.join(&path, type_name(obj)),
        };
        let product = is_product(obj);
        if product {
            let offers = self.block.objects(obj.get("offers"));
            let single = offers.len() == 1;
            let offers = offers
                .into_iter()
                .enumerate()
                .map(|(i, o)| {
                    let key = match single {
                        true => "offers".to_owned(),
                        false => format!("offers[{i}]"),
                    };
                    (self.at(&self.join(&here, &key)), o)
                })
                .collect();
            self.push(obj, offers, self.at(&here));
        } else if is_offer(obj) {
            for item in self.block.objects(obj.get("itemOffered")) {
                if !is_product(item) {
                    continue;
                }
                let offer = (self.at(&here), obj);
                // Listed before its offer, the product was read without it.
                match self.out.iter_mut().find(|n| std::ptr::eq(n.product, item)) {
                    Some(node) if node.offers.is_empty() => node.offers.push(offer),
                    Some(_) => {}
                    None => {
                        self.seen.insert(item);
                        let path = self.join(&self.join(&here, "itemOffered"), type_name(item));
                        self.push(item, vec![offer], self.at(&path));
                    }
                }
            }
        }
        let mut keys = vec!["@graph", "hasVariant"];
        if !product {
            keys.push("mainEntity");
        }
        for key in keys {
            if let Some(nested) = obj.get(key) {
                let path = self.join(&here, key);
                self.value(nested, path, depth + 1);
            }
        }
    }

    fn push(&mut self, product: &'a Object, offers: Vec<(String, &'a Object)>, at: String) {
        self.out.push(Node {
            block: self.block,
            product,
            offers,
            at,
        });
    }
}

fn types(obj: &Object) -> Vec<&str> {
    match obj.get("@type") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// The node's first product type, else its first type, for traces.
pub(super) fn type_name(obj: &Object) -> &str {
    let all = types(obj);
    all.iter()
        .map(|t| short_name(t))
        .find(|t| PRODUCT_TYPES.contains(t))
        .or_else(|| all.first().map(|t| short_name(t)))
        .unwrap_or("(untyped)")
}

pub(super) fn is_product(obj: &Object) -> bool {
    types(obj)
        .iter()
        .any(|t| PRODUCT_TYPES.contains(&short_name(t)))
}

fn is_offer(obj: &Object) -> bool {
    has_type(obj, "Offer") || has_type(obj, "AggregateOffer")
}

fn has_type(obj: &Object, name: &str) -> bool {
    types(obj).iter().any(|t| short_name(t) == name)
}

/// "https://schema.org/InStock", "http://schema.org/InStock/",
/// "schema:InStock" and "InStock" all mean "InStock".
pub(super) fn short_name(value: &str) -> &str {
    let value = value.trim().trim_end_matches('/');
    value.rsplit(['/', ':', '#']).next().unwrap_or(value)
}

/// Whether an availability (a schema.org value, its bare name, or the free
/// text OpenGraph tags hold: "instock", "out of stock", "oos") says the
/// game cannot be bought.
pub(super) fn says_unavailable(availability: &str) -> bool {
    let name: String = short_name(availability)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    name == "oos"
        || ["outofstock", "soldout", "discontinued", "unavailable"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// The objects in a value that may be one object or an array of them.
fn objects(value: Option<&Value>) -> Vec<&Object> {
    match value {
        Some(Value::Object(o)) => vec![o],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_object).collect(),
        _ => vec![],
    }
}

/// A value as text: strings as they are, numbers as their JSON text, the
/// first of an array (microdata repeats a property), a JSON-LD value
/// object's `@value`.
pub(super) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(number_text(n)),
        Value::Array(a) => a.first().and_then(text_of),
        Value::Object(o) => o.get("@value").and_then(|v| match v {
            Value::Object(_) => None,
            v => text_of(v),
        }),
        _ => None,
    }
}

/// A JSON number's text, rounded to the cent when it is a float that
/// missed it (a price computed in the page's script, 19.990000000000002);
/// a string with three decimals stays an error.
fn number_text(n: &serde_json::Number) -> String {
    let text = n.to_string();
    let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
    if decimals > 2 && !text.contains(['e', 'E']) {
        if let Some(f) = n.as_f64().filter(|f| (0.0..1e12).contains(f)) {
            let cents = (f * 100.0).round();
            if (f * 100.0 - cents).abs() < 1e-6 {
                // In range by the filter above, and whole.
                let cents = cents as i64;
                return format!("{}.{:02}", cents / 100, cents % 100);
            }
        }
    }
    text
}

/// An offer as read, with the rules that gave its fields when tracing.
pub(super) struct Offer {
    pub(super) price: Price,
    pub(super) price_rule: Option<String>,
    pub(super) currency_rule: Option<String>,
    pub(super) regular: Option<i64>,
    pub(super) regular_rule: Option<String>,
    /// Where a regular price was looked for in vain, when tracing.
    pub(super) regular_looked: Vec<String>,
    /// `None` when the offer does not say.
    pub(super) available: Option<bool>,
    pub(super) availability_rule: Option<String>,
}

impl Offer {
    /// An offer of `price`, its regular price and availability not read yet.
    pub(super) fn priced(
        price: Price,
        price_rule: Option<String>,
        currency_rule: Option<String>,
    ) -> Offer {
        Offer {
            price,
            price_rule,
            currency_rule,
            regular: None,
            regular_rule: None,
            regular_looked: Vec::new(),
            available: None,
            availability_rule: None,
        }
    }

    /// Sets the regular price when it is one: in the offer's currency, and
    /// not below its price.
    pub(super) fn set_regular(
        &mut self,
        page: &Page<'_>,
        regular: Price,
        rule: impl Fn() -> String,
    ) {
        if regular.currency != self.price.currency {
            self.regular_looked.extend(page.rec.describe(|| {
                format!(
                    "{} (in {}, not {})",
                    rule(),
                    regular.currency,
                    self.price.currency
                )
            }));
        } else if regular.cents < self.price.cents {
            self.regular_looked.extend(
                page.rec
                    .describe(|| format!("{} (below the price)", rule())),
            );
        } else {
            self.regular = Some(regular.cents);
            self.regular_rule = page.rec.describe(rule);
        }
    }
}

/// The currency an offer falls back on when it names none: the page's
/// OpenGraph currency or the profile's.
pub(super) struct Fallback {
    pub(super) code: String,
    pub(super) rule: Option<String>,
}

/// Reads every product into items, one per distinct offer. Empty when no
/// product has a name; the first failure when none gives an item.
pub(super) fn read_products(
    page: &Page<'_>,
    nodes: &[Node<'_, '_>],
    og: Option<&OpenGraph>,
) -> Result<Vec<Item>, ExtractError> {
    let rec = page.rec;
    let mut items: Vec<Item> = Vec::new();
    let mut first_failure: Option<ExtractError> = None;
    for node in nodes {
        rec.product(|| match node.product.get("name").and_then(text_of) {
            Some(name) => {
                let name = match node.block.escaped {
                    true => decode_entities(&name),
                    false => name,
                };
                format!("{} {:?}", node.at, clean_text(&name))
            }
            None => node.at.clone(),
        });
        match read_product(page, node, og, nodes.len() == 1) {
            Ok(Some(item)) => {
                let same = items.iter().position(|i| {
                    i.title == item.title
                        && i.price_cents == item.price_cents
                        && i.currency == item.currency
                });
                match same {
                    Some(i) => rec.note(|| format!("same offer as item {}", i + 1)),
                    None => {
                        rec.item(items.len());
                        items.push(item);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                rec.note(|| e.to_string());
                first_failure.get_or_insert(e);
            }
        }
    }
    match (items.is_empty(), first_failure) {
        (true, Some(e)) => Err(e),
        _ => Ok(items),
    }
}

/// Reads one product into an item. `Ok(None)`: a product without a name,
/// only worth an error when nothing else on the page works. `og` fills in
/// what the product lacks when it describes the same product (`alone`: the
/// only product on the page, or the same title).
pub(super) fn read_product(
    page: &Page<'_>,
    node: &Node<'_, '_>,
    og: Option<&OpenGraph>,
    alone: bool,
) -> Result<Option<Item>, ExtractError> {
    let rec = page.rec;
    let at = |rest: &str| format!("{}{rest}", node.at);
    let raw = node.product.get("name").and_then(text_of);
    let decoded = raw.as_deref().map(|raw| match node.block.escaped {
        true => decode_entities(raw),
        false => raw.to_owned(),
    });
    let rule = || at(&format!(" > name {:?}", raw.as_deref().unwrap_or_default()));
    let title = match decoded.and_then(|t| page.title(&t, rule)) {
        Some(title) => title,
        None => {
            rec.looked(Field::Title, || match &raw {
                Some(_) => at(" > name (empty)"),
                None => at(" > name (absent)"),
            });
            match og.filter(|_| alone).and_then(|og| og.title(page)) {
                Some(title) => title,
                None => {
                    rec.note(|| "no name".to_owned());
                    return Ok(None);
                }
            }
        }
    };
    let og = og.filter(|og| alone || og.describes(&title, page));
    let fallback = og
        .and_then(|og| og.currency(page))
        .unwrap_or_else(|| page.profile_currency());

    if node.offers.is_empty() {
        rec.looked(Field::Price, || at(" > offers (absent)"));
    }
    let mut found: Vec<Offer> = Vec::new();
    let mut first_error = None;
    for (offer_at, offer) in &node.offers {
        match read_offer(page, node.block, offer_at, offer, &fallback, false) {
            Ok(Some(o)) => found.push(o),
            Ok(None) => rec.looked(Field::Price, || {
                format!("{offer_at} (no price, lowPrice or priceSpecification price)")
            }),
            Err(source) => {
                rec.looked(Field::Price, || format!("{offer_at}: {source}"));
                first_error.get_or_insert(source);
            }
        }
    }
    // Several offers (regions, sellers): the cheapest one we can buy, in
    // the site's currency when some are.
    let count = found.len();
    let wanted = page.profile.currency.trim().to_ascii_uppercase();
    let in_wanted: Vec<usize> = (0..count)
        .filter(|&i| found[i].price.currency == wanted)
        .collect();
    let pool = match in_wanted.is_empty() || in_wanted.len() == count {
        true => (0..count).collect(),
        false => in_wanted,
    };
    let best = pool
        .iter()
        .copied()
        .filter(|&i| found[i].available != Some(false))
        .min_by_key(|&i| found[i].price.cents)
        .or_else(|| pool.iter().copied().min_by_key(|&i| found[i].price.cents));
    let mut offer = match best {
        Some(i) => {
            let pooled = pool.len();
            let mut offer = found.swap_remove(i);
            if count > 1 {
                let why = match pooled {
                    p if p == count => format!("the cheapest one to buy of {count} offers"),
                    1 => format!("the one offer in {wanted} of {count}"),
                    p => {
                        format!("the cheapest one to buy of the {p} offers in {wanted}, of {count}")
                    }
                };
                offer.price_rule = offer.price_rule.map(|r| format!("{r} ({why})"));
            }
            offer
        }
        None => match og.and_then(|og| og.offer(page, &fallback)) {
            Some(Ok(offer)) => offer,
            Some(Err(source)) => return Err(ExtractError::BadPrice { title, source }),
            None => {
                if og.is_some() {
                    rec.looked(Field::Price, || {
                        "OpenGraph product:price:amount, og:price:amount (absent)".to_owned()
                    });
                }
                return Err(match first_error {
                    Some(source) => ExtractError::BadPrice { title, source },
                    None => page.no_price(title),
                });
            }
        },
    };
    if let Some(og) = og {
        og.fill(page, &mut offer);
    }
    let mut item = page.offer_item(title, offer);
    let id = steam_id(page, node).or_else(|| page.steam_link());
    if let Some(id) = id {
        item.external_ids.insert(STEAM.to_owned(), id);
    }
    Ok(Some(item))
}

/// Reads an offer (`Offer`, `AggregateOffer`, or an untyped one).
/// `Ok(None)` when it states no price at all.
fn read_offer(
    page: &Page<'_>,
    block: &Block<'_>,
    at: &str,
    offer: &Object,
    fallback: &Fallback,
    nested: bool,
) -> Result<Option<Offer>, PriceError> {
    let rec = page.rec;
    let mut specs = block.objects(offer.get("priceSpecification"));
    // A CompoundPriceSpecification lists its parts.
    let parts: Vec<&Object> = specs
        .iter()
        .flat_map(|s| block.objects(s.get("priceComponent")))
        .collect();
    specs.extend(parts);

    let stated = offer
        .get("priceCurrency")
        .and_then(text_of)
        .map(|c| (c, " > priceCurrency"))
        .or_else(|| {
            specs.iter().find_map(|s| {
                Some((
                    s.get("priceCurrency").and_then(text_of)?,
                    " > priceSpecification > priceCurrency",
                ))
            })
        });
    let (currency, mut currency_rule) = match &stated {
        Some((text, key)) => (
            parse_currency(text, &fallback.code)?,
            rec.describe(|| format!("{at}{key} {text:?}")),
        ),
        None => (fallback.code.clone(), fallback.rule.clone()),
    };

    let aggregate = has_type(offer, "AggregateOffer");
    let single = offer.get("offerCount").and_then(text_of).as_deref() == Some("1");
    let mut keys = vec!["price"];
    if aggregate {
        keys = vec!["lowPrice", "price"];
        // With one offer, its highest price is its price.
        if single {
            keys.push("highPrice");
        }
    }
    let own = keys
        .iter()
        .find_map(|key| Some((format!(" > {key}"), offer.get(*key).and_then(text_of)?)));
    // No price of its own: the sale price may sit in a specification.
    let amount = own.or_else(|| {
        specs.iter().filter(|s| !is_regular_spec(s)).find_map(|s| {
            Some((
                " > priceSpecification > price".to_owned(),
                s.get("price").and_then(text_of)?,
            ))
        })
    });
    let Some((key, amount)) = amount else {
        if aggregate && !nested {
            // An AggregateOffer without lowPrice may list its offers.
            let nested = block.objects(offer.get("offers"));
            let mut cheapest: Option<Offer> = None;
            for (i, o) in nested.into_iter().enumerate() {
                let nested_at = rec
                    .describe(|| format!("{at} > offers[{i}]"))
                    .unwrap_or_default();
                let inner = Fallback {
                    code: currency.clone(),
                    rule: currency_rule.clone(),
                };
                if let Ok(Some(o)) = read_offer(page, block, &nested_at, o, &inner, true) {
                    if cheapest
                        .as_ref()
                        .is_none_or(|c| o.price.cents < c.price.cents)
                    {
                        cheapest = Some(o);
                    }
                }
            }
            return Ok(cheapest);
        }
        return Ok(None);
    };
    let price = machine_price(&amount, &currency)?;
    if price.currency != currency {
        currency_rule = rec.describe(|| format!("the price text {amount:?}"));
    }
    let price_rule = rec.describe(|| format!("{at}{key} {amount:?}"));
    let mut read = Offer::priced(price, price_rule, currency_rule);

    let regular = specs.iter().filter(|s| is_regular_spec(s)).find_map(|s| {
        let amount = s.get("price").and_then(text_of)?;
        let currency = match s.get("priceCurrency").and_then(text_of) {
            Some(c) => parse_currency(&c, &currency).ok()?,
            None => currency.clone(),
        };
        let kind = s.get("priceType").and_then(text_of).unwrap_or_default();
        Some((machine_price(&amount, &currency).ok()?, amount, kind))
    });
    match regular {
        Some((regular, amount, kind)) => read.set_regular(page, regular, || {
            format!(
                "{at} > priceSpecification ({}) > price {amount:?}",
                short_name(&kind)
            )
        }),
        None => read.regular_looked.extend(rec.describe(|| {
            format!("{at} > priceSpecification (no ListPrice, StrikethroughPrice or MSRP)")
        })),
    }

    if let Some(availability) = offer.get("availability").and_then(text_of) {
        read.available = Some(!says_unavailable(&availability));
        read.availability_rule = rec.describe(|| format!("{at} > availability {availability:?}"));
    } else if aggregate && offer.get("offerCount").and_then(text_of).as_deref() == Some("0") {
        read.available = Some(false);
        read.availability_rule = rec.describe(|| format!("{at} > offerCount 0"));
    }
    Ok(Some(read))
}

/// A specification giving the regular price the offer is compared with.
fn is_regular_spec(spec: &Object) -> bool {
    spec.get("priceType").and_then(text_of).is_some_and(|t| {
        let t = short_name(&t);
        t.ends_with("ListPrice") || t.ends_with("StrikethroughPrice") || t == "MSRP" || t == "SRP"
    })
}

/// The Steam app id a product states: a Steam store URL in `sameAs` or
/// `url`, or an `identifier` whose `propertyID` names Steam.
fn steam_id(page: &Page<'_>, node: &Node<'_, '_>) -> Option<String> {
    let product = node.product;
    let rec = page.rec;
    for key in ["sameAs", "url"] {
        let urls: Vec<String> = match product.get(key) {
            Some(Value::Array(a)) => a.iter().filter_map(text_of).collect(),
            Some(v) => text_of(v).into_iter().collect(),
            None => vec![],
        };
        if let Some((url, id)) = urls.iter().find_map(|u| Some((u, steam_app_id(u)?))) {
            rec.found(Field::ExternalId, || format!("{} > {key} {url:?}", node.at));
            return Some(id);
        }
    }
    let ids = node.block.objects(product.get("identifier"));
    let found = ids.iter().find_map(|pv| {
        let property = pv.get("propertyID").and_then(text_of)?;
        let squashed: String = property
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        if !squashed.starts_with(STEAM) {
            return None;
        }
        let value = pv.get("value").and_then(text_of)?;
        Some((digits_only(&value)?, property))
    });
    match found {
        Some((id, property)) => {
            rec.found(Field::ExternalId, || {
                format!(
                    "{} > identifier (propertyID {property:?}) > value {id:?}",
                    node.at
                )
            });
            Some(id)
        }
        None => {
            rec.looked(Field::ExternalId, || {
                format!(
                    "{} > sameAs, url (no Steam store URL), identifier (no Steam propertyID)",
                    node.at
                )
            });
            None
        }
    }
}

/// JSON-LD is raw script text, so entities the CMS escaped stay escaped; the
/// common ones are undone here (unknown ones are left alone).
pub(super) fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &rest[1..end];
            let c = match name {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                "nbsp" => ' ',
                _ => {
                    let code = match name.strip_prefix('#') {
                        Some(hex) if hex.starts_with(['x', 'X']) => {
                            u32::from_str_radix(&hex[1..], 16).ok()
                        }
                        Some(dec) => dec.parse().ok(),
                        None => None,
                    };
                    char::from_u32(code?)?
                }
            };
            Some((c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A product as the page's list of blocks names it: its type and name.
pub(super) fn label(product: &Object, escaped: bool) -> String {
    let kind = type_name(product);
    match product.get("name").and_then(text_of) {
        Some(name) => {
            let name = match escaped {
                true => decode_entities(&name),
                false => name,
            };
            format!("{kind} {:?}", clean_text(&name))
        }
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::worker::Extractor;
    use crate::scrape::fixtures::profile;
    use crate::scrape::{extract_page, extract_page_traced};
    use url::Url;

    fn run(block: &str) -> Result<Vec<Item>, ExtractError> {
        let html = format!(
            r#"<html><head><script type="application/ld+json">{block}</script></head><body></body></html>"#
        );
        let url = Url::parse("https://shop.example/game/1").unwrap();
        extract_page(&html, &url, &profile(Extractor::Jsonld))
    }

    /// Price, regular price, currency and availability of the one item.
    fn offer(block: &str) -> (i64, Option<i64>, String, bool) {
        let items = run(block).unwrap_or_else(|e| panic!("{e}: {block}"));
        assert_eq!(items.len(), 1, "{items:?}");
        let i = &items[0];
        (
            i.price_cents,
            i.regular_cents,
            i.currency.clone(),
            i.available,
        )
    }

    fn eur(cents: i64, regular: Option<i64>, available: bool) -> (i64, Option<i64>, String, bool) {
        (cents, regular, "EUR".to_owned(), available)
    }

    #[test]
    fn availability_is_read_in_every_form_stores_write() {
        for out in [
            "https://schema.org/OutOfStock",
            "http://schema.org/OutOfStock",
            "http://schema.org/SoldOut/",
            "schema:Discontinued",
            "OutOfStock",
            "out of stock",
            "out_of_stock",
            "oos",
        ] {
            assert!(says_unavailable(out), "{out}");
        }
        for available in [
            "https://schema.org/InStock",
            "http://schema.org/InStock",
            "InStock",
            "in stock",
            "https://schema.org/PreOrder",
            "OnlineOnly",
            "LimitedAvailability",
        ] {
            assert!(!says_unavailable(available), "{available}");
        }
    }

    #[test]
    fn types_may_be_urls_or_lists_and_offers_may_wrap_the_product() {
        let typed = |t: &str| {
            offer(&format!(
                r#"{{"@type":{t},"name":"Celeste","offers":{{"price":"4.99"}}}}"#
            ))
            .0
        };
        assert_eq!(typed(r#""http://schema.org/Product""#), 499);
        assert_eq!(typed(r#""https://schema.org/VideoGame""#), 499);
        assert_eq!(typed(r#"["Thing","schema:SoftwareApplication"]"#), 499);
        assert!(matches!(
            run(r#"{"@type":"Book","name":"Celeste","offers":{"price":"4.99"}}"#),
            Err(ExtractError::NoProduct { .. })
        ));
        // The offer around the product, as some stores write it.
        let block = r#"{"@context":"https://schema.org","@type":"Offer","price":"14.99",
            "priceCurrency":"USD","availability":"https://schema.org/InStock",
            "itemOffered":{"@type":"VideoGame","name":"Hollow Knight",
                           "sameAs":"https://store.steampowered.com/app/367520/"}}"#;
        let items = run(block).unwrap();
        assert_eq!(items[0].title, "Hollow Knight");
        assert_eq!(
            (items[0].price_cents, items[0].currency.as_str()),
            (1499, "USD")
        );
        assert_eq!(items[0].external_ids["steam"], "367520");
    }

    #[test]
    fn prices_may_be_numbers_strings_or_display_text() {
        let priced = |price: &str| {
            offer(&format!(
                r#"{{"@type":"Product","name":"Celeste","offers":{{"@type":"Offer","price":{price}}}}}"#
            ))
        };
        assert_eq!(priced("19.99"), eur(1999, None, true));
        assert_eq!(priced("20"), eur(2000, None, true));
        assert_eq!(priced("19.990000000000002"), eur(1999, None, true));
        assert_eq!(priced(r#""19.99""#), eur(1999, None, true));
        assert_eq!(priced(r#""1,299.00""#), eur(129_900, None, true));
        assert_eq!(priced(r#""1.299,00 €""#), eur(129_900, None, true));
        assert_eq!(priced(r#""EUR 19""#), eur(1900, None, true));
        assert_eq!(priced(r#""19,99""#), eur(1999, None, true));
        assert_eq!(priced(r#"{"@value":"19.99"}"#), eur(1999, None, true));
        assert_eq!(priced(r#""$19.99""#), (1999, None, "USD".to_owned(), true));
        assert_eq!(priced(r#""Free""#), eur(0, None, true));
        // Four decimals in a string are a mistake, not float noise.
        assert!(matches!(
            run(r#"{"@type":"Product","name":"Celeste","offers":{"price":"19.9999"}}"#),
            Err(ExtractError::BadPrice { .. })
        ));
    }

    #[test]
    fn currencies_may_be_signs_and_a_bad_one_is_named() {
        let block = |currency: &str| {
            format!(
                r#"{{"@type":"Product","name":"Celeste","offers":{{"price":"4.99","priceCurrency":"{currency}"}}}}"#
            )
        };
        assert_eq!(offer(&block("€")).2, "EUR");
        assert_eq!(offer(&block("gbp")).2, "GBP");
        let err = run(&block("Euro")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "could not read the price of \"Celeste\": \"Euro\" is not a currency code"
        );
    }

    #[test]
    fn aggregate_offers_give_their_low_price_or_their_cheapest_offer() {
        let agg = |fields: &str| {
            offer(&format!(
                r#"{{"@type":"VideoGame","name":"Celeste","offers":{{"@type":"AggregateOffer",{fields}}}}}"#
            ))
        };
        assert_eq!(
            agg(r#""lowPrice":"9.99","highPrice":"19.99","offerCount":"3","priceCurrency":"EUR""#),
            eur(999, None, true)
        );
        assert_eq!(
            agg(r#""highPrice":19.99,"offerCount":1"#),
            eur(1999, None, true)
        );
        assert_eq!(
            agg(r#""lowPrice":"9.99","offerCount":0"#),
            eur(999, None, false)
        );
        assert_eq!(
            agg(
                r#""offerCount":2,"offers":[{"@type":"Offer","price":"12.00"},{"@type":"Offer","price":"11.50"}]"#
            ),
            eur(1150, None, true)
        );
    }

    #[test]
    fn regular_prices_come_from_list_strikethrough_or_msrp_specifications() {
        let specs = |specs: &str| {
            offer(&format!(
                r#"{{"@type":"Product","name":"Celeste","offers":{{"price":"4.99","priceCurrency":"EUR","priceSpecification":{specs}}}}}"#
            ))
        };
        assert_eq!(
            specs(
                r#"{"@type":"UnitPriceSpecification","priceType":"http://schema.org/MSRP","price":"19.99"}"#
            ),
            eur(499, Some(1999), true)
        );
        assert_eq!(
            specs(
                r#"{"@type":"CompoundPriceSpecification","priceComponent":[
                {"@type":"UnitPriceSpecification","priceType":"https://schema.org/SalePrice","price":"4.99"},
                {"@type":"UnitPriceSpecification","priceType":"https://schema.org/StrikethroughPrice","price":"9.99"}]}"#
            ),
            eur(499, Some(999), true)
        );
        // Below the price, or in another currency: not a regular price.
        assert_eq!(
            specs(r#"{"priceType":"ListPrice","price":"3.99"}"#),
            eur(499, None, true)
        );
        assert_eq!(
            specs(r#"{"priceType":"ListPrice","price":"9.99","priceCurrency":"USD"}"#),
            eur(499, None, true)
        );
        let html = r#"<script type="application/ld+json">{"@type":"Product","name":"Celeste","offers":{"price":"4.99","priceSpecification":{"priceType":"ListPrice","price":"3.99"}}}</script>"#;
        let url = Url::parse("https://shop.example/game/1").unwrap();
        let (_, trace) = extract_page_traced(html, &url, &profile(Extractor::Jsonld));
        let regular = trace.products[0].field(Field::RegularPrice).unwrap();
        assert_eq!(regular.rule, None);
        assert_eq!(
            regular.looked_at[0],
            r#"JSON-LD block 1, Product > offers > priceSpecification (ListPrice) > price "3.99" (below the price)"#
        );
    }

    #[test]
    fn references_and_loops_are_followed_once() {
        // The page names the game as its main entity by reference, and the
        // game points back at the page.
        let block = r##"{"@context":"https://schema.org","@graph":[
            {"@type":"WebPage","@id":"#page","mainEntity":{"@id":"#game"}},
            {"@type":"VideoGame","@id":"#game","name":"Celeste","mainEntityOfPage":{"@id":"#page"},
             "offers":{"@id":"#offer"}},
            {"@type":"Offer","@id":"#offer","price":"4.99","priceCurrency":"EUR"}]}"##;
        let items = run(block).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].price_cents, 499);
        let endless = r##"{"@type":"WebPage","@id":"#p","name":"x","mainEntity":{"@id":"#p"}}"##;
        assert!(matches!(run(endless), Err(ExtractError::NoProduct { .. })));
        // Every node refers to every other: each is walked once, not 200^8 times.
        let refs: Vec<String> = (0..200)
            .map(|i| format!(r##"{{"@id":"#n{i}"}}"##))
            .collect();
        let nodes: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    r##"{{"@id":"#n{i}","@type":"WebPage","hasVariant":[{}]}}"##,
                    refs.join(",")
                )
            })
            .collect();
        let tangle = format!(r#"{{"@graph":[{}]}}"#, nodes.join(","));
        assert!(matches!(run(&tangle), Err(ExtractError::NoProduct { .. })));
    }

    #[test]
    fn an_offer_listed_after_its_product_is_the_products_offer() {
        let block = r##"{"@graph":[
            {"@type":"VideoGame","@id":"#game","name":"Celeste"},
            {"@type":"Offer","price":"4.99","priceCurrency":"EUR","itemOffered":{"@id":"#game"}}]}"##;
        assert_eq!(offer(block), eur(499, None, true));
    }

    #[test]
    fn entities_escaped_in_script_text_are_decoded() {
        assert_eq!(
            decode_entities("Tom &amp; Jerry&#39;s &#x2122; & co &bogus;"),
            "Tom & Jerry's ™ & co &bogus;"
        );
        assert_eq!(decode_entities("a &#99999999; b"), "a &#99999999; b");
    }
}
