//! Protocol version 2 (`io.choria.protocol.v2.*`), as in go-choria `protocol/v2/`.
//!
//! Byte fields are Go `[]byte`, so they travel as standard base64; the secure request's
//! `request` and the secure reply's `reply` hold base64 of the inner JSON.

use std::borrow::Cow;
use std::fmt::Write as _;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{
    b64, b64_encode_into, expect_protocol, hash_matches, json, reply_transport, sha256_b64, to_json, try_base64,
    DecodedReply, DecodedRequest, Payload, RequestSpec, Security, TransportIn, Version, B64, DISCOVERY_PING,
};
use crate::fleet::error::{FleetError, Result};
use crate::fleet::filter::Filter;
use crate::json::string_into;

pub(super) const TRANSPORT: &str = "io.choria.protocol.v2.transport";
const SECURE_REQUEST: &str = "io.choria.protocol.v2.secure_request";
const REQUEST: &str = "io.choria.protocol.v2.request";
pub(super) const SECURE_REPLY: &str = "io.choria.protocol.v2.secure_reply";
pub(super) const REPLY: &str = "io.choria.protocol.v2.reply";

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
    // x509 identities belong to v1; configuration refuses that pairing.
    let (signature, caller) = match &spec.security {
        Security::Insecure | Security::X509(_) => (B64.encode("insecure"), spec.caller.to_string()),
        Security::Ed25519(id) => (id.sign(request.as_bytes()), id.jwt.clone()),
    };
    let secure =
        to_json(&SecureRequest { protocol: SECURE_REQUEST, request: B64.encode(request), signature, caller: &caller });
    let transport = Transport {
        protocol: TRANSPORT,
        data: B64.encode(secure),
        headers: Headers { reply: Some(spec.reply_to), sender: spec.sender },
    };
    Bytes::from(to_json(&transport))
}

/// Every field borrows from the decoded base64 (base64 and JWTs have nothing to escape).
#[derive(Deserialize)]
struct SecureReplyIn<'a> {
    #[serde(borrow)]
    protocol: Cow<'a, str>,
    #[serde(borrow)]
    reply: Cow<'a, str>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
    #[serde(borrow, default)]
    signature: Cow<'a, str>,
    #[serde(borrow, default)]
    sender: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ReplyIn<'a> {
    #[serde(borrow)]
    protocol: Cow<'a, str>,
    #[serde(borrow)]
    message: Cow<'a, str>,
    #[serde(borrow)]
    request: Cow<'a, str>,
    #[serde(borrow)]
    sender: Cow<'a, str>,
    #[serde(borrow)]
    agent: Cow<'a, str>,
}

#[derive(Deserialize)]
struct SecureRequestIn {
    protocol: String,
    request: String,
    #[serde(default)]
    signature: String,
    #[serde(default)]
    caller: String,
}

#[derive(Deserialize)]
struct RequestIn {
    protocol: String,
    message: String,
    id: String,
    sender: String,
    caller: String,
    collective: String,
    agent: String,
    ttl: i64,
    time: i64,
    #[serde(default)]
    filter: Option<Filter>,
}

pub(super) fn decode_reply(t: TransportIn<'_>) -> Result<DecodedReply> {
    let outer = b64(&t.data, "secure reply")?;
    let secure: SecureReplyIn = json(&outer, "secure reply")?;
    expect_protocol(&secure.protocol, "secure reply", SECURE_REPLY)?;
    let raw = b64(&secure.reply, "secure reply")?;
    if !hash_matches(&raw, &secure.hash) {
        return Err(FleetError::malformed("secure reply", "hash does not match the reply"));
    }
    // Servers sign replies by default (plugin.security.choria.sign_replies); when they did,
    // the signature must verify with the key their JWT names.
    crate::fleet::security::verify_reply_signature(&raw, &secure.signature, &secure.sender)
        .map_err(|e| FleetError::malformed("secure reply", e))?;
    let reply: ReplyIn = json(&raw, "reply")?;
    expect_protocol(&reply.protocol, "reply", REPLY)?;
    Ok(DecodedReply {
        version: Version::V2,
        body: b64(&reply.message, "reply message")?,
        sender: reply.sender.into_owned(),
        request_id: reply.request.into_owned(),
        agent: reply.agent.into_owned(),
    })
}

pub(super) fn decode_request(t: TransportIn<'_>) -> Result<DecodedRequest> {
    let reply_to = t.headers.reply.ok_or_else(|| FleetError::malformed("transport", "no reply header"))?;
    let outer = b64(&t.data, "secure request")?;
    let secure: SecureRequestIn = json(&outer, "secure request")?;
    expect_protocol(&secure.protocol, "secure request", SECURE_REQUEST)?;
    let raw = b64(&secure.request, "secure request")?;
    let req: RequestIn = serde_json::from_slice(&raw).map_err(|e| FleetError::decode("request", e))?;
    expect_protocol(&req.protocol, "request", REQUEST)?;
    let message = b64(&req.message, "request message")?;
    Ok(DecodedRequest {
        version: Version::V2,
        request_id: req.id,
        sender: req.sender,
        caller: req.caller,
        collective: req.collective,
        agent: req.agent,
        ttl: req.ttl.max(0) as u64,
        time_secs: req.time / 1_000_000_000,
        filter: req.filter.unwrap_or_default(),
        reply_to: reply_to.into_owned(),
        payload: try_base64(&message),
        signed: String::from_utf8_lossy(&raw).into_owned(),
        signature: secure.signature,
        credential: secure.caller,
    })
}

/// The reply, its secure wrapper and the transport, written by hand as in v1 (the simulator
/// builds one per node): the same bytes as serialising the wire structs (`Reply`,
/// `SecureReply`, `Transport`) with serde_json: the tests below keep those as the reference.
pub(super) fn encode_reply(
    req: &DecodedRequest,
    identity: &str,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Bytes {
    let mut reply = String::with_capacity(body.len() * 4 / 3 + 256);
    reply.push_str("{\"protocol\":\"io.choria.protocol.v2.reply\",\"message\":\"");
    b64_encode_into(body, &mut reply);
    reply.push_str("\",\"request\":");
    string_into(&mut reply, &req.request_id);
    reply.push_str(",\"sender\":");
    string_into(&mut reply, identity);
    reply.push_str(",\"agent\":");
    string_into(&mut reply, &req.agent);
    let _ = write!(reply, ",\"time\":{}}}", nanos(now));
    let mut secure = String::with_capacity(reply.len() * 4 / 3 + 128);
    secure.push_str("{\"protocol\":\"io.choria.protocol.v2.secure_reply\",\"reply\":\"");
    b64_encode_into(reply.as_bytes(), &mut secure);
    secure.push_str("\",\"hash\":\"");
    secure.push_str(&sha256_b64(reply.as_bytes()));
    secure.push_str("\"}");
    reply_transport(TRANSPORT, "sender", &secure, identity)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The reply as serde writes it from the wire structs: the reference for [`encode_reply`].
    fn encode_reply_serde(
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
        Bytes::from(to_json(&Transport {
            protocol: TRANSPORT,
            data: B64.encode(secure),
            headers: Headers { reply: None, sender: identity },
        }))
    }

    #[test]
    fn replies_are_written_as_serde_writes_them() {
        let req = super::super::tests::decoded_request(Version::V2, "rpc\"util\u{1}");
        let now = chrono::Utc::now();
        for (identity, body) in super::super::tests::REPLY_CASES {
            assert_eq!(
                encode_reply(&req, identity, body, now),
                encode_reply_serde(&req, identity, body, now),
                "{identity}"
            );
        }
    }
}
