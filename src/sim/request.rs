//! A request as the simulated servers see it: decoded, checked and its filter compiled, once
//! for all the nodes it reaches.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::config::SimConfig;
use super::matcher::Matcher;
use super::rejection::Rejection;
use super::verify;
use crate::fleet::protocol;

/// The body of an RPC request: the action and its data.
pub(crate) struct RpcBody {
    /// The action asked for.
    pub(crate) action: String,
    /// Its inputs (`{}` when the body has none).
    pub(crate) data: Map<String, Value>,
}

/// A decoded request with its body parsed and filter compiled. A direct request to a batch
/// publishes the same transport bytes to every node; real servers decode it in parallel,
/// one each, so decoding it once here keeps one process a fair stand-in for many.
pub(crate) struct Request {
    /// The decoded request.
    pub(crate) req: protocol::DecodedRequest,
    /// The RPC body; `None` for discovery and for a body that does not parse.
    pub(crate) body: Option<RpcBody>,
    /// What the stats count it under: `agent#action`, `agent#<invalid>` or `discovery`.
    pub(crate) key: Arc<str>,
    /// Where replies go, made once: a subject clones without copying, per reply.
    pub(crate) reply_to: async_nats::Subject,
    /// The request's filter, compiled.
    pub(crate) matcher: Matcher,
    /// Secure mode's verdict on the request's credentials.
    pub(crate) verdict: Result<(), Rejection>,
}

impl Request {
    /// Decodes `payload`; `None` when it is not a request.
    pub(crate) fn prepare(payload: &Bytes, cfg: &SimConfig) -> Option<Request> {
        let req = protocol::decode_request(payload).ok()?;
        // A secure server takes only its own protocol, as real x509 (v1) and choria (v2)
        // providers do.
        // The schema is checked always, secure or not (SecureRequest.IsValidJSON is not gated).
        let v2_secure = cfg.secure_issuer.is_some() || !cfg.secure_org_issuers.is_empty();
        let verdict = match (schema_violation(&req), &cfg.secure_ca, v2_secure, req.version) {
            (Some(r), ..) => Err(r),
            (None, None, false, _) => Ok(()),
            (None, Some(ca), _, protocol::Version::V1) => {
                verify::verify_v1(ca, &req.caller, &req.signed, &req.signature, &req.credential)
                    .map(|_privileged| ())
                    .map_err(Rejection::Credentials)
            }
            (None, _, true, protocol::Version::V2) if !cfg.secure_org_issuers.is_empty() => verify::verify_v2_org(
                &cfg.secure_org_issuers,
                &req.caller,
                &req.signed,
                &req.signature,
                &req.credential,
            )
            .map_err(Rejection::Credentials),
            (None, _, true, protocol::Version::V2) => {
                let issuer = cfg.secure_issuer.as_deref().unwrap_or_default();
                verify::verify_v2(issuer, &req.caller, &req.signed, &req.signature, &req.credential)
                    .map_err(Rejection::Credentials)
            }
            _ => Err(Rejection::WrongProtocol),
        };
        let body = if req.agent == "discovery" { None } else { RpcBody::parse(&req.payload) };
        let key = match &body {
            _ if req.agent == "discovery" => "discovery".into(),
            Some(b) => format!("{}#{}", req.agent, b.action).into(),
            None => format!("{}#<invalid>", req.agent).into(),
        };
        let matcher = match req.agent.as_str() {
            // Discovery checks no agent of its own: its filter is matched whole.
            "discovery" => Matcher::new(&req.filter),
            agent => Matcher::new(&req.filter).assuming_agent(agent),
        };
        let reply_to = async_nats::Subject::from(req.reply_to.as_str());
        Some(Request { req, body, key, reply_to, matcher, verdict })
    }

    /// True for a discovery request.
    pub(crate) fn is_discovery(&self) -> bool {
        self.req.agent == "discovery"
    }

    /// Servers drop requests outside now ± ttl (message.ValidateTTL).
    pub(crate) fn expired(&self, now_secs: i64) -> bool {
        (now_secs - self.req.time_secs).unsigned_abs() > self.req.ttl
    }
}

/// How many recent requests [`RequestCache`] keeps.
const RECENT: usize = 8;

/// The last few requests, by their transport bytes, most recent first. A batch's direct
/// requests arrive one per node; with one entry, two clients' batches arriving interleaved
/// were decoded and their filters compiled again at every switch, once per node.
pub(crate) struct RequestCache<T = Request> {
    entries: VecDeque<(Bytes, Option<T>)>,
}

impl RequestCache {
    /// The request in `payload` (`None`: not a request), decoded on first sight.
    pub(crate) fn get(&mut self, payload: &Bytes, cfg: &SimConfig) -> Option<&Request> {
        self.get_or_prepare(payload, |p| Request::prepare(p, cfg))
    }
}

impl<T> RequestCache<T> {
    /// An empty cache.
    pub(crate) fn new() -> Self {
        RequestCache { entries: VecDeque::with_capacity(RECENT) }
    }

    fn get_or_prepare(&mut self, payload: &Bytes, prepare: impl FnOnce(&Bytes) -> Option<T>) -> Option<&T> {
        match self.entries.iter().position(|(p, _)| p == payload) {
            Some(i) => {
                // Most recent first, so a batch in flight stays cached while others come and go.
                if let Some(hit) = self.entries.remove(i) {
                    self.entries.push_front(hit);
                }
            }
            None => {
                self.entries.truncate(RECENT - 1);
                self.entries.push_front((payload.clone(), prepare(payload)));
            }
        }
        self.entries.front().and_then(|(_, r)| r.as_ref())
    }
}

impl RpcBody {
    fn parse(payload: &[u8]) -> Option<RpcBody> {
        let v: Value = serde_json::from_slice(payload).ok()?;
        let action = v.get("action")?.as_str()?.to_string();
        let data = match v.get("data") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return None,
        };
        Some(RpcBody { action, data })
    }
}

/// The request-schema rules a server enforces (protocol-schema v1/v2 request.json).
fn schema_violation(req: &protocol::DecodedRequest) -> Option<Rejection> {
    let v1 = req.version == protocol::Version::V1;
    if v1 && req.request_id.len() != 32 {
        return Some(Rejection::RequestIdLength);
    }
    if req.request_id.is_empty()
        || req.caller.is_empty()
        || req.collective.is_empty()
        || req.agent.is_empty()
        || req.payload.is_empty()
    {
        return Some(Rejection::EmptyField);
    }
    if (v1 && req.ttl < 30) || req.ttl < 1 {
        return Some(Rejection::TtlTooShort);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Looks `p` up, noting in `prepared` each time it has to be prepared.
    fn get(cache: &mut RequestCache<String>, prepared: &mut Vec<&'static str>, p: &'static str) -> Option<String> {
        let prepare = |b: &Bytes| {
            prepared.push(p);
            (b.as_ref() != b"garbage").then(|| p.to_uppercase())
        };
        cache.get_or_prepare(&Bytes::from_static(p.as_bytes()), prepare).cloned()
    }

    #[test]
    fn interleaved_requests_are_prepared_once_each() {
        let (mut cache, mut prepared) = (RequestCache::new(), Vec::new());
        for _ in 0..50 {
            assert_eq!(get(&mut cache, &mut prepared, "a").as_deref(), Some("A"));
            assert_eq!(get(&mut cache, &mut prepared, "b").as_deref(), Some("B"));
            assert_eq!(get(&mut cache, &mut prepared, "garbage"), None);
        }
        assert_eq!(prepared, ["a", "b", "garbage"], "each payload prepared once");
        for p in ["c", "d", "e", "f", "g", "h", "i", "j"] {
            get(&mut cache, &mut prepared, p);
        }
        get(&mut cache, &mut prepared, "a");
        assert_eq!(prepared.iter().filter(|p| **p == "a").count(), 2, "the oldest is forgotten");
    }
}
