//! This node's description on the bus, every `nodes::HEARTBEAT`.

use std::net::SocketAddr;
use std::sync::Arc;

use actix::Addr;

use crate::admin::fleet::{Live, VERSION};
use crate::bus::{Bus, NodeInfo};
use crate::crawl::dispatcher::Dispatcher;
use crate::lifecycle::Lifecycle;
use crate::metrics::{Connection, Metrics};
use crate::roles::Leadership;
use crate::rooms::registry::RoomRegistry;
use crate::ws::Leaving;

/// What a node's heartbeat describes it from.
pub struct Heartbeat {
    pub bus: Arc<dyn Bus>,
    pub addr: SocketAddr,
    pub started_at: String,
    pub metrics: Arc<Metrics>,
    pub registry: Addr<RoomRegistry>,
    pub dispatcher: Addr<Dispatcher>,
    pub leaving: Leaving,
    pub leadership: Leadership,
}

impl Heartbeat {
    /// Describes this node to the bus until it stops: in a cluster, the
    /// other nodes count it alive by this, and `/api/nodes` and every
    /// node's admin pages show it, its workers and its rooms as it says.
    pub fn spawn(self, lifecycle: &Lifecycle) {
        lifecycle.spawn(async move {
            let mut tick = tokio::time::interval(crate::bus::nodes::HEARTBEAT);
            loop {
                tick.tick().await;
                self.beat().await;
            }
        });
    }

    async fn beat(&self) {
        // An actor that did not answer (it is restarting) leaves its part
        // empty for one beat rather than the node unlisted.
        let live = Live::read(
            &self.dispatcher,
            &self.registry,
            &self.metrics,
            &self.leaving,
        )
        .await
        .unwrap_or_else(|_| Live {
            clients: self.metrics.open_now(Connection::Client),
            draining: self.leaving.is_cancelled(),
            ..Live::default()
        });
        let mut info = NodeInfo {
            id: self.bus.node().to_string(),
            address: self.addr.to_string(),
            started_at: self.started_at.clone(),
            version: VERSION.to_owned(),
            scheduler: self.leadership.held(),
            ..NodeInfo::default()
        };
        live.describe(&mut info);
        self.bus.heartbeat(info);
    }
}
