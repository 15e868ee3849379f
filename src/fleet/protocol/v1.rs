//! Protocol version 1 (`choria:*:1`), as in go-choria `protocol/v1/`.
//!
//! The secure request's `message` and the secure reply's `message` carry the inner JSON as
//! plain strings (not base64, whatever the schema descriptions say; choria-protocol.md §2.3).

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

pub(super) const TRANSPORT: &str = "choria:transport:1";
const SECURE_REQUEST: &str = "choria:secure:request:1";
const REQUEST: &str = "choria:request:1";
const SECURE_REPLY: &str = "choria:secure:reply:1";
const REPLY: &str = "choria:reply:1";

#[derive(Serialize)]
struct Transport<'a> {
    protocol: &'static str,
    data: String,
    headers: Headers<'a>,
}

#[derive(Serialize)]
struct Headers<'a> {
    #[serde(rename = "reply-to", skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a str>,
    mc_sender: &'a str,
}

#[derive(Serialize)]
struct SecureRequest<'a> {
    protocol: &'static str,
    message: &'a str,
    signature: &'a str,
    pubcert: &'a str,
}

#[derive(Serialize)]
struct Request<'a> {
    protocol: &'static str,
    message: &'a str,
    envelope: RequestEnvelope<'a>,
}

#[derive(Serialize)]
struct RequestEnvelope<'a> {
    requestid: &'a str,
    senderid: &'a str,
    callerid: &'a str,
    collective: &'a str,
    agent: &'a str,
    ttl: u64,
    time: i64,
    filter: &'a Filter,
}

#[derive(Serialize)]
struct SecureReply<'a> {
    protocol: &'static str,
    message: &'a str,
    hash: String,
}

#[derive(Serialize)]
struct Reply<'a> {
    protocol: &'static str,
    message: &'a str,
    envelope: ReplyEnvelope<'a>,
}

#[derive(Serialize)]
struct ReplyEnvelope<'a> {
    requestid: &'a str,
    senderid: &'a str,
    agent: &'a str,
    time: i64,
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Serialising these plain structs cannot fail: no maps with non-string keys, no I/O.
    serde_json::to_string(v).unwrap_or_default()
}

pub(super) fn encode_request(spec: &RequestSpec<'_>, now: chrono::DateTime<chrono::Utc>) -> Bytes {
    let message = match spec.payload {
        Payload::Discovery => DISCOVERY_PING,
        Payload::Rpc(body) => body,
    };
    let request = to_json(&Request {
        protocol: REQUEST,
        message,
        envelope: RequestEnvelope {
            requestid: spec.request_id,
            senderid: spec.sender,
            callerid: spec.caller,
            collective: spec.collective,
            agent: spec.agent,
            ttl: spec.ttl,
            time: now.timestamp(),
            filter: spec.filter,
        },
    });
    let (signature, pubcert) = match spec.security {
        Security::Insecure => ("insecure", "insecure"),
    };
    let secure = to_json(&SecureRequest {
        protocol: SECURE_REQUEST,
        message: &request,
        signature,
        pubcert,
    });
    let transport = Transport {
        protocol: TRANSPORT,
        data: B64.encode(secure),
        headers: Headers {
            reply_to: Some(spec.reply_to),
            mc_sender: spec.sender,
        },
    };
    Bytes::from(to_json(&transport))
}

/// Opens `data` of a transport into the secure layer's JSON.
fn open_transport(t: &Value) -> Result<Value> {
    let data = str_field(t, "transport", "data")?;
    let raw = B64
        .decode(data)
        .map_err(|e| FleetError::decode("transport data", e))?;
    serde_json::from_slice(&raw).map_err(|e| FleetError::decode("secure message", e))
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
    let secure = open_transport(&t)?;
    expect_protocol(&secure, "secure reply", SECURE_REPLY)?;
    let message = str_field(&secure, "secure reply", "message")?;
    let hash = str_field(&secure, "secure reply", "hash")?;
    if sha256_b64(message.as_bytes()) != hash {
        return Err(FleetError::decode(
            "secure reply",
            "hash does not match the message",
        ));
    }
    let reply: Value = serde_json::from_str(message).map_err(|e| FleetError::decode("reply", e))?;
    expect_protocol(&reply, "reply", REPLY)?;
    let env = reply
        .get("envelope")
        .ok_or_else(|| FleetError::decode("reply", "no envelope"))?;
    Ok(DecodedReply {
        version: Version::V1,
        sender: str_field(env, "reply envelope", "senderid")?.to_string(),
        request_id: str_field(env, "reply envelope", "requestid")?.to_string(),
        agent: str_field(env, "reply envelope", "agent")?.to_string(),
        body: str_field(&reply, "reply", "message")?.as_bytes().to_vec(),
    })
}

pub(super) fn decode_request(t: Value) -> Result<DecodedRequest> {
    let reply_to = t
        .pointer("/headers/reply-to")
        .and_then(Value::as_str)
        .ok_or_else(|| FleetError::decode("transport", "no reply-to header"))?
        .to_string();
    let secure = open_transport(&t)?;
    expect_protocol(&secure, "secure request", SECURE_REQUEST)?;
    let message = str_field(&secure, "secure request", "message")?;
    let req: Value = serde_json::from_str(message).map_err(|e| FleetError::decode("request", e))?;
    expect_protocol(&req, "request", REQUEST)?;
    let env = req
        .get("envelope")
        .ok_or_else(|| FleetError::decode("request", "no envelope"))?;
    let filter = match env.get("filter") {
        Some(f) => serde_json::from_value(f.clone())
            .map_err(|e| FleetError::decode("request filter", e))?,
        None => return Err(FleetError::decode("request envelope", "no filter")),
    };
    let num = |field: &str| {
        env.get(field).and_then(Value::as_i64).ok_or_else(|| {
            FleetError::decode("request envelope", format!("missing integer {field:?}"))
        })
    };
    Ok(DecodedRequest {
        version: Version::V1,
        request_id: str_field(env, "request envelope", "requestid")?.to_string(),
        sender: str_field(env, "request envelope", "senderid")?.to_string(),
        caller: str_field(env, "request envelope", "callerid")?.to_string(),
        collective: str_field(env, "request envelope", "collective")?.to_string(),
        agent: str_field(env, "request envelope", "agent")?.to_string(),
        ttl: num("ttl")?.max(0) as u64,
        time_secs: num("time")?,
        filter,
        reply_to,
        payload: try_base64(str_field(&req, "request", "message")?.as_bytes()),
    })
}

pub(super) fn encode_reply(
    req: &DecodedRequest,
    identity: &str,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Bytes {
    let body = String::from_utf8_lossy(body);
    let reply = to_json(&Reply {
        protocol: REPLY,
        message: &body,
        envelope: ReplyEnvelope {
            requestid: &req.request_id,
            senderid: identity,
            agent: &req.agent,
            time: now.timestamp(),
        },
    });
    let secure = to_json(&SecureReply {
        protocol: SECURE_REPLY,
        hash: sha256_b64(reply.as_bytes()),
        message: &reply,
    });
    let transport = Transport {
        protocol: TRANSPORT,
        data: B64.encode(secure),
        headers: Headers {
            reply_to: None,
            mc_sender: identity,
        },
    };
    Bytes::from(to_json(&transport))
}
