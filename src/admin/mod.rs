//! What admins see and steer (docs/architecture.md §7): the task queue, the
//! outbox, the crawls, the chat rooms, the auction lots and the audit log. The
//! state is the database's, never one process's memory, so every node shows the
//! same thing and nothing is lost on a restart; each action is one conditional
//! statement, then an audit row. Workers and room members are the exception:
//! each is a connection to one node, known only to that node's Dispatcher or
//! RoomRegistry, so each node describes its own with its heartbeat and the
//! pages put every node's together (`fleet`).

pub(crate) mod actions;
pub(crate) mod audit;
pub mod backup;
pub(crate) mod crawls;
pub(crate) mod dashboard;
pub(crate) mod fleet;
pub(crate) mod lots;
pub(crate) mod outbox;
pub(crate) mod rooms;
pub(crate) mod tasks;

/// One page of a long list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u64,
    pub pages: u64,
    pub total: u64,
}

/// Rows per page on the admin lists.
pub const PER_PAGE: u64 = 50;

/// The rows before `page` (from 1). A page number is whatever the query
/// string says, so the product saturates, and stays within what a database
/// takes as an OFFSET (a signed 64-bit integer): a page past the end is
/// empty, never an overflow.
pub fn offset(page: u64) -> u64 {
    page.saturating_sub(1)
        .saturating_mul(PER_PAGE)
        .min(i64::MAX as u64)
}

/// The one of `all` that a list's `field` parameter names, `None` when it is
/// empty, or a message listing the choices.
pub fn one_of<T: Copy>(
    field: &str,
    text: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<Option<T>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    all.iter()
        .copied()
        .find(|&choice| name(choice) == text)
        .map(Some)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|&choice| name(choice)).collect();
            format!("{field} must be one of {} (not {text:?})", names.join(", "))
        })
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, page: u64, total: u64) -> Page<T> {
        Page {
            items,
            page,
            pages: total.div_ceil(PER_PAGE).max(1),
            total,
        }
    }

    /// The same page with each item turned into another.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            page: self.page,
            pages: self.pages,
            total: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{offset, one_of, PER_PAGE};
    use crate::crawl::lease::TaskState;

    #[test]
    fn a_page_number_of_any_size_is_an_offset_a_database_takes() {
        assert_eq!(offset(0), 0);
        assert_eq!(offset(1), 0);
        assert_eq!(offset(3), 2 * PER_PAGE);
        assert_eq!(offset(u64::MAX), i64::MAX as u64);
    }

    #[test]
    fn a_choice_is_found_by_name_and_a_wrong_one_lists_the_choices() {
        let pick = |text| one_of("state", text, &TaskState::ALL, TaskState::as_str);
        assert_eq!(pick(""), Ok(None));
        assert_eq!(pick("dead"), Ok(Some(TaskState::Dead)));
        assert_eq!(
            pick("Dead"),
            Err("state must be one of queued, leased, done, dead, cancelled (not \"Dead\")".into())
        );
    }
}
