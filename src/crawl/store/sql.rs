//! Helpers for hand-written SQL, shared by the queue and by other modules
//! that write their own statements.

use sea_orm::{DatabaseBackend, Statement, Value};

/// A statement written with `$1`-style placeholders, for either backend.
pub(crate) fn stmt(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        // SQLite numbers its parameters `?1`, PostgreSQL `$1`.
        DatabaseBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
