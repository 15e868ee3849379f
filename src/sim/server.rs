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

/// Answers requests on `subs` until they end. The requests already waiting are answered
/// together and their replies published back to back: the connection then writes them in a
/// few large writes instead of one small write per reply, which costs the broker as much as
/// the simulator (issue 15).
pub(crate) async fn serve_requests(s: Arc<Shared>, subs: Vec<async_nats::Subscriber>) {
    let mut all = futures::stream::select_all(subs).ready_chunks(CHUNK);
    let mut cache = RequestCache::new();
    let (mut out, mut effects) = (Vec::with_capacity(CHUNK), Vec::new());
    while let Some(ms) = all.next().await {
        for m in &ms {
            handle(&s, &m.subject, &m.payload, &mut cache, &mut out, &mut effects);
        }
        for o in out.drain(..) {
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
        // After the replies, as a real server acts after it answered.
        for (i, epoch, effect) in effects.drain(..) {
            effect::schedule(s.clone(), i, epoch, effect);
        }
    }
}

/// How many waiting requests are answered before their replies are published.
const CHUNK: usize = 64;

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

/// Decides every node's answer to one request: the replies go to `out`, the effects to run
/// after them to `effects`.
fn handle(
    s: &Shared,
    subject: &str,
    payload: &Bytes,
    cache: &mut RequestCache,
    out: &mut Vec<Outgoing>,
    effects: &mut Vec<(usize, u64, Effect)>,
) {
    let Some(p) = cache.get(payload, &s.cfg) else {
        lock(&s.stats).malformed += 1;
        return;
    };
    // One clock read per request: the TTL check, every reply's `time` and ping's `pong` (a
    // broadcast's replies are all decided within this call).
    let now = chrono::Utc::now();
    if p.expired(now.timestamp()) {
        lock(&s.stats).ttl_expired += 1;
        return;
    }
    answer(s, subject, p, now, out, effects);
}

/// Every node's answer to `p` (to `out`) and the effects to run after it, decided under the locks.
fn answer(
    s: &Shared,
    subject: &str,
    p: &Request,
    now: chrono::DateTime<chrono::Utc>,
    out: &mut Vec<Outgoing>,
    effects: &mut Vec<(usize, u64, Effect)>,
) {
    let (req, body, key) = (&p.req, &p.body, &p.key);
    let direct = subject.strip_prefix(req.collective.as_str()).and_then(|r| r.strip_prefix(".node."));
    let is_discovery = p.is_discovery();
    let cfg = &s.cfg;
    let mut nodes = lock(&s.nodes);
    let mut rng = lock(&s.rng);
    let mut stats = lock(&s.stats);
    let targets = match direct {
        Some(id) => s.index.find(&nodes, id).map_or(0..0, |i| i..i + 1),
        None => 0..nodes.len(),
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
            node.received.push(key);
            match body {
                Some(b) => agents::dispatch(node, cfg, &mut rng, &req.agent, &b.action, &b.data, now.timestamp()),
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
}
