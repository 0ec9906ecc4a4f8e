//! Rows retention removed, per table, since the database began: what was
//! stored is the rows there plus these, so a count that is a Prometheus
//! counter (`bazaar_messages_total`) never goes down when a pass runs.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RetentionTotals::Table)
                    .col(
                        ColumnDef::new(RetentionTotals::Name)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(RetentionTotals::Removed)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RetentionTotals::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RetentionTotals {
    Table,
    Name,
    Removed,
}
