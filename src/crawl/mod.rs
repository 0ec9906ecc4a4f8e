//! The crawl pipeline (docs/architecture.md §2): sites, the durable task queue,
//! the actors that hand tasks to workers and merge what they bring back.

pub mod browse;
pub mod catalog;
pub mod dispatcher;
pub mod lease;
pub mod local_workers;
pub mod merger;
pub mod scheduler;
pub mod sites;
pub mod store;
pub mod worker_session;
