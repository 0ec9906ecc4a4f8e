//! Bazaar's schema migrations, run at start-up and by `bazaar migrate`.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_crawl_tables;
mod m20261124_000002_create_catalog_tables;
mod m20261124_000003_index_lease_order;
mod m20261124_000004_create_chat_tables;
mod m20261124_000005_create_accounts;
mod m20261124_000006_create_auction_tables;
mod m20261124_000007_create_outbox;
mod m20261124_000008_create_subscriptions;
mod m20261124_000009_add_crawl_digested_at;
mod m20261124_000010_create_admin_tables;
mod m20261124_000011_index_message_times;
mod m20261124_000012_add_pending_alert_target;
mod m20261125_000013_add_room_seq_reserved;
mod m20261206_000014_create_cluster_tables;
mod m20261207_000015_add_crawl_pruned_counts;
mod m20261207_000016_create_retention_totals;
mod m20261208_000017_add_task_fetched_at;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_crawl_tables::Migration),
            Box::new(m20261124_000002_create_catalog_tables::Migration),
            Box::new(m20261124_000003_index_lease_order::Migration),
            Box::new(m20261124_000004_create_chat_tables::Migration),
            Box::new(m20261124_000005_create_accounts::Migration),
            Box::new(m20261124_000006_create_auction_tables::Migration),
            Box::new(m20261124_000007_create_outbox::Migration),
            Box::new(m20261124_000008_create_subscriptions::Migration),
            Box::new(m20261124_000009_add_crawl_digested_at::Migration),
            Box::new(m20261124_000010_create_admin_tables::Migration),
            Box::new(m20261124_000011_index_message_times::Migration),
            Box::new(m20261124_000012_add_pending_alert_target::Migration),
            Box::new(m20261125_000013_add_room_seq_reserved::Migration),
            Box::new(m20261206_000014_create_cluster_tables::Migration),
            Box::new(m20261207_000015_add_crawl_pruned_counts::Migration),
            Box::new(m20261207_000016_create_retention_totals::Migration),
            Box::new(m20261208_000017_add_task_fetched_at::Migration),
        ]
    }
}
