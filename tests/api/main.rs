//! Integration tests: real `bazaar serve` and `bazaar worker` processes on
//! loopback, spoken to over real sockets, checked in the database they write.

mod accounts;
mod admin;
mod admin_auctions;
mod admin_browser;
mod admin_crawls;
mod admin_fleet;
mod api;
mod auction_browser;
mod auction_pages;
mod auction_store;
mod auctions;
mod backup;
mod browser;
mod browser_helpers;
mod chat;
mod chat_cli;
mod chat_client;
mod client_address;
mod cluster;
mod cluster_accounts;
mod cluster_admin;
mod cluster_browser;
mod cluster_crawl;
mod cluster_faults;
mod cluster_helpers;
mod cluster_rooms;
mod crawl;
#[cfg(feature = "p2p")]
mod direct;
mod faults;
mod hardening_accounts;
mod helpers;
mod lifecycle;
mod mail;
mod metrics;
mod politeness;
mod retention;
mod room_limits;
mod sites_cli;
mod smtp;
mod soak;
mod subscriptions;
mod supervision;
mod worker_protocol;
mod ws_limits;
