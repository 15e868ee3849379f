//! A candidate's campaign: the asyncjobs election algorithm over the
//! `CHORIA_LEADER_ELECTION` bucket (choria-ops.md §1.3).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_nats::jetstream;
use rand::rngs::SmallRng;
use rand::Rng;

use super::candidate::Candidate;
use super::registry::election_labels;
use super::ProvisionerConfig;

/// go-choria's `backoff.TwentySec`: 500 ms up to 20 s in 44 steps, each jittered to 0.5–1.5x.
fn backoff(tries: usize, rng: &mut SmallRng) -> f64 {
    let steps = [
        500, 750, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 5500, 6000, 6500, 7000, 7500, 8000, 8500, 9000,
        9500, 10000, 10500, 11000, 11500, 12000, 12500, 13000, 13500, 14000, 14500, 15000, 15500, 16000, 16500, 17000,
        17500, 18000, 18500, 19000, 19500, 20000,
    ];
    let base = steps[tries.min(steps.len() - 1)] as f64 / 1000.0;
    base * rng.gen_range(0.5..1.5)
}

/// The asyncjobs election: create as candidate, compare-and-swap as leader, announce the win
/// one refresh later (the cool-down), and stand down when a CAS fails. Runs until its owner
/// stops it; `rng` (from the simulator's seed) draws the splay and the jitter.
pub(super) async fn campaign(nats: async_nats::Client, c: Arc<Candidate>, cfg: ProvisionerConfig, mut rng: SmallRng) {
    let Ok(store) = jetstream::new(nats).get_key_value(crate::fleet::election::BUCKET).await else { return };
    let key = "provisioner";
    let (mut leader, mut last, mut tries, mut notify_next) = (false, 0u64, 0usize, false);
    tokio::time::sleep(cfg.scaled(rng.gen_range(0.0..5.0))).await;
    loop {
        let state = if leader { "leader" } else { "candidate" };
        c.registry.add(
            "choria_election_campaigns",
            [election_labels(&c.identity), vec![("state", state.to_string())]].concat(),
            1.0,
        );
        if !leader {
            match store.create(key, c.identity.clone().into()).await {
                Ok(rev) => {
                    (leader, last, tries, notify_next) = (true, rev, 0, true);
                    c.registry.set("choria_election_leader", election_labels(&c.identity), 1.0);
                }
                Err(_) => tries += 1,
            }
        } else {
            match store.update(key, c.identity.clone().into(), last).await {
                Ok(rev) => {
                    last = rev;
                    if notify_next {
                        notify_next = false;
                        tokio::time::sleep(cfg.scaled(0.2)).await;
                        c.leading.store(true, Ordering::SeqCst);
                        c.set_paused(&cfg.site, false);
                        // OnWon: resume and trigger a discovery; never block the campaign,
                        // or a deposed leader would not notice in time.
                        c.discover_now.notify_one();
                    }
                }
                Err(_) => {
                    leader = false;
                    let announced = c.leading.swap(false, Ordering::SeqCst);
                    c.registry.set("choria_election_leader", election_labels(&c.identity), 0.0);
                    if announced {
                        // OnLost: pause and forget every host.
                        c.set_paused(&cfg.site, true);
                        if let Ok(mut h) = c.hosts.lock() {
                            h.clear();
                        }
                        c.gauges(&cfg.site);
                    }
                }
            }
        }
        tokio::time::sleep(cfg.scaled(backoff(tries, &mut rng))).await;
    }
}
