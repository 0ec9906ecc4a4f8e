//! The merged catalog: games, one offer per game and store, price history and
//! the changes each crawl caused.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Games::Table)
                    .col(pk(Games::Id))
                    .col(ColumnDef::new(Games::Title).text().not_null())
                    .col(ColumnDef::new(Games::NormTitle).text().not_null())
                    .col(ColumnDef::new(Games::ExtKey).string_len(64).unique_key())
                    .col(ColumnDef::new(Games::BestCents).big_integer())
                    .col(ColumnDef::new(Games::RegularCents).big_integer())
                    .col(ColumnDef::new(Games::Currency).string_len(3))
                    .col(
                        ColumnDef::new(Games::DiscountPct)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(Games::LowCents).big_integer())
                    .col(
                        ColumnDef::new(Games::StoreCount)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Games::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Games::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("games_norm_title")
                    .table(Games::Table)
                    .col(Games::NormTitle)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Offers::Table)
                    .col(pk(Offers::Id))
                    .col(ColumnDef::new(Offers::GameId).big_integer().not_null())
                    .col(ColumnDef::new(Offers::Store).string_len(64).not_null())
                    .col(ColumnDef::new(Offers::Title).text().not_null())
                    .col(ColumnDef::new(Offers::Url).text().not_null())
                    .col(ColumnDef::new(Offers::PriceCents).big_integer().not_null())
                    .col(ColumnDef::new(Offers::RegularCents).big_integer())
                    .col(ColumnDef::new(Offers::Currency).string_len(3).not_null())
                    .col(ColumnDef::new(Offers::Available).boolean().not_null())
                    .col(
                        ColumnDef::new(Offers::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Offers::Table, Offers::GameId)
                            .to(Games::Table, Games::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("offers_game_store")
                    .table(Offers::Table)
                    .col(Offers::GameId)
                    .col(Offers::Store)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PricePoints::Table)
                    .col(pk(PricePoints::Id))
                    .col(ColumnDef::new(PricePoints::GameId).big_integer().not_null())
                    .col(ColumnDef::new(PricePoints::Store).string_len(64).not_null())
                    .col(
                        ColumnDef::new(PricePoints::PriceCents)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PricePoints::Currency)
                            .string_len(3)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PricePoints::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PricePoints::Table, PricePoints::GameId)
                            .to(Games::Table, Games::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("price_points_game_at")
                    .table(PricePoints::Table)
                    .col(PricePoints::GameId)
                    .col(PricePoints::At)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Changes::Table)
                    .col(pk(Changes::Id))
                    .col(ColumnDef::new(Changes::CrawlId).big_integer().not_null())
                    .col(ColumnDef::new(Changes::GameId).big_integer().not_null())
                    .col(ColumnDef::new(Changes::Store).string_len(64))
                    .col(ColumnDef::new(Changes::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(Changes::OldCents).big_integer())
                    .col(ColumnDef::new(Changes::NewCents).big_integer())
                    .col(
                        ColumnDef::new(Changes::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Changes::Table, Changes::GameId)
                            .to(Games::Table, Games::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("changes_crawl")
                    .table(Changes::Table)
                    .col(Changes::CrawlId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Changes::Table.into_iden(),
            PricePoints::Table.into_iden(),
            Offers::Table.into_iden(),
            Games::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

fn pk<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

#[derive(DeriveIden)]
enum Games {
    Table,
    Id,
    Title,
    NormTitle,
    ExtKey,
    BestCents,
    RegularCents,
    Currency,
    DiscountPct,
    LowCents,
    StoreCount,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Offers {
    Table,
    Id,
    GameId,
    Store,
    Title,
    Url,
    PriceCents,
    RegularCents,
    Currency,
    Available,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PricePoints {
    Table,
    Id,
    GameId,
    Store,
    PriceCents,
    Currency,
    At,
}

#[derive(DeriveIden)]
enum Changes {
    Table,
    Id,
    CrawlId,
    GameId,
    Store,
    Kind,
    OldCents,
    NewCents,
    At,
}
