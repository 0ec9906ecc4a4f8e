//! Mail subscriptions (docs/architecture.md §4): the crawl digest and per-game
//! price alerts, each confirmed by its own double opt-in.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Subscriptions::Table)
                    .col(
                        ColumnDef::new(Subscriptions::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Subscriptions::Email)
                            .string_len(320)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Subscriptions::Topic)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Subscriptions::GameId).big_integer())
                    .col(ColumnDef::new(Subscriptions::TargetCents).big_integer())
                    .col(
                        ColumnDef::new(Subscriptions::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Subscriptions::TokenHash).string_len(64))
                    .col(ColumnDef::new(Subscriptions::TokenExpiresAt).timestamp_with_time_zone())
                    .col(ColumnDef::new(Subscriptions::ConfirmSentAt).timestamp_with_time_zone())
                    .col(
                        ColumnDef::new(Subscriptions::ConfirmsSent)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Subscriptions::Armed)
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .col(
                        ColumnDef::new(Subscriptions::Fired)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Subscriptions::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Subscriptions::ConfirmedAt).timestamp_with_time_zone())
                    .col(ColumnDef::new(Subscriptions::UnsubscribedAt).timestamp_with_time_zone())
                    .foreign_key(
                        ForeignKey::create()
                            .name("subscriptions_game")
                            .from(Subscriptions::Table, Subscriptions::GameId)
                            .to(Games::Table, Games::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One row per address and topic: subscribing again updates it, so
        // a repeated form makes no duplicate (and no flood of mail).
        manager
            .create_index(
                Index::create()
                    .name("subscriptions_email_topic")
                    .table(Subscriptions::Table)
                    .col(Subscriptions::Email)
                    .col(Subscriptions::Topic)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // A confirmation link is looked up by its token's hash.
        manager
            .create_index(
                Index::create()
                    .name("subscriptions_token")
                    .table(Subscriptions::Table)
                    .col(Subscriptions::TokenHash)
                    .to_owned(),
            )
            .await?;
        // The Notifier asks for confirmed subscribers of a topic, and for
        // confirmed alerts per game.
        manager
            .create_index(
                Index::create()
                    .name("subscriptions_status_topic")
                    .table(Subscriptions::Table)
                    .col(Subscriptions::Status)
                    .col(Subscriptions::Topic)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Subscriptions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    Id,
    Email,
    Topic,
    GameId,
    TargetCents,
    Status,
    TokenHash,
    TokenExpiresAt,
    ConfirmSentAt,
    ConfirmsSent,
    Armed,
    Fired,
    CreatedAt,
    ConfirmedAt,
    UnsubscribedAt,
}

#[derive(DeriveIden)]
enum Games {
    Table,
    Id,
}
