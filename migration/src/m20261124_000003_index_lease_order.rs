//! The lease query walks a host's queued tasks in lease order (listings
//! first, then oldest) and stops at its limit; this index is that order, so
//! leasing costs the same with ten queued tasks or a hundred thousand. It
//! replaces `tasks_ready` (state, host, not_before), which made every lease
//! sort the host's whole queue; a future `not_before` is rare (a retry in
//! backoff) and is filtered on the way.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("tasks_ready")
                    .table(Tasks::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("tasks_lease_order")
                    .table(Tasks::Table)
                    .col(Tasks::State)
                    .col(Tasks::Host)
                    .col(Tasks::Kind)
                    .col(Tasks::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("tasks_lease_order")
                    .table(Tasks::Table)
                    .to_owned(),
            )
            .await?;
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
            .await
    }
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    State,
    Host,
    Kind,
    Id,
    NotBefore,
}
