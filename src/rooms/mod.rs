//! Real-time rooms (docs/architecture.md §3): client sessions on `/ws`, the
//! RoomRegistry and its Rooms. The bus between nodes is `crate::bus`.

pub(crate) mod detached;
pub(crate) mod identity;
pub(crate) mod ids;
pub(crate) mod members;
pub(crate) mod presence;
pub(crate) mod rate;
pub(crate) mod registry;
pub(crate) mod room;
pub mod session;
pub mod store;
pub(crate) mod writer;
