//! What several nodes must agree on through the database, since it is the
//! one thing they all share and it outlives a Redis outage:
//! - `roles`: who holds a cluster-wide role (the scheduler), as a lease row
//!   the holder renews; another node takes it once it runs out.
//! - `crawl_hosts`: when a host's next fetch may start. Leasing a host's
//!   tasks locks its row, so the politeness delay and concurrency hold for
//!   the whole cluster, not per node.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Roles::Table)
                    .col(ColumnDef::new(Roles::Name).text().not_null().primary_key())
                    .col(ColumnDef::new(Roles::Node).text().not_null())
                    .col(
                        ColumnDef::new(Roles::HeldUntil)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Roles::Since)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CrawlHosts::Table)
                    .col(
                        ColumnDef::new(CrawlHosts::Host)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(CrawlHosts::NextStartAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CrawlHosts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Roles::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Roles {
    Table,
    Name,
    Node,
    HeldUntil,
    Since,
}

#[derive(DeriveIden)]
enum CrawlHosts {
    Table,
    Host,
    NextStartAt,
}
