//! sea-orm entities: one module per table (see the `migration` crate for the
//! schema itself).

/// An enum over the closed set of names a string column holds. Each variant
/// is written once with its stored name, which is also its name in JSON and
/// on the wire, so the names live in one place and rows written before the
/// enum existed read back unchanged. The caller gives the `sea_orm` column
/// type, matching the column's migration.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $text:tt,
            )+
        }
    ) => {
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            sea_orm::EnumIter,
            sea_orm::DeriveActiveEnum,
            serde::Serialize,
            serde::Deserialize,
        )]
        $(#[$meta])*
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[sea_orm(string_value = $text)]
                #[serde(rename = $text)]
                $variant,
            )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] =
                [$($name::$variant),+];

            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The variant stored as `text`, if any.
            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod audit_log;
pub mod bids;
pub mod changes;
pub mod crawls;
pub mod flags;
pub mod games;
pub mod lots;
pub mod messages;
pub mod offers;
pub mod outbox;
pub mod price_points;
pub mod rooms;
pub mod sessions;
pub mod subscriptions;
pub mod task_attempts;
pub mod tasks;
pub mod users;

pub use sea_orm;

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use sea_orm::ActiveEnum;

    use crate::changes::ChangeKind;
    use crate::crawls::CrawlStatus;
    use crate::lots::LotStatus;
    use crate::outbox::{MailKind, MailStatus};
    use crate::subscriptions::SubscriptionStatus;
    use crate::tasks::{TaskKind, TaskState};

    fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
        all.iter().map(|&v| name(v)).collect()
    }

    #[test]
    fn each_enum_keeps_the_names_rows_already_hold() {
        // Renaming one would leave existing rows unreadable without a data
        // migration.
        assert_eq!(names(&TaskKind::ALL, TaskKind::as_str), ["listing", "page"]);
        assert_eq!(
            names(&TaskState::ALL, TaskState::as_str),
            ["queued", "leased", "done", "dead", "cancelled"]
        );
        assert_eq!(
            names(&CrawlStatus::ALL, CrawlStatus::as_str),
            ["running", "finished"]
        );
        assert_eq!(
            names(&SubscriptionStatus::ALL, SubscriptionStatus::as_str),
            ["pending", "confirmed", "unsubscribed"]
        );
        assert_eq!(
            names(&MailKind::ALL, MailKind::as_str),
            ["confirm", "digest", "alert"]
        );
        assert_eq!(
            names(&MailStatus::ALL, MailStatus::as_str),
            ["pending", "sending", "sent", "failed", "cancelled"]
        );
        assert_eq!(
            names(&LotStatus::ALL, LotStatus::as_str),
            ["scheduled", "running", "finished", "cancelled"]
        );
        assert_eq!(
            names(&ChangeKind::ALL, ChangeKind::as_str),
            ["new_game", "price_drop", "back_in_stock"]
        );
    }

    fn reads_back<T>(all: &[T], name: fn(T) -> &'static str)
    where
        T: ActiveEnum<Value = String> + Copy + PartialEq + Debug + ToString,
    {
        for &v in all {
            assert_eq!(v.to_value(), name(v));
            assert_eq!(v.to_string(), name(v));
            assert_eq!(T::try_from_value(&name(v).to_owned()).ok(), Some(v));
        }
        assert!(T::try_from_value(&"Queued ".to_owned()).is_err());
    }

    #[test]
    fn the_stored_name_is_the_column_value_and_reads_back() {
        reads_back(&TaskKind::ALL, TaskKind::as_str);
        reads_back(&TaskState::ALL, TaskState::as_str);
        reads_back(&CrawlStatus::ALL, CrawlStatus::as_str);
        reads_back(&SubscriptionStatus::ALL, SubscriptionStatus::as_str);
        reads_back(&MailKind::ALL, MailKind::as_str);
        reads_back(&MailStatus::ALL, MailStatus::as_str);
        reads_back(&LotStatus::ALL, LotStatus::as_str);
        reads_back(&ChangeKind::ALL, ChangeKind::as_str);
    }

    #[test]
    fn parse_knows_only_the_stored_names() {
        assert_eq!(TaskState::parse("dead"), Some(TaskState::Dead));
        assert_eq!(TaskState::parse("Dead"), None);
        assert_eq!(TaskState::parse(""), None);
    }
}
