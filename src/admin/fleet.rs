//! The fleet side of the admin listener: every node applies the cache purges recorded in the
//! state store (by any node) to its own cache and says so, and `/fleet` lists the nodes.

use crate::config::pattern::PathPattern;
use crate::deploy::store::{now_ms, Change, PurgeAck, PurgeRecord, StateStore};
use crate::proxy::NodeState;
use std::sync::Arc;
use std::time::Duration;

/// Applies purges as they are recorded; every second, any this node has not applied yet
/// (one it could not acknowledge while the store was away, say).
pub async fn follow_purges(node: Arc<NodeState>) {
    use tokio::sync::broadcast::error::RecvError;
    let mut changes = node.store.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Ok(Change::Purge(_) | Change::Everything) | Err(RecvError::Lagged(_)) => apply_pending(&node).await,
                Ok(_) => {}
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => apply_pending(&node).await,
        }
    }
}

async fn apply_pending(node: &NodeState) {
    for purge in node.store.pending_purges() {
        let purged = apply(node, &purge);
        let ack = PurgeAck {
            applied_ms: now_ms(),
            purged,
        };
        if let Err(error) = node.store.ack_purge(&purge.id, ack).await {
            tracing::warn!(target: "edgehook::admin", id = purge.id, %error, "purge applied, not acknowledged yet");
        }
    }
}

/// Purges this node's cache; the paths were checked when the purge was requested.
fn apply(node: &NodeState, purge: &PurgeRecord) -> usize {
    let patterns: Vec<PathPattern> = purge.paths.iter().filter_map(|p| PathPattern::new(p).ok()).collect();
    let purged = node.cache.purge(&purge.distribution, &patterns);
    node.metrics.purged.inc_by(purged as u64);
    tracing::info!(target: "edgehook::admin", id = purge.id, distribution = purge.distribution, paths = ?purge.paths, purged, by = purge.requested_by, "cache purge applied");
    purged
}

/// `GET /fleet`: the store, and the live nodes with what each serves.
pub fn fleet(store: &dyn StateStore) -> serde_json::Value {
    let health = match store.health() {
        crate::deploy::store::StoreHealth::Connected => serde_json::json!({ "status": "connected" }),
        crate::deploy::store::StoreHealth::Degraded(reason) => {
            serde_json::json!({ "status": "degraded", "reason": reason })
        }
    };
    let mut nodes = store.nodes();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    serde_json::json!({
        "store": store.kind(),
        "node": store.node(),
        "revision": store.revision(),
        "health": health,
        "nodes": nodes,
    })
}
