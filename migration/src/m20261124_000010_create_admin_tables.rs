//! What the admin pages read and write (docs/architecture.md §7): the audit log
//! of every admin action, each attempt at a task (who ran it, when, how it
//! ended), and durable flags such as the paused queue.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(
                        ColumnDef::new(AuditLog::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AuditLog::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    // Kept as text too: the log outlives a renamed or
                    // deleted account.
                    .col(ColumnDef::new(AuditLog::UserId).big_integer())
                    .col(ColumnDef::new(AuditLog::UserName).string_len(64).not_null())
                    .col(ColumnDef::new(AuditLog::Action).string_len(64).not_null())
                    .col(
                        ColumnDef::new(AuditLog::ObjectKind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuditLog::ObjectId).string_len(64))
                    .col(ColumnDef::new(AuditLog::Detail).text())
                    .col(ColumnDef::new(AuditLog::Address).string_len(64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_log_at")
                    .table(AuditLog::Table)
                    .col(AuditLog::At)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TaskAttempts::Table)
                    .col(
                        ColumnDef::new(TaskAttempts::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TaskAttempts::TaskId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(TaskAttempts::Attempt).integer().not_null())
                    // The lease token (`t{task}-a{attempt}`): what the
                    // transitions that end a lease are fenced by.
                    .col(
                        ColumnDef::new(TaskAttempts::LeaseToken)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(TaskAttempts::Worker)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TaskAttempts::StartedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(TaskAttempts::FinishedAt).timestamp_with_time_zone())
                    // `done`, `retry`, `dead`, `cancelled`; NULL while running.
                    .col(ColumnDef::new(TaskAttempts::Outcome).string_len(16))
                    .col(ColumnDef::new(TaskAttempts::Error).text())
                    .foreign_key(
                        ForeignKey::create()
                            .name("task_attempts_task")
                            .from(TaskAttempts::Table, TaskAttempts::TaskId)
                            .to(Tasks::Table, Tasks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("task_attempts_task")
                    .table(TaskAttempts::Table)
                    .col(TaskAttempts::TaskId)
                    .to_owned(),
            )
            .await?;
        // Durations of finished attempts over a recent window, for charts.
        manager
            .create_index(
                Index::create()
                    .name("task_attempts_finished")
                    .table(TaskAttempts::Table)
                    .col(TaskAttempts::FinishedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Flags::Table)
                    .col(
                        ColumnDef::new(Flags::Name)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Flags::SetBy).string_len(64).not_null())
                    .col(
                        ColumnDef::new(Flags::SetAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Flags::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(TaskAttempts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    UserId,
    UserName,
    Action,
    ObjectKind,
    ObjectId,
    Detail,
    Address,
}

#[derive(DeriveIden)]
enum TaskAttempts {
    Table,
    Id,
    TaskId,
    Attempt,
    LeaseToken,
    Worker,
    StartedAt,
    FinishedAt,
    Outcome,
    Error,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Flags {
    Table,
    Name,
    SetBy,
    SetAt,
}
