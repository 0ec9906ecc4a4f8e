//! Real-time rooms (docs/architecture.md §3): client sessions on `/ws`, the
//! RoomRegistry and its Rooms. The bus between nodes is `crate::bus`.

pub mod detached;
pub mod identity;
pub mod ids;
pub mod members;
pub mod presence;
pub mod rate;
pub mod registry;
pub mod room;
pub mod session;
pub mod store;
pub mod writer;
