//! How the leading candidate finds nodes to provision: discovery cycles in the
//! `provisioning` collective, and the startup events of provision-mode servers.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::candidate::Candidate;
use super::registry::site_label;
use super::ProvisionerConfig;
use crate::fleet::discovery::DiscoveryOptions;
use crate::fleet::filter::Filter;
use crate::fleet::Fleet;

async fn discover_once(c: &Candidate, cfg: &ProvisionerConfig, fleet: &Fleet, tx: &mpsc::UnboundedSender<String>) {
    if c.is_paused() {
        return;
    }
    let opts = DiscoveryOptions {
        filter: Filter::default(),
        collective: Some("provisioning".into()),
        timeout: Some(Duration::from_secs(2)),
        window: true,
        rpc_agent: Some("choria_provision".into()),
        ..Default::default()
    };
    c.registry.add("choria_provisioner_discover_cycles", site_label(&cfg.site), 1.0);
    // Cancelled by dropping this future (the task's owner), not by a token of its own.
    match fleet.discover(&opts, &CancellationToken::new()).await {
        Ok(found) => {
            for n in found.nodes {
                if c.enqueue(cfg, n, tx) {
                    c.registry.add("choria_provisioner_discovered", site_label(&cfg.site), 1.0);
                }
            }
        }
        Err(_) => c.registry.add("choria_provisioner_discovery_errors", site_label(&cfg.site), 1.0),
    }
}

/// A discovery cycle every `cfg.interval`, or at once when the candidate is told to.
pub(super) async fn discovery_loop(
    c: Arc<Candidate>,
    cfg: ProvisionerConfig,
    fleet: Fleet,
    tx: mpsc::UnboundedSender<String>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.interval) => {}
            _ = c.discover_now.notified() => {}
        }
        discover_once(&c, &cfg, &fleet, &tx).await;
    }
}

/// Startup events of provision-mode servers queue them at once.
pub(super) async fn event_loop(
    nats: async_nats::Client,
    c: Arc<Candidate>,
    cfg: ProvisionerConfig,
    tx: mpsc::UnboundedSender<String>,
) {
    let Ok(mut sub) = nats.subscribe(crate::lifecycle::subject("startup", "provision_mode_server")).await else {
        return;
    };
    while let Some(m) = sub.next().await {
        if c.is_paused() {
            continue;
        }
        if let Ok(e) = crate::lifecycle::parse(&m.payload) {
            // A provision-mode startup is a new life in provisioning mode (a reprovision):
            // whatever was done before no longer counts.
            if let Ok(mut done) = c.done.lock() {
                done.remove(&e.identity);
            }
            if c.enqueue(&cfg, e.identity, &tx) {
                c.registry.add("choria_provisioner_event_discovered", site_label(&cfg.site), 1.0);
            }
        }
    }
}
