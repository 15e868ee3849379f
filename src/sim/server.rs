//! The server loop: every request that reaches the simulator is answered for each node whose
//! state, collective, agents and filter match, as each real server would.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use super::agents::{self, Answer};
use super::effect::{self, Effect};
use super::node::{Fault, Mode, State};
use super::refusal::Refusal;
use super::request::{Request, RequestCache};
use super::simulator::Shared;
use crate::fleet::protocol;
use crate::lock;

/// One reply to send, possibly later.
struct Outgoing {
    reply_to: async_nats::Subject,
    payload: Bytes,
    delay: Option<Duration>,
}

/// Answers requests on `subs` until they end.
pub(crate) async fn serve_requests(s: Arc<Shared>, subs: Vec<async_nats::Subscriber>) {
    let mut all = futures::stream::select_all(subs);
    let mut cache = RequestCache::new();
    while let Some(m) = all.next().await {
        handle(&s, &m.subject, &m.payload, &mut cache).await;
    }
}

/// Answers stats requests on `sub` until it ends.
pub(crate) async fn serve_stats(s: Arc<Shared>, mut sub: async_nats::Subscriber) {
    while let Some(m) = sub.next().await {
        if let Some(reply) = m.reply {
            let max = s.nats.server_info().max_payload;
            let body = s.snapshot().answer(&m.payload, max);
            let _ = s.nats.publish(reply, body.into()).await;
        }
    }
}

async fn handle(s: &Arc<Shared>, subject: &str, payload: &Bytes, cache: &mut RequestCache) {
    let Some(p) = cache.get(payload, &s.cfg) else {
        lock(&s.stats).malformed += 1;
        return;
    };
    // One clock read per request: the TTL check and every reply's `time` (a broadcast's
    // replies all go out within this call).
    let now = chrono::Utc::now();
    if p.expired(now.timestamp()) {
        lock(&s.stats).ttl_expired += 1;
        return;
    }
    let (out, effects) = answer(s, subject, p, now);
    for o in out {
        match o.delay {
            None => {
                let _ = s.nats.publish(o.reply_to, o.payload).await;
            }
            Some(d) => {
                let nats = s.nats.clone();
                s.spawner.spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = nats.publish(o.reply_to, o.payload).await;
                });
            }
        }
    }
    for (i, epoch, effect) in effects {
        effect::schedule(s.clone(), i, epoch, effect);
    }
}

/// Every node's answer to `p`, and the effects to run after it, decided under the locks.
fn answer(
    s: &Shared,
    subject: &str,
    p: &Request,
    now: chrono::DateTime<chrono::Utc>,
) -> (Vec<Outgoing>, Vec<(usize, u64, Effect)>) {
    let (req, body, key) = (&p.req, &p.body, &p.key);
    let direct = subject.strip_prefix(req.collective.as_str()).and_then(|r| r.strip_prefix(".node."));
    let is_discovery = p.is_discovery();
    let mut out = Vec::new();
    let mut effects = Vec::new();
    let cfg = &s.cfg;
    let mut nodes = lock(&s.nodes);
    let mut rng = lock(&s.rng);
    let mut stats = lock(&s.stats);
    let targets: Vec<usize> = match direct {
        Some(id) => s.index.get(id).copied().into_iter().collect(),
        None => (0..nodes.len()).collect(),
    };
    for i in targets {
        let node = &mut nodes[i];
        if node.state != State::Up || !node.serves(&cfg.collective, &req.collective) {
            continue;
        }
        node.daemon.total += 1;
        if !((is_discovery || node.runs(&req.agent)) && p.matcher.matches(node)) {
            node.daemon.filtered += 1;
            continue;
        }
        node.daemon.passed += 1;
        // A secure server drops what it cannot verify, silently.
        if let Err(reason) = p.verdict {
            if node.mode == Mode::Normal || reason.binds_provisioning_mode() {
                *stats.rejected.entry(reason.to_string()).or_default() += 1;
                continue;
            }
        }
        // Per request and node, so without cloning keys that are there already (a BTreeMap's
        // `entry` wants an owned key).
        match stats.requests.get_mut(&**key) {
            Some(n) => *n += 1,
            None => {
                stats.requests.insert(key.to_string(), 1);
            }
        }
        let answer = if is_discovery {
            // The discovery agent answers `pong` to anything containing `ping`.
            if !req.payload.windows(4).any(|w| w == b"ping") {
                continue;
            }
            node.daemon.replies += 1;
            out.push(Outgoing {
                reply_to: p.reply_to.clone(),
                payload: protocol::encode_reply(req, &node.identity, b"pong", now),
                delay: None,
            });
            continue;
        } else {
            node.received.push(key.clone());
            match body {
                Some(b) => agents::dispatch(node, cfg, &mut rng, &req.agent, &b.action, &b.data),
                None if node.fault == Fault::Silent => None,
                None => Some(Answer::refused(Refusal::InvalidBody)),
            }
        };
        let Some(answer) = answer else { continue };
        node.daemon.replies += 1;
        if let Some(e) = answer.effect {
            node.epoch += 1;
            effects.push((i, node.epoch, e));
        }
        let action = body.as_ref().map(|b| b.action.as_str()).unwrap_or("");
        let delay = (node.fault == Fault::Slow).then_some(cfg.slow_delay);
        out.push(Outgoing {
            reply_to: p.reply_to.clone(),
            payload: protocol::encode_reply(req, &node.identity, &answer.body(action), now),
            delay,
        });
    }
    (out, effects)
}
