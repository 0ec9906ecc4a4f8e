//! The price-history chart, drawn on the server as SVG geometry that the
//! template renders (so every label is escaped like any other text).

use std::collections::BTreeMap;

use entity::price_points;

use crate::domain::money::Money;

pub const WIDTH: i64 = 640;
pub const HEIGHT: i64 = 220;
const PAD_LEFT: i64 = 64;
const PAD_RIGHT: i64 = 16;
const PAD_Y: i64 = 20;

/// One store's line.
pub struct Series {
    pub store: String,
    /// SVG `points`: "x,y x,y ...".
    pub points: String,
    /// Index into the palette in site.css (`series-0` ...).
    pub class: String,
}

pub struct Chart {
    pub series: Vec<Series>,
    /// (y, label) for the price axis.
    pub y_labels: Vec<(i64, String)>,
    /// (x, label) for the first and last dates.
    pub x_labels: Vec<(i64, String)>,
    pub width: i64,
    pub height: i64,
}

/// Draws the history; `None` when there is nothing to draw.
pub fn price_chart(history: &[price_points::Model]) -> Option<Chart> {
    let currency = history.first()?.currency.clone();
    let points: Vec<&price_points::Model> =
        history.iter().filter(|p| p.currency == currency).collect();
    let t0 = points.iter().map(|p| p.at.timestamp()).min()?;
    let t1 = points.iter().map(|p| p.at.timestamp()).max()?;
    let lo = points.iter().map(|p| p.price_cents).min()?;
    let hi = points.iter().map(|p| p.price_cents).max()?;
    // A flat line or a single moment still gets a readable frame.
    let (lo, hi) = if hi == lo {
        (lo - 100.min(lo), hi + 100)
    } else {
        (lo, hi)
    };
    let span_t = (t1 - t0).max(1);
    let plot_w = WIDTH - PAD_LEFT - PAD_RIGHT;
    let plot_h = HEIGHT - 2 * PAD_Y;
    let x = |t: i64| PAD_LEFT + (t - t0) * plot_w / span_t;
    let y = |c: i64| PAD_Y + (hi - c) * plot_h / (hi - lo).max(1);
    let mut by_store: BTreeMap<&str, Vec<&price_points::Model>> = BTreeMap::new();
    for p in &points {
        by_store.entry(p.store.as_str()).or_default().push(p);
    }
    let series = by_store
        .into_iter()
        .enumerate()
        .map(|(i, (store, pts))| {
            // A step line: a price holds until the next point, and up to now.
            let mut coords = Vec::new();
            for (j, p) in pts.iter().enumerate() {
                if j > 0 {
                    coords.push(format!(
                        "{},{}",
                        x(p.at.timestamp()),
                        y(pts[j - 1].price_cents)
                    ));
                }
                coords.push(format!("{},{}", x(p.at.timestamp()), y(p.price_cents)));
            }
            if let Some(last) = pts.last() {
                coords.push(format!("{},{}", x(t1), y(last.price_cents)));
            }
            Series {
                store: store.to_owned(),
                points: coords.join(" "),
                class: format!("series-{}", i % 6),
            }
        })
        .collect();
    let y_labels = [hi, (hi + lo) / 2, lo]
        .into_iter()
        .map(|c| (y(c), Money::new(c, &currency).to_string()))
        .collect();
    let first = points.iter().map(|p| p.at).min()?;
    let last = points.iter().map(|p| p.at).max()?;
    let x_labels = vec![
        (PAD_LEFT, first.format("%Y-%m-%d %H:%M").to_string()),
        (WIDTH - PAD_RIGHT, last.format("%Y-%m-%d %H:%M").to_string()),
    ];
    Some(Chart {
        series,
        y_labels,
        x_labels,
        width: WIDTH,
        height: HEIGHT,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, Utc};

    use super::*;

    fn point(store: &str, cents: i64, minutes: i64) -> price_points::Model {
        price_points::Model {
            id: 0,
            game_id: 1,
            store: store.into(),
            price_cents: cents,
            currency: "EUR".into(),
            at: Utc::now() + TimeDelta::minutes(minutes),
        }
    }

    #[test]
    fn each_store_gets_a_line_inside_the_frame() {
        let history = [point("A", 999, 0), point("B", 799, 0), point("A", 499, 60)];
        let chart = price_chart(&history).expect("chart");
        assert_eq!(chart.series.len(), 2);
        for s in &chart.series {
            for xy in s.points.split(' ') {
                let (x, y) = xy.split_once(',').expect("x,y");
                let (x, y): (i64, i64) = (x.parse().expect("x"), y.parse().expect("y"));
                assert!(
                    (0..=WIDTH).contains(&x) && (0..=HEIGHT).contains(&y),
                    "{xy}"
                );
            }
        }
        assert_eq!(chart.y_labels[0].1, "9.99 €");
    }

    #[test]
    fn no_history_draws_no_chart() {
        assert!(price_chart(&[]).is_none());
    }
}
