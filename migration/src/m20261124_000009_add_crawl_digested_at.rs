//! When a crawl's digest was queued: the Notifier queues the digest of each
//! finished crawl once, and a crawl without the mark is still owed one.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Crawls::Table)
                    .add_column(ColumnDef::new(Crawls::DigestedAt).timestamp_with_time_zone())
                    .to_owned(),
            )
            .await?;
        // Crawls that finished before digests existed owe none: nobody had
        // subscribed to them.
        manager
            .exec_stmt(
                Query::update()
                    .table(Crawls::Table)
                    .value(Crawls::DigestedAt, Expr::col(Crawls::FinishedAt))
                    .and_where(Expr::col(Crawls::FinishedAt).is_not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Crawls::Table)
                    .drop_column(Crawls::DigestedAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Crawls {
    Table,
    FinishedAt,
    DigestedAt,
}
