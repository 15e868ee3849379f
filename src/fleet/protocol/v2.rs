//! Protocol version 2 (`io.choria.protocol.v2.*`), as in go-choria `protocol/v2/`.
//!
//! Byte fields are Go `[]byte`, so they travel as standard base64; the secure request's
//! `request` and the secure reply's `reply` hold base64 of the inner JSON.

use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::{
    sha256_b64, str_field, try_base64, DecodedReply, DecodedRequest, Payload, RequestSpec,
    Security, Version, B64, DISCOVERY_PING,
};
use crate::fleet::error::{FleetError, Result};
use crate::fleet::filter::Filter;

pub(super) const TRANSPORT: &str = "io.choria.protocol.v2.transport";
const SECURE_REQUEST: &str = "io.choria.protocol.v2.secure_request";
const REQUEST: &str = "io.choria.protocol.v2.request";
const SECURE_REPLY: &str = "io.choria.protocol.v2.secure_reply";
const REPLY: &str = "io.choria.protocol.v2.reply";

#[derive(Serialize)]
struct Transport<'a> {
    protocol: &'static str,
    data: String,
    headers: Headers<'a>,
}

#[derive(Serialize)]
struct Headers<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reply: Option<&'a str>,
    sender: &'a str,
}

#[derive(Serialize)]
struct SecureRequest<'a> {
    protocol: &'static str,
    request: String,
    signature: String,
    caller: &'a str,
}

#[derive(Serialize)]
struct Request<'a> {
    protocol: &'static str,
    message: String,
    id: &'a str,
    sender: &'a str,
    caller: &'a str,
    collective: &'a str,
    agent: &'a str,
    ttl: u64,
    time: i64,
    filter: &'a Filter,
}

#[derive(Serialize)]
struct SecureReply {
    protocol: &'static str,
    reply: String,
    hash: String,
}

#[derive(Serialize)]
struct Reply<'a> {
    protocol: &'static str,
    message: String,
    request: &'a str,
    sender: &'a str,
    agent: &'a str,
    time: i64,
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Serialising these plain structs cannot fail: no maps with non-string keys, no I/O.
    serde_json::to_string(v).unwrap_or_default()
}

fn nanos(now: chrono::DateTime<chrono::Utc>) -> i64 {
    now.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

pub(super) fn encode_request(spec: &RequestSpec<'_>, now: chrono::DateTime<chrono::Utc>) -> Bytes {
    // Go base64-encodes `ping` for discovery and the v2 struct encodes the bytes again.
    let message = match spec.payload {
        Payload::Discovery => B64.encode(DISCOVERY_PING),
        Payload::Rpc(body) => B64.encode(body),
    };
    let request = to_json(&Request {
        protocol: REQUEST,
        message,
        id: spec.request_id,
        sender: spec.sender,
        caller: spec.caller,
        collective: spec.collective,
        agent: spec.agent,
        ttl: spec.ttl,
        time: nanos(now),
        filter: spec.filter,
    });
    // UNVERIFIED (choria-protocol.md §6.3): an unsigned v2 request needs a non-empty caller
    // JWT to pass the schema; provisioning-mode servers skip its validation. We send the
    // caller id there, and the bytes `insecure` as the signature as Go does with security off.
    let (signature, caller) = match spec.security {
        Security::Insecure => (B64.encode("insecure"), spec.caller),
    };
    let secure = to_json(&SecureRequest {
        protocol: SECURE_REQUEST,
        request: B64.encode(request),
        signature,
        caller,
    });
    let transport = Transport {
        protocol: TRANSPORT,
        data: B64.encode(secure),
        headers: Headers {
            reply: Some(spec.reply_to),
            sender: spec.sender,
        },
    };
    Bytes::from(to_json(&transport))
}

fn open_b64_json(v: &Value, what: &'static str, field: &str) -> Result<(Vec<u8>, Value)> {
    let raw = B64
        .decode(str_field(v, what, field)?)
        .map_err(|e| FleetError::decode(what, format!("{field}: {e}")))?;
    let json = serde_json::from_slice(&raw)
        .map_err(|e| FleetError::decode(what, format!("{field}: {e}")))?;
    Ok((raw, json))
}

fn expect_protocol(v: &Value, what: &'static str, want: &str) -> Result<()> {
    match v.get("protocol").and_then(Value::as_str) {
        Some(p) if p == want => Ok(()),
        other => Err(FleetError::decode(
            what,
            format!("expected protocol {want:?}, got {other:?}"),
        )),
    }
}

pub(super) fn decode_reply(t: Value) -> Result<DecodedReply> {
    let (_, secure) = open_b64_json(&t, "transport", "data")?;
    expect_protocol(&secure, "secure reply", SECURE_REPLY)?;
    let (raw, reply) = open_b64_json(&secure, "secure reply", "reply")?;
    if sha256_b64(&raw) != str_field(&secure, "secure reply", "hash")? {
        return Err(FleetError::decode(
            "secure reply",
            "hash does not match the reply",
        ));
    }
    expect_protocol(&reply, "reply", REPLY)?;
    let body = B64
        .decode(str_field(&reply, "reply", "message")?)
        .map_err(|e| FleetError::decode("reply", format!("message: {e}")))?;
    Ok(DecodedReply {
        version: Version::V2,
        sender: str_field(&reply, "reply", "sender")?.to_string(),
        request_id: str_field(&reply, "reply", "request")?.to_string(),
        agent: str_field(&reply, "reply", "agent")?.to_string(),
        body,
    })
}

pub(super) fn decode_request(t: Value) -> Result<DecodedRequest> {
    let reply_to = t
        .pointer("/headers/reply")
        .and_then(Value::as_str)
        .ok_or_else(|| FleetError::decode("transport", "no reply header"))?
        .to_string();
    let (_, secure) = open_b64_json(&t, "transport", "data")?;
    expect_protocol(&secure, "secure request", SECURE_REQUEST)?;
    let (_, req) = open_b64_json(&secure, "secure request", "request")?;
    expect_protocol(&req, "request", REQUEST)?;
    let filter = match req.get("filter") {
        Some(f) => serde_json::from_value(f.clone())
            .map_err(|e| FleetError::decode("request filter", e))?,
        None => Filter::default(),
    };
    let num = |field: &str| {
        req.get(field)
            .and_then(Value::as_i64)
            .ok_or_else(|| FleetError::decode("request", format!("missing integer {field:?}")))
    };
    let message = B64
        .decode(str_field(&req, "request", "message")?)
        .map_err(|e| FleetError::decode("request", format!("message: {e}")))?;
    Ok(DecodedRequest {
        version: Version::V2,
        request_id: str_field(&req, "request", "id")?.to_string(),
        sender: str_field(&req, "request", "sender")?.to_string(),
        caller: str_field(&req, "request", "caller")?.to_string(),
        collective: str_field(&req, "request", "collective")?.to_string(),
        agent: str_field(&req, "request", "agent")?.to_string(),
        ttl: num("ttl")?.max(0) as u64,
        time_secs: num("time")? / 1_000_000_000,
        filter,
        reply_to,
        payload: try_base64(&message),
    })
}

pub(super) fn encode_reply(
    req: &DecodedRequest,
    identity: &str,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Bytes {
    let reply = to_json(&Reply {
        protocol: REPLY,
        message: B64.encode(body),
        request: &req.request_id,
        sender: identity,
        agent: &req.agent,
        time: nanos(now),
    });
    let secure = to_json(&SecureReply {
        protocol: SECURE_REPLY,
        hash: sha256_b64(reply.as_bytes()),
        reply: B64.encode(&reply),
    });
    let transport = Transport {
        protocol: TRANSPORT,
        data: B64.encode(secure),
        headers: Headers {
            reply: None,
            sender: identity,
        },
    };
    Bytes::from(to_json(&transport))
}
