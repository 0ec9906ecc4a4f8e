//! The crawl pipeline (docs/architecture.md §2): sites, the durable task queue,
//! the actors that hand tasks to workers and merge what they bring back.

pub(crate) mod browse;
pub(crate) mod catalog;
pub(crate) mod dispatcher;
pub mod lease;
pub(crate) mod local_workers;
pub(crate) mod merger;
pub(crate) mod scheduler;
pub mod sites;
pub(crate) mod store;
pub mod worker_session;
