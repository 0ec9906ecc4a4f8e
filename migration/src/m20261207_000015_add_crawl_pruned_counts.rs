//! Tasks of old crawls that retention removed, counted per final state on
//! the crawl's row, so that the crawl's summary still adds up once its
//! `done` and `cancelled` tasks are gone.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        for column in [Crawls::PrunedDone, Crawls::PrunedCancelled] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Crawls::Table)
                        .add_column(ColumnDef::new(column).big_integer().not_null().default(0))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Crawls::PrunedDone, Crawls::PrunedCancelled] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Crawls::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Crawls {
    Table,
    PrunedDone,
    PrunedCancelled,
}
