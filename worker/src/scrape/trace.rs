//! What [`extract_page_traced`](super::extract_page_traced) reports besides
//! the offers: for each product the extractor considered, which rule gave
//! each field its value, and where it looked when none did. Meant for people
//! checking a site's profile against its pages.
//!
//! Extraction without a trace records nothing: every description is built
//! by a closure that only runs when a trace is being kept.

use std::cell::RefCell;
use std::fmt;

/// A field of an offer, as a trace names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Title,
    Price,
    RegularPrice,
    Currency,
    Availability,
    ExternalId,
}

impl Field {
    /// Every field, in the order a trace lists them.
    pub const ALL: [Field; 6] = [
        Field::Title,
        Field::Price,
        Field::RegularPrice,
        Field::Currency,
        Field::Availability,
        Field::ExternalId,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Title => "title",
            Field::Price => "price",
            Field::RegularPrice => "regular price",
            Field::Currency => "currency",
            Field::Availability => "availability",
            Field::ExternalId => "external id",
        }
    }
}

/// How one field of one product was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTrace {
    pub field: Field,
    /// The rule that produced the value, with the text it read, e.g.
    /// `JSON-LD block 2, VideoGame > offers > price "7.99"`. `None` when no
    /// rule produced one (an optional field left empty, or the failure).
    pub rule: Option<String>,
    /// The places looked at without result, in the order they were tried,
    /// e.g. `OpenGraph product:original_price:amount (absent)`.
    pub looked_at: Vec<String>,
}

/// One product the extractor considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductTrace {
    /// Where it is on the page, e.g. `JSON-LD block 1, @graph[2] (VideoGame)`.
    pub source: String,
    /// Its index in the returned items; `None` when it gave no item.
    pub item: Option<usize>,
    /// Why it gave no item of its own ("no price", "same offer as item 0").
    pub note: Option<String>,
    /// In [`Field::ALL`] order, each field at most once; a field the
    /// extractor never got to (after a failure) is absent.
    pub fields: Vec<FieldTrace>,
}

impl ProductTrace {
    pub fn field(&self, field: Field) -> Option<&FieldTrace> {
        self.fields.iter().find(|f| f.field == field)
    }
}

/// The trace of one page's extraction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// What the page holds for the extractor before any field is read: its
    /// JSON-LD blocks (and the ones that are not JSON), microdata items,
    /// OpenGraph tags, the selectors that matched.
    pub page: Vec<String>,
    /// Every product considered, in the order they were read.
    pub products: Vec<ProductTrace>,
}

impl Trace {
    /// The trace as text, one line per entry: the page's lines, then each
    /// product with its fields indented below it. `Display` writes these.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.page.iter().map(|l| format!("page: {l}")).collect();
        for (n, product) in self.products.iter().enumerate() {
            let outcome = match (product.item, &product.note) {
                (Some(i), _) => format!("item {}", i + 1),
                (None, Some(note)) => format!("no item: {note}"),
                (None, None) => "no item".to_owned(),
            };
            out.push(format!(
                "product {}: {} -> {outcome}",
                n + 1,
                product.source
            ));
            for f in &product.fields {
                let line = match &f.rule {
                    Some(rule) if f.looked_at.is_empty() => format!("{}: {rule}", f.field.name()),
                    Some(rule) => format!(
                        "{}: {rule} (after {})",
                        f.field.name(),
                        f.looked_at.join("; ")
                    ),
                    None if f.looked_at.is_empty() => format!("{}: not found", f.field.name()),
                    None => format!(
                        "{}: not found; looked at {}",
                        f.field.name(),
                        f.looked_at.join("; ")
                    ),
                };
                out.push(format!("  {line}"));
            }
        }
        out
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in self.lines() {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// Where the extractors record into a trace; holds nothing, and runs none
/// of the closures given to it, when no trace is kept.
pub(super) struct Recorder {
    trace: Option<RefCell<Trace>>,
}

impl Recorder {
    pub(super) fn off() -> Recorder {
        Recorder { trace: None }
    }

    pub(super) fn on() -> Recorder {
        Recorder {
            trace: Some(RefCell::new(Trace::default())),
        }
    }

    pub(super) fn is_on(&self) -> bool {
        self.trace.is_some()
    }

    /// A description, built only when tracing.
    pub(super) fn describe(&self, text: impl FnOnce() -> String) -> Option<String> {
        self.is_on().then(text)
    }

    pub(super) fn into_trace(self) -> Trace {
        self.trace.map(RefCell::into_inner).unwrap_or_default()
    }

    fn with(&self, f: impl FnOnce(&mut Trace)) {
        if let Some(trace) = &self.trace {
            f(&mut trace.borrow_mut());
        }
    }

    /// Something the page holds, noted before products are read.
    pub(super) fn page(&self, text: impl FnOnce() -> String) {
        self.with(|t| t.page.push(text()));
    }

    /// Starts the trace of the next product; what follows is about it.
    pub(super) fn product(&self, source: impl FnOnce() -> String) {
        self.with(|t| {
            t.products.push(ProductTrace {
                source: source(),
                item: None,
                note: None,
                fields: Vec::new(),
            })
        });
    }

    fn field_mut(t: &mut Trace, field: Field) -> Option<&mut FieldTrace> {
        let product = t.products.last_mut()?;
        let pos = match product.fields.iter().position(|f| f.field == field) {
            Some(pos) => pos,
            None => {
                let pos = product
                    .fields
                    .iter()
                    .position(|f| f.field > field)
                    .unwrap_or(product.fields.len());
                product.fields.insert(
                    pos,
                    FieldTrace {
                        field,
                        rule: None,
                        looked_at: Vec::new(),
                    },
                );
                pos
            }
        };
        product.fields.get_mut(pos)
    }

    /// The rule that produced `field` of the current product.
    pub(super) fn found(&self, field: Field, rule: impl FnOnce() -> String) {
        self.with(|t| {
            if let Some(f) = Recorder::field_mut(t, field) {
                f.rule = Some(rule());
            }
        });
    }

    /// A place looked at for `field` of the current product, in vain.
    pub(super) fn looked(&self, field: Field, place: impl FnOnce() -> String) {
        self.with(|t| {
            if let Some(f) = Recorder::field_mut(t, field) {
                f.looked_at.push(place());
            }
        });
    }

    /// The current product became the item at `index`.
    pub(super) fn item(&self, index: usize) {
        self.with(|t| {
            if let Some(p) = t.products.last_mut() {
                p.item = Some(index);
            }
        });
    }

    /// Why the current product gave no item of its own.
    pub(super) fn note(&self, text: impl FnOnce() -> String) {
        self.with(|t| {
            if let Some(p) = t.products.last_mut() {
                p.note = Some(text());
            }
        });
    }
}
