//! A request as the simulated servers see it: decoded, checked and its filter compiled, once
//! for all the nodes it reaches.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::config::SimConfig;
use super::matcher::Matcher;
use super::rejection::Rejection;
use crate::fleet::protocol;
use crate::fleet::security;

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
    /// The transport bytes this was decoded from.
    pub(crate) payload: Bytes,
    /// The decoded request.
    pub(crate) req: protocol::DecodedRequest,
    /// The RPC body; `None` for discovery and for a body that does not parse.
    pub(crate) body: Option<RpcBody>,
    /// What the stats count it under: `agent#action`, `agent#<invalid>` or `discovery`.
    pub(crate) key: String,
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
        let verdict = match (schema_violation(&req), &cfg.secure_ca, &cfg.secure_issuer, req.version) {
            (Some(r), ..) => Err(r),
            (None, None, None, _) => Ok(()),
            (None, Some(ca), _, protocol::Version::V1) => {
                security::verify_v1(ca, &req.caller, &req.signed, &req.signature, &req.credential)
                    .map_err(Rejection::Credentials)
            }
            (None, _, Some(issuer), protocol::Version::V2) => {
                security::verify_v2(issuer, &req.caller, &req.signed, &req.signature, &req.credential)
                    .map_err(Rejection::Credentials)
            }
            _ => Err(Rejection::WrongProtocol),
        };
        let body = if req.agent == "discovery" { None } else { RpcBody::parse(&req.payload) };
        let key = match &body {
            _ if req.agent == "discovery" => "discovery".to_string(),
            Some(b) => format!("{}#{}", req.agent, b.action),
            None => format!("{}#<invalid>", req.agent),
        };
        let matcher = Matcher::new(&req.filter);
        Some(Request { payload: payload.clone(), req, body, key, matcher, verdict })
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
