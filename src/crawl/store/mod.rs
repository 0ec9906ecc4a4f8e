//! The task queue's database access: crawls, leasing, fencing, expiry and
//! completion. Every transition is a conditional statement, so the database
//! stays the truth when several actors or nodes act at once.
//!
//! `crawls` starts, reads and finishes crawls; `queue` adds tasks and finds
//! the hosts with work; `leases` takes and ends leases; `attempts` records
//! each lease's history; `turns` lines up this process's writers on SQLite.

mod attempts;
mod crawls;
mod leases;
mod queue;
mod turns;

pub(crate) use attempts::end_attempts;
pub use crawls::{
    complete_if_done, crawl_report, finish_idle_crawls, last_finished_crawl, latest_crawl,
    running_crawl, start_crawl, task_counts, CrawlReport, StartOutcome,
};
pub(crate) use leases::cancelling;
pub use leases::{
    cancel, current_leases, expire_leases, extend_leases, lease, mark_done, release,
    replan_late_start, spaced, starts_in_lead, HostLease, Leased, Pace, Released, Share,
};
pub use queue::{insert_tasks, ready_hosts, NewTask};
pub use turns::{turn, Turn, Writer};

#[cfg(test)]
pub(crate) use crawls::running_crawl_db;
