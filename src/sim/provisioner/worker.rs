//! Provisioning one node as the Provisioner's workers do: inventory, configure, restart,
//! each RPC timed and counted.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::candidate::Candidate;
use super::registry::site_label;
use super::ProvisionerConfig;
use crate::fleet::filter::Filter;
use crate::fleet::Fleet;

/// Takes nodes off the candidate's queue and provisions them, until the queue closes.
pub(super) async fn worker(
    c: Arc<Candidate>,
    cfg: ProvisionerConfig,
    fleet: Fleet,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>>,
) {
    loop {
        let node = rx.lock().await.recv().await;
        let Some(node) = node else { return };
        c.queued.fetch_sub(1, Ordering::SeqCst);
        if c.is_paused() {
            continue;
        }
        c.busy.fetch_add(1, Ordering::SeqCst);
        c.gauges(&cfg.site);
        let ok = provision(&c, &cfg, &fleet, &node).await;
        if !ok {
            c.registry.add("choria_provisioner_provision_errors", site_label(&cfg.site), 1.0);
        } else {
            c.registry.add("choria_provisioner_provisioned", site_label(&cfg.site), 1.0);
            if let Ok(mut done) = c.done.lock() {
                done.insert(node.clone(), Instant::now());
            }
        }
        if let Ok(mut h) = c.hosts.lock() {
            h.remove(&node);
        }
        c.busy.fetch_sub(1, Ordering::SeqCst);
        c.gauges(&cfg.site);
    }
}

/// One RPC to one node, timed and counted as the Provisioner does.
async fn call(
    c: &Candidate,
    cfg: &ProvisionerConfig,
    fleet: &Fleet,
    node: &str,
    agent: &str,
    action: &str,
    data: Map<String, serde_json::Value>,
) -> bool {
    let rpc = format!("{agent}#{action}");
    let labels = vec![("site", cfg.site.clone()), ("rpc", rpc)];
    let started = Instant::now();
    let outcome = async {
        let mut s = fleet.rpc_session(agent, action, &data, None, None, Filter::default()).await.ok()?;
        let out = s.send_batch(&[node.to_string()], &CancellationToken::new(), &mut |_| {}).await.ok()?;
        out.replies.first().filter(|r| r.ok()).map(|_| ())
    }
    .await;
    c.registry.observe("choria_provisioner_rpc_time", labels.clone(), started.elapsed().as_secs_f64());
    if outcome.is_none() {
        c.registry.add("choria_provisioner_rpc_errors", labels, 1.0);
    }
    outcome.is_some()
}

/// inventory, configure, restart (the provisioner's sequence without the PKI and helper steps).
async fn provision(c: &Candidate, cfg: &ProvisionerConfig, fleet: &Fleet, node: &str) -> bool {
    let token = || json!(cfg.token);
    if !call(c, cfg, fleet, node, "rpcutil", "inventory", Map::new()).await {
        return false;
    }
    let config = json!({"plugin.choria.server.provision": "false", "identity": node, "plugin.choria.middleware_hosts": "nats://broker.example.net:4222"}).to_string();
    let mut data = Map::new();
    data.insert("token".into(), token());
    data.insert("config".into(), json!(config));
    if !call(c, cfg, fleet, node, "choria_provision", "configure", data).await {
        return false;
    }
    let mut data = Map::new();
    data.insert("token".into(), token());
    data.insert("splay".into(), json!(1));
    call(c, cfg, fleet, node, "choria_provision", "restart", data).await
}
