//! The price-history chart, drawn on the server as SVG geometry that the
//! template renders (so every label is escaped like any other text).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::price_points;

use crate::domain::money::Money;

pub const WIDTH: i64 = 640;
pub const HEIGHT: i64 = 220;
const PAD_LEFT: i64 = 64;
const PAD_RIGHT: i64 = 16;
const PAD_Y: i64 = 20;

/// One store's line, and a dot per price it had.
pub struct Series {
    pub store: String,
    /// SVG `points`: "x,y x,y ...". Empty when the line would have no
    /// length (a store seen once, at the last moment): the dot shows it.
    pub points: String,
    pub markers: Vec<Marker>,
    /// Index into the palette in site.css (`series-0` ...).
    pub class: String,
}

/// A point of the history. A line needs two points, so without the dots a
/// game seen by one crawl (one point per store) would show an empty frame.
pub struct Marker {
    pub x: i64,
    pub y: i64,
    /// Store, price and time, for the dot's tooltip.
    pub label: String,
}

/// A date under the time axis.
pub struct AxisLabel {
    pub x: i64,
    /// SVG `text-anchor`: `start`, `middle` or `end`.
    pub anchor: &'static str,
    pub text: String,
}

pub struct Chart {
    pub series: Vec<Series>,
    /// (y, label) for the price axis.
    pub y_labels: Vec<(i64, String)>,
    /// The first and last dates, or the one date when every point shares it.
    pub x_labels: Vec<AxisLabel>,
    pub width: i64,
    pub height: i64,
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M").to_string()
}

/// Draws the history; `None` when there is nothing to draw.
pub fn price_chart(history: &[price_points::Model]) -> Option<Chart> {
    let currency = history.first()?.currency.clone();
    let points: Vec<&price_points::Model> =
        history.iter().filter(|p| p.currency == currency).collect();
    let first = points.iter().map(|p| p.at).min()?;
    let last = points.iter().map(|p| p.at).max()?;
    let (t0, t1) = (first.timestamp(), last.timestamp());
    let lo = points.iter().map(|p| p.price_cents).min()?;
    let hi = points.iter().map(|p| p.price_cents).max()?;
    // A flat line or a single moment still gets a readable frame.
    let (lo, hi) = if hi == lo {
        (lo - 100.min(lo), hi + 100)
    } else {
        (lo, hi)
    };
    let plot_w = WIDTH - PAD_LEFT - PAD_RIGHT;
    let plot_h = HEIGHT - 2 * PAD_Y;
    let single_moment = t1 == t0;
    // Every point at one moment stands in the middle, not against the axis.
    let x = |t: i64| match single_moment {
        true => PAD_LEFT + plot_w / 2,
        false => PAD_LEFT + (t - t0) * plot_w / (t1 - t0),
    };
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
            let mut coords: Vec<(i64, i64)> = Vec::new();
            for (j, p) in pts.iter().enumerate() {
                if j > 0 {
                    coords.push((x(p.at.timestamp()), y(pts[j - 1].price_cents)));
                }
                coords.push((x(p.at.timestamp()), y(p.price_cents)));
            }
            if let Some(last) = pts.last() {
                coords.push((x(t1), y(last.price_cents)));
            }
            coords.dedup();
            let points = match coords.len() {
                0 | 1 => String::new(),
                _ => coords
                    .iter()
                    .map(|(x, y)| format!("{x},{y}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            let markers = pts
                .iter()
                .map(|p| Marker {
                    x: x(p.at.timestamp()),
                    y: y(p.price_cents),
                    label: format!(
                        "{store}: {} on {} UTC",
                        Money::new(p.price_cents, &currency),
                        stamp(p.at)
                    ),
                })
                .collect();
            Series {
                store: store.to_owned(),
                points,
                markers,
                class: format!("series-{}", i % 6),
            }
        })
        .collect();
    let y_labels = [hi, (hi + lo) / 2, lo]
        .into_iter()
        .map(|c| (y(c), Money::new(c, &currency).to_string()))
        .collect();
    let x_labels = match single_moment {
        true => vec![AxisLabel {
            x: x(t0),
            anchor: "middle",
            text: stamp(first),
        }],
        false => vec![
            AxisLabel {
                x: PAD_LEFT,
                anchor: "start",
                text: stamp(first),
            },
            AxisLabel {
                x: WIDTH - PAD_RIGHT,
                anchor: "end",
                text: stamp(last),
            },
        ],
    };
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
    use chrono::{TimeDelta, TimeZone, Utc};

    use super::*;

    fn point(store: &str, cents: i64, minutes: i64) -> price_points::Model {
        let start = Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap();
        price_points::Model {
            id: 0,
            game_id: 1,
            store: store.into(),
            price_cents: cents,
            currency: "EUR".into(),
            at: start + TimeDelta::minutes(minutes),
        }
    }

    fn inside_the_frame(chart: &Chart) {
        for s in &chart.series {
            let line = s.points.split(' ').filter(|xy| !xy.is_empty()).map(|xy| {
                let (x, y) = xy.split_once(',').expect("x,y");
                (x.parse().expect("x"), y.parse().expect("y"))
            });
            let dots = s.markers.iter().map(|m| (m.x, m.y));
            for (x, y) in line.chain(dots) {
                assert!(
                    (0..=WIDTH).contains(&x) && (0..=HEIGHT).contains(&y),
                    "{}: {x},{y}",
                    s.store
                );
            }
        }
        for (y, label) in &chart.y_labels {
            assert!((0..=HEIGHT).contains(y), "{label} at {y}");
        }
    }

    #[test]
    fn each_store_gets_a_line_inside_the_frame() {
        let history = [point("A", 999, 0), point("B", 799, 0), point("A", 499, 60)];
        let chart = price_chart(&history).expect("chart");
        assert_eq!(chart.series.len(), 2);
        inside_the_frame(&chart);
        assert_eq!(chart.y_labels[0].1, "9.99 €");
        // B was seen once, at the start: its price holds to the end.
        let b = &chart.series[1];
        assert_eq!(
            b.points,
            format!(
                "{PAD_LEFT},{y} {},{y}",
                WIDTH - PAD_RIGHT,
                y = b.markers[0].y
            )
        );
        let labels: Vec<&str> = chart.x_labels.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(labels, ["2026-12-06 10:00", "2026-12-06 11:00"]);
    }

    #[test]
    fn one_point_per_store_at_one_moment_is_a_dot_each_in_the_middle() {
        let history = [point("PixelBay", 999, 0), point("GameVault", 799, 0)];
        let chart = price_chart(&history).expect("chart");
        inside_the_frame(&chart);
        let middle = PAD_LEFT + (WIDTH - PAD_LEFT - PAD_RIGHT) / 2;
        let dots: Vec<(&str, i64, &str)> = chart
            .series
            .iter()
            .flat_map(|s| {
                s.markers
                    .iter()
                    .map(|m| (s.store.as_str(), m.x, m.label.as_str()))
            })
            .collect();
        assert_eq!(
            dots,
            [
                (
                    "GameVault",
                    middle,
                    "GameVault: 7.99 € on 2026-12-06 10:00 UTC"
                ),
                (
                    "PixelBay",
                    middle,
                    "PixelBay: 9.99 € on 2026-12-06 10:00 UTC"
                ),
            ]
        );
        // A line of no length is not drawn at all.
        assert!(chart.series.iter().all(|s| s.points.is_empty()));
        // The cheaper store's dot is lower.
        assert!(chart.series[0].markers[0].y > chart.series[1].markers[0].y);
        assert_eq!(chart.x_labels.len(), 1);
        assert_eq!(chart.x_labels[0].x, middle);
        assert_eq!(chart.x_labels[0].anchor, "middle");
        assert_eq!(chart.x_labels[0].text, "2026-12-06 10:00");
    }

    #[test]
    fn one_point_in_all_is_a_dot_in_a_frame_around_its_price() {
        let chart = price_chart(&[point("RetroShelf", 1499, 0)]).expect("chart");
        inside_the_frame(&chart);
        let labels: Vec<&str> = chart.y_labels.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["15.99 €", "14.99 €", "13.99 €"]);
        let dot = &chart.series[0].markers[0];
        assert_eq!(dot.y, chart.y_labels[1].0, "the price sits mid-frame");
    }

    #[test]
    fn a_price_that_never_changed_is_a_flat_line_with_a_dot_per_point() {
        let history = [point("A", 999, 0), point("A", 999, 30)];
        let chart = price_chart(&history).expect("chart");
        inside_the_frame(&chart);
        let a = &chart.series[0];
        assert_eq!(a.markers.len(), 2);
        assert_eq!(a.markers[0].y, a.markers[1].y);
        assert_eq!(
            a.points,
            format!(
                "{PAD_LEFT},{y} {},{y}",
                WIDTH - PAD_RIGHT,
                y = a.markers[0].y
            )
        );
    }

    #[test]
    fn a_free_game_keeps_its_frame_above_zero() {
        let chart = price_chart(&[point("A", 0, 0)]).expect("chart");
        inside_the_frame(&chart);
        let labels: Vec<&str> = chart.y_labels.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["1.00 €", "0.50 €", "0.00 €"]);
    }

    #[test]
    fn no_history_draws_no_chart() {
        assert!(price_chart(&[]).is_none());
    }
}
