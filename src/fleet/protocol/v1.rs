//! Protocol version 1 (`choria:*:1`), as in go-choria `protocol/v1/`.
//!
//! The secure request's `message` and the secure reply's `message` carry the inner JSON as
//! plain strings (not base64, whatever the schema descriptions say; choria-protocol.md §2.3).

use std::borrow::Cow;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{
    b64, expect_protocol, hash_matches, json, reply_transport, sha256_b64, to_json, try_base64, DecodedReply,
    DecodedRequest, Payload, RequestSpec, Security, TransportIn, Version, B64, DISCOVERY_PING,
};
use crate::fleet::error::{FleetError, Result};
use crate::fleet::filter::Filter;
use crate::json::{escape_byte, special};

pub(super) const TRANSPORT: &str = "choria:transport:1";
const SECURE_REQUEST: &str = "choria:secure:request:1";
const REQUEST: &str = "choria:request:1";
pub(super) const SECURE_REPLY: &str = "choria:secure:reply:1";
pub(super) const REPLY: &str = "choria:reply:1";

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
    // The signature covers the exact text embedded as `message`.
    let (signature, pubcert) = match &spec.security {
        // ed25519 identities belong to v2; configuration refuses that pairing.
        Security::Insecure | Security::Ed25519(_) => ("insecure".to_string(), "insecure".to_string()),
        Security::X509(id) => (id.sign(request.as_bytes()), id.cert_pem.clone()),
    };
    let secure = to_json(&SecureRequest {
        protocol: SECURE_REQUEST,
        message: &request,
        signature: &signature,
        pubcert: &pubcert,
    });
    let transport = Transport {
        protocol: TRANSPORT,
        data: B64.encode(secure),
        headers: Headers { reply_to: Some(spec.reply_to), mc_sender: spec.sender },
    };
    Bytes::from(to_json(&transport))
}

/// The secure layer of either direction; every field borrows from the decoded base64.
#[derive(Deserialize)]
struct SecureIn<'a> {
    #[serde(borrow)]
    protocol: Cow<'a, str>,
    /// The inner JSON as a string: escaped in the outer JSON, so owned in practice.
    #[serde(borrow)]
    message: Cow<'a, str>,
    #[serde(borrow, default)]
    hash: Cow<'a, str>,
    #[serde(borrow, default)]
    signature: Cow<'a, str>,
    #[serde(borrow, default)]
    pubcert: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ReplyIn<'a> {
    #[serde(borrow)]
    protocol: Cow<'a, str>,
    #[serde(borrow)]
    message: Cow<'a, str>,
    #[serde(borrow)]
    envelope: ReplyEnvelopeIn<'a>,
}

#[derive(Deserialize)]
struct ReplyEnvelopeIn<'a> {
    #[serde(borrow)]
    requestid: Cow<'a, str>,
    #[serde(borrow)]
    senderid: Cow<'a, str>,
    #[serde(borrow)]
    agent: Cow<'a, str>,
}

#[derive(Deserialize)]
struct RequestIn {
    protocol: String,
    message: String,
    envelope: RequestEnvelopeIn,
}

#[derive(Deserialize)]
struct RequestEnvelopeIn {
    requestid: String,
    senderid: String,
    callerid: String,
    collective: String,
    agent: String,
    ttl: i64,
    time: i64,
    filter: Filter,
}

pub(super) fn decode_reply(t: TransportIn<'_>) -> Result<DecodedReply> {
    let raw = b64(&t.data, "secure reply")?;
    let secure: SecureIn = json(&raw, "secure reply")?;
    expect_protocol(&secure.protocol, "secure reply", SECURE_REPLY)?;
    if !hash_matches(secure.message.as_bytes(), &secure.hash) {
        return Err(FleetError::malformed("secure reply", "hash does not match the message"));
    }
    let reply: ReplyIn = json(secure.message.as_bytes(), "reply")?;
    expect_protocol(&reply.protocol, "reply", REPLY)?;
    Ok(DecodedReply {
        version: Version::V1,
        sender: reply.envelope.senderid.into_owned(),
        request_id: reply.envelope.requestid.into_owned(),
        agent: reply.envelope.agent.into_owned(),
        body: reply.message.into_owned().into_bytes(),
    })
}

pub(super) fn decode_request(t: TransportIn<'_>) -> Result<DecodedRequest> {
    let reply_to = t.headers.reply_to.ok_or_else(|| FleetError::malformed("transport", "no reply-to header"))?;
    let raw = b64(&t.data, "secure request")?;
    let secure: SecureIn = json(&raw, "secure request")?;
    expect_protocol(&secure.protocol, "secure request", SECURE_REQUEST)?;
    let req: RequestIn = serde_json::from_str(&secure.message).map_err(|e| FleetError::decode("request", e))?;
    expect_protocol(&req.protocol, "request", REQUEST)?;
    let e = req.envelope;
    Ok(DecodedRequest {
        version: Version::V1,
        request_id: e.requestid,
        sender: e.senderid,
        caller: e.callerid,
        collective: e.collective,
        agent: e.agent,
        ttl: e.ttl.max(0) as u64,
        time_secs: e.time,
        filter: e.filter,
        reply_to: reply_to.into_owned(),
        payload: try_base64(req.message.as_bytes()),
        signed: secure.message.into_owned(),
        signature: secure.signature.into_owned(),
        credential: secure.pubcert.into_owned(),
    })
}

/// The reply, its secure wrapper and the transport, written by hand: the simulator builds one
/// per node, and serde's byte-at-a-time escaping of the JSON inside JSON was most of its CPU
/// per reply (issue 15). The same bytes as serialising the wire structs (`Reply`,
/// `SecureReply`, `Transport`) with serde_json: the tests below keep those as the reference.
pub(super) fn encode_reply(
    req: &DecodedRequest,
    identity: &str,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Bytes {
    // Checked first: a valid body (all of the simulator's) is borrowed without the lossy scan.
    let body = std::str::from_utf8(body).map_or_else(|_| String::from_utf8_lossy(body), Cow::Borrowed);
    // The secure layer embeds the reply as a string: it is written escaped beside the plain
    // text (hashed), our own constant pieces escaped in the source, so only the values are
    // scanned for escaping, not the whole reply a second time.
    // Escaping a JSON text in a string adds about one byte in ten; the envelope ~200.
    let mut r = Twice::with_capacity(body.len() * 5 / 4 + 256);
    r.piece(r#"{"protocol":"choria:reply:1","message":"#, r#"{\"protocol\":\"choria:reply:1\",\"message\":"#);
    r.string(&body);
    r.piece(r#","envelope":{"requestid":"#, r#",\"envelope\":{\"requestid\":"#);
    r.string(&req.request_id);
    r.piece(r#","senderid":"#, r#",\"senderid\":"#);
    r.string(identity);
    r.piece(r#","agent":"#, r#",\"agent\":"#);
    r.string(&req.agent);
    let time = now.timestamp().to_string();
    r.piece(r#","time":"#, r#",\"time\":"#);
    r.piece(&time, &time);
    r.piece("}}", "}}");
    let mut secure = String::with_capacity(r.escaped.len() + 128);
    secure.push_str("{\"protocol\":\"choria:secure:reply:1\",\"message\":\"");
    secure.push_str(&r.escaped);
    secure.push_str("\",\"hash\":\"");
    secure.push_str(&sha256_b64(r.plain.as_bytes()));
    secure.push_str("\"}");
    reply_transport(TRANSPORT, "mc_sender", &secure, identity)
}

/// A JSON text and the same text escaped as the inside of a JSON string, written together.
struct Twice {
    plain: String,
    escaped: String,
}

impl Twice {
    fn with_capacity(n: usize) -> Twice {
        Twice { plain: String::with_capacity(n), escaped: String::with_capacity(n + n / 4) }
    }

    /// A constant piece of JSON and its escaped form (written out in the source).
    fn piece(&mut self, plain: &str, escaped: &str) {
        self.plain.push_str(plain);
        self.escaped.push_str(escaped);
    }

    /// A JSON string: `"s"` escaped once in the plain text, twice in the escaped one, in one
    /// pass: runs without escapes go to both as they are, and each escape written to the plain
    /// text is escaped again for the other (a reply body is dense with quotes).
    fn string(&mut self, s: &str) {
        self.piece("\"", "\\\"");
        let mut rest = s;
        while let Some(at) = special(rest.as_bytes()) {
            self.plain.push_str(&rest[..at]);
            self.escaped.push_str(&rest[..at]);
            let c = rest.as_bytes()[at];
            let start = self.plain.len();
            escape_byte(&mut self.plain, c);
            // The escape is `\"`, `\\`, or a backslash and ASCII letters or digits.
            match c {
                b'"' => self.escaped.push_str("\\\\\\\""),
                b'\\' => self.escaped.push_str("\\\\\\\\"),
                _ => {
                    self.escaped.push_str("\\\\");
                    self.escaped.push_str(&self.plain[start + 1..]);
                }
            }
            // `special` finds only ASCII bytes: the next one starts a character.
            rest = &rest[at + 1..];
        }
        self.piece(rest, rest);
        self.piece("\"", "\\\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The reply as serde writes it from the wire structs: the reference for [`encode_reply`].
    fn encode_reply_serde(
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
        let secure =
            to_json(&SecureReply { protocol: SECURE_REPLY, message: &reply, hash: sha256_b64(reply.as_bytes()) });
        Bytes::from(to_json(&Transport {
            protocol: TRANSPORT,
            data: B64.encode(secure),
            headers: Headers { reply_to: None, mc_sender: identity },
        }))
    }

    #[test]
    fn replies_are_written_as_serde_writes_them() {
        let req = super::super::tests::decoded_request(Version::V1, "rpc\"util\u{1}");
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
