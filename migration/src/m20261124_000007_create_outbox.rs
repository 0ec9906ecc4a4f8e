//! The mail outbox (docs/architecture.md §4): one row per mail, unique by key,
//! so a mail is queued once however often its cause is seen; the Mailer leases
//! rows, sends them and marks them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(
                        ColumnDef::new(Outbox::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Outbox::Key)
                            .string_len(512)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Outbox::Kind).string_len(32).not_null())
                    .col(ColumnDef::new(Outbox::Recipient).string_len(320).not_null())
                    .col(ColumnDef::new(Outbox::Subject).text().not_null())
                    .col(ColumnDef::new(Outbox::TextBody).text().not_null())
                    .col(ColumnDef::new(Outbox::HtmlBody).text())
                    .col(ColumnDef::new(Outbox::Headers).json().not_null())
                    .col(ColumnDef::new(Outbox::Status).string_len(16).not_null())
                    .col(
                        ColumnDef::new(Outbox::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Outbox::NextAttemptAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Outbox::LeasedUntil).timestamp_with_time_zone())
                    .col(ColumnDef::new(Outbox::LastError).text())
                    .col(
                        ColumnDef::new(Outbox::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Outbox::SentAt).timestamp_with_time_zone())
                    .to_owned(),
            )
            .await?;
        // The Mailer's every tick asks for due rows of one status.
        manager
            .create_index(
                Index::create()
                    .name("outbox_due")
                    .table(Outbox::Table)
                    .col(Outbox::Status)
                    .col(Outbox::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    Key,
    Kind,
    Recipient,
    Subject,
    TextBody,
    HtmlBody,
    Headers,
    Status,
    Attempts,
    NextAttemptAt,
    LeasedUntil,
    LastError,
    CreatedAt,
    SentAt,
}
