//! Auction lots and their bids (docs/architecture.md §3). A lot row holds both
//! the rules fixed at listing and the state bids change; `version` is the
//! compare-and-set counter every change bumps, and a bid row's `seq` is the
//! lot's `version` after the transaction that wrote it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Lots::Table)
                    .col(
                        ColumnDef::new(Lots::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Lots::Title).string_len(200).not_null())
                    .col(ColumnDef::new(Lots::Description).text().not_null())
                    .col(ColumnDef::new(Lots::Currency).string_len(3).not_null())
                    .col(ColumnDef::new(Lots::StartingCents).big_integer().not_null())
                    .col(ColumnDef::new(Lots::ReserveCents).big_integer().null())
                    .col(ColumnDef::new(Lots::Increments).text().not_null())
                    .col(timestamp(Lots::StartsAt))
                    .col(timestamp(Lots::EndsAt))
                    .col(timestamp(Lots::ListedEndsAt))
                    .col(timestamp(Lots::HardEnd))
                    .col(ColumnDef::new(Lots::SoftCloseSecs).big_integer().not_null())
                    .col(ColumnDef::new(Lots::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Lots::CurrentCents).big_integer().not_null())
                    .col(ColumnDef::new(Lots::LeaderId).big_integer().null())
                    .col(ColumnDef::new(Lots::LeaderMaxCents).big_integer().null())
                    .col(
                        ColumnDef::new(Lots::LeaderMaxPlacedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Lots::BidCount).big_integer().not_null())
                    .col(ColumnDef::new(Lots::Version).big_integer().not_null())
                    .col(ColumnDef::new(Lots::WinnerId).big_integer().null())
                    .col(ColumnDef::new(Lots::FinalCents).big_integer().null())
                    .col(ColumnDef::new(Lots::Outcome).string_len(32).null())
                    .col(ColumnDef::new(Lots::CreatedBy).big_integer().null())
                    .col(timestamp(Lots::CreatedAt))
                    .col(timestamp(Lots::UpdatedAt))
                    // A leader or a winner is part of the lot's record: their
                    // account cannot be deleted from under it.
                    .foreign_key(
                        ForeignKey::create()
                            .name("lots_leader")
                            .from(Lots::Table, Lots::LeaderId)
                            .to(Users::Table, Users::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("lots_winner")
                            .from(Lots::Table, Lots::WinnerId)
                            .to(Users::Table, Users::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("lots_created_by")
                            .from(Lots::Table, Lots::CreatedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        // The Scheduler looks for scheduled lots whose start has come and
        // running lots whose end has come.
        manager
            .create_index(
                Index::create()
                    .name("lots_status_starts_at")
                    .table(Lots::Table)
                    .col(Lots::Status)
                    .col(Lots::StartsAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("lots_status_ends_at")
                    .table(Lots::Table)
                    .col(Lots::Status)
                    .col(Lots::EndsAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Bids::Table)
                    .col(
                        ColumnDef::new(Bids::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Bids::LotId).big_integer().not_null())
                    .col(ColumnDef::new(Bids::Seq).big_integer().not_null())
                    .col(ColumnDef::new(Bids::Ord).small_integer().not_null())
                    .col(ColumnDef::new(Bids::UserId).big_integer().not_null())
                    .col(ColumnDef::new(Bids::AmountCents).big_integer().not_null())
                    .col(ColumnDef::new(Bids::MaxCents).big_integer().null())
                    .col(ColumnDef::new(Bids::Proxy).boolean().not_null())
                    .col(timestamp(Bids::PlacedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("bids_lot")
                            .from(Bids::Table, Bids::LotId)
                            .to(Lots::Table, Lots::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("bids_user")
                            .from(Bids::Table, Bids::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // One row per price move: a transaction's rows share `seq` and are
        // told apart by `ord`. Its prefix (lot_id, seq) serves the history
        // and resume reads, so no second index is needed.
        manager
            .create_index(
                Index::create()
                    .name("bids_lot_seq_ord")
                    .table(Bids::Table)
                    .col(Bids::LotId)
                    .col(Bids::Seq)
                    .col(Bids::Ord)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Bids::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Lots::Table).to_owned())
            .await
    }
}

/// A required point in time.
fn timestamp(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Lots {
    Table,
    Id,
    Title,
    Description,
    Currency,
    StartingCents,
    ReserveCents,
    Increments,
    StartsAt,
    EndsAt,
    ListedEndsAt,
    HardEnd,
    SoftCloseSecs,
    Status,
    CurrentCents,
    LeaderId,
    LeaderMaxCents,
    LeaderMaxPlacedAt,
    BidCount,
    Version,
    WinnerId,
    FinalCents,
    Outcome,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Bids {
    Table,
    Id,
    LotId,
    Seq,
    Ord,
    UserId,
    AmountCents,
    MaxCents,
    Proxy,
    PlacedAt,
}
