//! Crawls and their tasks: the durable task queue (docs/architecture.md §2).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Crawls::Table)
                    .col(
                        ColumnDef::new(Crawls::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Crawls::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Crawls::Trigger).string_len(16).not_null())
                    .col(
                        ColumnDef::new(Crawls::StartedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Crawls::FinishedAt).timestamp_with_time_zone())
                    .to_owned(),
            )
            .await?;
        // At most one crawl runs at a time, on every node: the database says so.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX crawls_one_running ON crawls (status) WHERE status = 'running'",
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .col(
                        ColumnDef::new(Tasks::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Tasks::CrawlId).big_integer().not_null())
                    .col(ColumnDef::new(Tasks::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(Tasks::Site).string_len(64).not_null())
                    .col(ColumnDef::new(Tasks::Url).text().not_null())
                    .col(ColumnDef::new(Tasks::Host).string_len(255).not_null())
                    .col(ColumnDef::new(Tasks::State).string_len(16).not_null())
                    .col(
                        ColumnDef::new(Tasks::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Tasks::NotBefore)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Tasks::LeaseToken).string_len(64))
                    .col(ColumnDef::new(Tasks::LeaseUntil).timestamp_with_time_zone())
                    .col(ColumnDef::new(Tasks::Worker).string_len(128))
                    .col(ColumnDef::new(Tasks::LastError).text())
                    .col(
                        ColumnDef::new(Tasks::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Tasks::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Tasks::Table, Tasks::CrawlId)
                            .to(Crawls::Table, Crawls::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Deduplication by URL within a crawl.
        manager
            .create_index(
                Index::create()
                    .name("tasks_crawl_url")
                    .table(Tasks::Table)
                    .col(Tasks::CrawlId)
                    .col(Tasks::Url)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The lease query: ready tasks of one host, oldest first.
        manager
            .create_index(
                Index::create()
                    .name("tasks_ready")
                    .table(Tasks::Table)
                    .col(Tasks::State)
                    .col(Tasks::Host)
                    .col(Tasks::NotBefore)
                    .to_owned(),
            )
            .await?;
        // Crawl progress and completion: open tasks of one crawl.
        manager
            .create_index(
                Index::create()
                    .name("tasks_crawl_state")
                    .table(Tasks::Table)
                    .col(Tasks::CrawlId)
                    .col(Tasks::State)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("tasks_lease_token")
                    .table(Tasks::Table)
                    .col(Tasks::LeaseToken)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Tasks::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Crawls::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Crawls {
    Table,
    Id,
    Status,
    Trigger,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
    CrawlId,
    Kind,
    Site,
    Url,
    Host,
    State,
    Attempts,
    NotBefore,
    LeaseToken,
    LeaseUntil,
    Worker,
    LastError,
    CreatedAt,
    UpdatedAt,
}
