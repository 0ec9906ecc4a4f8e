//! What `bazaar admin prune` prints and `/admin/storage` shows: each
//! table's rows and size, and what the next pass would remove.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};

use super::storage::{self, Storage};
use super::{plan, Removal, TABLES};
use crate::config::RetentionSettings;

/// One line of the overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// A table, or `confirmation_tokens` (links on subscriptions that stay).
    pub name: &'static str,
    /// Rows stored; `None` for what is not a table of its own.
    pub rows: Option<u64>,
    pub size: String,
    pub would_remove: u64,
}

/// The database now and what a pass would remove from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    pub lines: Vec<Line>,
    pub total: String,
    /// A sentence on the free pages and whether the file can shrink.
    pub space: String,
}

/// Reads the overview at `now`.
pub async fn overview(
    db: &DatabaseConnection,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
) -> Result<Overview, DbErr> {
    let storage = storage::sizes(db).await?;
    let planned = plan(db, settings, now).await?;
    Ok(build(&storage, &planned))
}

fn build(storage: &Storage, planned: &[Removal]) -> Overview {
    let would = |name: &str| {
        planned
            .iter()
            .filter(|r| r.table == name)
            .map(|r| r.rows)
            .sum()
    };
    let mut lines: Vec<Line> = storage
        .tables
        .iter()
        .map(|t| Line {
            name: t.table,
            rows: Some(t.rows),
            size: t.bytes.map_or_else(|| "?".to_owned(), bytes),
            would_remove: would(t.table),
        })
        .collect();
    for name in TABLES {
        if !lines.iter().any(|l| l.name == name) {
            lines.push(Line {
                name,
                rows: None,
                size: String::new(),
                would_remove: would(name),
            });
        }
    }
    let space = match (storage.free_bytes, storage.shrinks) {
        (Some(free), Some(true)) => format!(
            "{} free in the file; the file shrinks as rows go.",
            bytes(free)
        ),
        (Some(free), _) => format!(
            "{} free in the file, reused by new rows; the file does not shrink until auto \
             vacuum is turned on (README, \"Retention\").",
            bytes(free)
        ),
        _ => "PostgreSQL's autovacuum makes deleted rows' space reusable.".to_owned(),
    };
    Overview {
        lines,
        total: bytes(storage.total_bytes),
        space,
    }
}

/// `12.3 MiB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

impl Overview {
    /// The overview as a table for the terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<20} {:>12} {:>11} {:>14}",
            "table", "rows", "size", "next pass"
        );
        for line in &self.lines {
            let rows = line.rows.map_or_else(String::new, |r| r.to_string());
            let _ = writeln!(
                out,
                "{:<20} {:>12} {:>11} {:>14}",
                line.name, rows, line.size, line.would_remove
            );
        }
        let _ = writeln!(out, "database: {}. {}", self.total, self.space);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::storage::TableSize;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(128 * 1024 * 1024), "128.0 MiB");
    }

    #[test]
    fn every_pruned_name_has_a_line_with_what_would_go() {
        let storage = Storage {
            tables: vec![TableSize {
                table: "messages",
                rows: 10,
                bytes: Some(2048),
            }],
            total_bytes: 4096,
            free_bytes: Some(1024),
            shrinks: Some(false),
        };
        let planned = [Removal {
            table: "confirmation_tokens",
            rows: 3,
        }];
        let overview = build(&storage, &planned);
        assert_eq!(overview.lines[0].name, "messages");
        assert_eq!(overview.lines[0].size, "2.0 KiB");
        let tokens = overview
            .lines
            .iter()
            .find(|l| l.name == "confirmation_tokens")
            .unwrap();
        assert_eq!((tokens.rows, tokens.would_remove), (None, 3));
        assert!(
            overview.space.contains("does not shrink"),
            "{}",
            overview.space
        );
        let text = overview.text();
        assert!(text.contains("messages"), "{text}");
        assert!(text.contains("database: 4.0 KiB."), "{text}");
    }
}
