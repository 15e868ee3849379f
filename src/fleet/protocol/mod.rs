//! The Choria wire protocol: the transport → secure request → request onion and back.
//!
//! Version 1 (`choria:*:1`, x509) and version 2 (`io.choria.protocol.v2.*`, ed25519/JWT) have
//! one module each behind the same functions here, so callers never branch on the version.

mod fast;
pub use fast::Scratch;
mod v1;
mod v2;

use base64::Engine as _;
use std::borrow::Cow;

use bytes::Bytes;
use md5::{Digest, Md5};
use sha2::Sha256;

use super::error::{FleetError, Result};
use super::filter::Filter;

pub(crate) use base64::engine::general_purpose::STANDARD as B64;

/// Which protocol generation to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    /// `choria:request:1` and friends (x509 security providers).
    #[default]
    V1,
    /// `io.choria.protocol.v2.*` (the `choria` ed25519/JWT security provider).
    V2,
}

impl Version {
    /// A fresh request id: 32 hex characters (v1) or a KSUID (v2).
    pub fn new_request_id(self) -> String {
        match self {
            Version::V1 => uuid::Uuid::new_v4().simple().to_string(),
            Version::V2 => ksuid(),
        }
    }
}

/// How requests are vouched for.
#[derive(Debug, Clone, Default)]
pub enum Security {
    /// `"signature":"insecure","pubcert":"insecure"` in v1, the bytes `insecure` in v2: what
    /// provisioning-mode and test fleets accept.
    #[default]
    Insecure,
    /// v1: an RSA signature by this certificate's key.
    X509(std::sync::Arc<super::security::X509Identity>),
    /// v2: an ed25519 signature, with the client JWT as the caller.
    Ed25519(std::sync::Arc<super::security::Ed25519Identity>),
}

/// What travels inside `Request.message`.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// The discovery `ping`: base64 of `ping`, as Go sends it.
    Discovery,
    /// An RPC body, `{"agent","action","data"}` as JSON text.
    Rpc(&'a str),
}

/// The discovery payload exactly as Go puts it on the wire (base64 of `ping`).
pub const DISCOVERY_PING: &str = "cGluZw==";

/// Everything needed to build one request.
#[derive(Debug, Clone)]
pub struct RequestSpec<'a> {
    pub request_id: &'a str,
    /// `senderid`: the client's configured identity.
    pub sender: &'a str,
    /// `callerid`: `choria=<certname>` and the like.
    pub caller: &'a str,
    pub collective: &'a str,
    pub agent: &'a str,
    pub ttl: u64,
    pub filter: &'a Filter,
    pub reply_to: &'a str,
    pub payload: Payload<'a>,
    pub security: Security,
}

/// A reply opened and checked, as the client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedReply {
    pub version: Version,
    pub sender: String,
    pub request_id: String,
    pub agent: String,
    /// The agent's reply body (RPC JSON, or `pong` for discovery).
    pub body: Vec<u8>,
}

impl DecodedReply {
    fn view(&self) -> ReplyView<'_> {
        ReplyView {
            version: self.version,
            sender: Cow::Borrowed(&self.sender),
            request_id: Cow::Borrowed(&self.request_id),
            agent: Cow::Borrowed(&self.agent),
            body: &self.body,
        }
    }
}

/// A reply opened and checked, borrowed from the buffers it was opened into
/// ([`with_reply`]).
#[derive(Debug)]
pub struct ReplyView<'a> {
    pub version: Version,
    pub sender: Cow<'a, str>,
    pub request_id: Cow<'a, str>,
    pub agent: Cow<'a, str>,
    /// The agent's reply body (RPC JSON, or `pong` for discovery).
    pub body: &'a [u8],
}

impl ReplyView<'_> {
    pub fn to_owned(&self) -> DecodedReply {
        DecodedReply {
            version: self.version,
            sender: self.sender.to_string(),
            request_id: self.request_id.to_string(),
            agent: self.agent.to_string(),
            body: self.body.to_vec(),
        }
    }
}

/// A request opened, as a server sees it.
#[derive(Debug, Clone)]
pub struct DecodedRequest {
    pub version: Version,
    pub request_id: String,
    pub sender: String,
    pub caller: String,
    pub collective: String,
    pub agent: String,
    pub ttl: u64,
    /// Unix seconds.
    pub time_secs: i64,
    pub filter: Filter,
    pub reply_to: String,
    /// The payload after the server's "try base64" step.
    pub payload: Vec<u8>,
    /// What vouches for the request: the exact signed text, its signature and the
    /// certificate (v1) or caller JWT (v2).
    pub signed: String,
    pub signature: String,
    pub credential: String,
}

/// FIPS 140 mode for this process: set once by [`enable_fips`], never cleared, as Go's
/// `crypto/fips140.Enabled()` is a property of the whole process.
static FIPS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Puts this process in FIPS mode: reply subjects hash the caller id with sha256.
pub fn enable_fips() {
    FIPS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`enable_fips`] was called.
pub fn fips() -> bool {
    FIPS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The reply subject Go derives: `<collective>.reply.<md5hex(callerid)>.<requestid>`, or
/// with the sha256 hex of the caller id in FIPS mode ([`reply_subject_with`]).
pub fn reply_subject(collective: &str, caller: &str, request_id: &str) -> String {
    reply_subject_with(fips(), collective, caller, request_id)
}

/// The reply subject with FIPS mode given: go-choria (`choria/connection.go`, `ReplyTarget`
/// and `Inbox`) hashes the caller id with sha256 when Go's `fips140.Enabled()`, else with
/// md5, and a FIPS broker's ACLs (`broker/network/choria_auth.go`) allow only that form.
pub fn reply_subject_with(fips: bool, collective: &str, caller: &str, request_id: &str) -> String {
    if fips {
        format!("{collective}.reply.{:x}.{request_id}", Sha256::digest(caller.as_bytes()))
    } else {
        format!("{collective}.reply.{:x}.{request_id}", Md5::digest(caller.as_bytes()))
    }
}

/// Subject of a direct request to one node.
pub fn node_subject(collective: &str, identity: &str) -> String {
    // Pieced together rather than `format!`ted: one per node of every batch (issue 15).
    let mut s = String::with_capacity(collective.len() + ".node.".len() + identity.len());
    s.push_str(collective);
    s.push_str(".node.");
    s.push_str(identity);
    s
}

/// Subject of a broadcast request to an agent.
pub fn broadcast_subject(collective: &str, agent: &str) -> String {
    format!("{collective}.broadcast.agent.{agent}")
}

/// Builds the NATS payload (the transport JSON) of a request. `now` is the send time.
pub fn encode_request(version: Version, spec: &RequestSpec<'_>, now: chrono::DateTime<chrono::Utc>) -> Bytes {
    match version {
        Version::V1 => v1::encode_request(spec, now),
        Version::V2 => v2::encode_request(spec, now),
    }
}

/// Opens a reply transport, checks its hash and returns the agent body.
pub fn decode_reply(payload: &[u8]) -> Result<DecodedReply> {
    with_reply(payload, &mut Scratch::default(), |r| Ok(r.to_owned()))
}

/// Opens a reply as [`decode_reply`] does, into `scratch`'s buffers (kept by the caller from
/// one reply to the next), and hands `f` what it says.
pub fn with_reply<T>(payload: &[u8], scratch: &mut Scratch, f: impl FnOnce(ReplyView<'_>) -> Result<T>) -> Result<T> {
    match fast::open(payload, scratch) {
        Some(r) => f(r),
        None => f(decode_reply_serde(payload)?.view()),
    }
}

/// [`decode_reply`] with serde at every layer: the reference, and the way for anything the
/// fast reader does not take on (it words every error).
fn decode_reply_serde(payload: &[u8]) -> Result<DecodedReply> {
    match detect(payload)? {
        (Version::V1, t) => v1::decode_reply(t),
        (Version::V2, t) => v2::decode_reply(t),
    }
}

/// Opens a request transport the way a server does.
pub fn decode_request(payload: &[u8]) -> Result<DecodedRequest> {
    match detect(payload)? {
        (Version::V1, t) => v1::decode_request(t),
        (Version::V2, t) => v2::decode_request(t),
    }
}

/// Builds a server's reply transport to `req` with the given agent body.
pub fn encode_reply(req: &DecodedRequest, identity: &str, body: &[u8], now: chrono::DateTime<chrono::Utc>) -> Bytes {
    match req.version {
        Version::V1 => v1::encode_reply(req, identity, body, now),
        Version::V2 => v2::encode_reply(req, identity, body, now),
    }
}

/// The sender named in a transport's headers, without opening the inner layers (what
/// discovery does: `mc_sender` in v1, `sender` in v2).
pub fn transport_sender(payload: &[u8]) -> Option<String> {
    match fast::transport_sender(payload) {
        Some(sender) => sender,
        None => transport_sender_serde(payload),
    }
}

/// [`transport_sender`] with serde: the reference, and the way for what the fast reader
/// does not take on.
fn transport_sender_serde(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Only<'a> {
        #[serde(borrow, default)]
        headers: HeadersIn<'a>,
    }
    let t: Only = serde_json::from_slice(payload).ok()?;
    t.headers.mc_sender.or(t.headers.sender).filter(|s| !s.is_empty()).map(std::borrow::Cow::into_owned)
}

/// A transport of either version, read with typed fields (no `Value` tree).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TransportIn<'a> {
    #[serde(borrow)]
    pub(crate) protocol: std::borrow::Cow<'a, str>,
    /// Base64 has nothing to unescape, so this borrows from the payload in practice.
    #[serde(borrow)]
    pub(crate) data: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) headers: HeadersIn<'a>,
}

/// Transport headers of both versions, borrowed from the payload when nothing is escaped.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct HeadersIn<'a> {
    #[serde(rename = "reply-to", borrow)]
    pub(crate) reply_to: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) mc_sender: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) reply: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) sender: Option<Cow<'a, str>>,
}

/// Reads the transport and decides its version from its `protocol`.
fn detect(payload: &[u8]) -> Result<(Version, TransportIn<'_>)> {
    let t: TransportIn = serde_json::from_slice(payload).map_err(|e| FleetError::decode("transport", e))?;
    let version = match t.protocol.as_ref() {
        v1::TRANSPORT => Version::V1,
        v2::TRANSPORT => Version::V2,
        other => return Err(FleetError::malformed("transport", format!("unknown protocol {other:?}"))),
    };
    Ok((version, t))
}

/// A wire struct as JSON text. Serialising these plain structs cannot fail: no maps with
/// non-string keys, no I/O.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A reply's transport (both versions): base64 of the secure reply as `data`, the replying
/// server under `sender_key` in the headers. Written by hand as the reply layers are; the
/// same bytes as serde writes from each version's `Transport` (tested in each).
fn reply_transport(protocol: &str, sender_key: &str, secure: &str, identity: &str) -> Bytes {
    let mut t = String::with_capacity(secure.len() * 4 / 3 + protocol.len() + identity.len() + 64);
    t.push_str("{\"protocol\":");
    crate::json::string_into(&mut t, protocol);
    t.push_str(",\"data\":\"");
    b64_encode_into(secure.as_bytes(), &mut t);
    t.push_str("\",\"headers\":{");
    crate::json::string_into(&mut t, sender_key);
    t.push(':');
    crate::json::string_into(&mut t, identity);
    t.push_str("}}");
    Bytes::from(t)
}

/// Decodes base64 as [`B64`] does (standard alphabet, padded, no stray bits), with SIMD, into
/// `out`, cleared first (a buffer reused from one reply to the next): the per-reply paths
/// decode a transport's whole `data` (issue 15: the scalar decoder was a fifth of the
/// client's reply decoding). A unit test holds it to [`B64`]'s results on mutated input;
/// errors are worded by [`b64`].
pub(crate) fn b64_into(data: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    base64_simd::STANDARD.decode_append(data, out).ok()
}

/// Appends the base64 of `bytes` to `out`, the same text as [`B64`] writes, with SIMD (every
/// simulated reply is written in base64 once or twice).
pub(crate) fn b64_encode_into(bytes: &[u8], out: &mut String) {
    base64_simd::STANDARD.encode_append(bytes, out);
}

/// Decodes base64 text (a transport's `data`, v2's byte fields).
pub(crate) fn b64(data: &str, what: &'static str) -> Result<Vec<u8>> {
    B64.decode(data).map_err(|e| FleetError::decode(what, e))
}

/// Parses JSON that borrows from `raw` where nothing is escaped.
pub(crate) fn json<'a, T: serde::Deserialize<'a>>(raw: &'a [u8], what: &'static str) -> Result<T> {
    serde_json::from_slice(raw).map_err(|e| FleetError::decode(what, e))
}

/// Fails unless `got` is the protocol string `want`.
pub(crate) fn expect_protocol(got: &str, what: &'static str, want: &str) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(FleetError::malformed(what, format!("expected protocol {want:?}, got {got:?}")))
    }
}

/// base64(sha256(bytes)), the reply hash of both versions.
pub(crate) fn sha256_b64(bytes: &[u8]) -> String {
    B64.encode(Sha256::digest(bytes))
}

/// True when `hash` is exactly base64(sha256(bytes)), compared as text like
/// [`sha256_b64`]`(bytes) == hash`, without building the string.
pub(crate) fn hash_matches(bytes: &[u8], hash: &str) -> bool {
    let mut text = [0u8; 44];
    match B64.encode_slice(Sha256::digest(bytes), &mut text) {
        Ok(n) => text[..n] == *hash.as_bytes(),
        Err(_) => false,
    }
}

/// The server-side "try base64" step: decode if it decodes, else keep the raw bytes.
pub(crate) fn try_base64(raw: &[u8]) -> Vec<u8> {
    B64.decode(raw).unwrap_or_else(|_| raw.to_vec())
}

/// A KSUID: 4 bytes of seconds since 2014-05-13 16:53:20 UTC and 16 random bytes, in 27
/// base62 characters.
fn ksuid() -> String {
    const EPOCH: i64 = 1_400_000_000;
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let ts = (chrono::Utc::now().timestamp() - EPOCH).max(0) as u32;
    let mut bytes = [0u8; 20];
    bytes[..4].copy_from_slice(&ts.to_be_bytes());
    bytes[4..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    // Big-endian base conversion of the 160-bit number.
    let mut digits = [0u8; 27];
    let mut num = bytes.to_vec();
    for d in digits.iter_mut().rev() {
        let mut rem = 0u32;
        for byte in num.iter_mut() {
            let acc = (rem << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            rem = acc % 62;
        }
        *d = ALPHABET[rem as usize];
    }
    String::from_utf8_lossy(&digits).into_owned()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// go-choria's direct and broadcast subjects (`%s.node.%s`, `%s.broadcast.agent.%s`).
    #[test]
    fn subjects_are_go_chorias() {
        assert_eq!(node_subject("mcollective", "n1.example.net"), "mcollective.node.n1.example.net");
        assert_eq!(node_subject("eu_west", "a"), "eu_west.node.a");
        assert_eq!(broadcast_subject("mcollective", "rpcutil"), "mcollective.broadcast.agent.rpcutil");
    }

    /// A request as our client sends it, opened as a server opens it: what the reply
    /// encoders' tests answer.
    pub(in crate::fleet::protocol) fn decoded_request(version: Version, agent: &str) -> DecodedRequest {
        let filter = Filter::default();
        let spec = RequestSpec {
            request_id: match version {
                Version::V1 => "9f2c7e0d1b3a4c5d8e6f7a8b9c0d1e2f",
                Version::V2 => "2XbGlS0Ukx3ltbAk1sYbqQ2AqEJ",
            },
            sender: "client",
            caller: "choria=client.mcollective",
            collective: "mcollective",
            agent,
            ttl: 60,
            filter: &filter,
            reply_to: "mcollective.reply.x.y",
            payload: Payload::Rpc(r#"{"agent":"rpcutil","action":"ping","data":{}}"#),
            security: Security::Insecure,
        };
        decode_request(&encode_request(version, &spec, chrono::Utc::now())).expect("our request decodes")
    }

    /// Identities and reply bodies at the edges of escaping and UTF-8.
    pub(in crate::fleet::protocol) const REPLY_CASES: [(&str, &[u8]); 5] = [
        ("n1.example.net", b"{\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{\"pong\":1}}"),
        ("n\"2\\", b"pong"),
        ("", b""),
        ("\u{e9}\u{7f}\n", "tab\t \u{8}\u{c}\r \u{1f} \u{2028} \u{1F600} <&>".as_bytes()),
        ("n", b"\xff not UTF-8 \xc3"),
    ];

    /// The SIMD base64 gives [`B64`]'s results: the same bytes or a failure for both, on
    /// valid text and on text with a byte changed (from the alphabet, padding or anything),
    /// cut short, lengthened, or with stray bits in its last character; and the same text.
    #[test]
    fn simd_base64_is_b64s() {
        use rand::{Rng, SeedableRng};
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \n-_";
        let mut rng = rand::rngs::SmallRng::seed_from_u64(15);
        let (mut ok, mut refused) = (0, 0);
        let mut reused = Vec::new();
        for _ in 0..100_000 {
            // Short ones and ones long enough for the SIMD loops.
            let len = if rng.gen_bool(0.5) { rng.gen_range(0..12) } else { rng.gen_range(12..700) };
            let raw: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let mut encoded = String::new();
            b64_encode_into(&raw, &mut encoded);
            assert_eq!(encoded, B64.encode(&raw));
            let mut text = encoded.into_bytes();
            let at = rng.gen_range(0..text.len().max(1));
            match rng.gen_range(0..6) {
                1 if !text.is_empty() => text[at] = CHARS[rng.gen_range(0..CHARS.len())],
                2 if !text.is_empty() => text[at] = rng.gen(),
                3 => text.truncate(at),
                4 => text.insert(at.min(text.len()), CHARS[rng.gen_range(0..CHARS.len())]),
                5 => {
                    // The last character before the padding, its low bits changed.
                    if let Some(i) = text.iter().rposition(|c| *c != b'=') {
                        if let Some(v) = CHARS[..64].iter().position(|c| *c == text[i]) {
                            text[i] = CHARS[v ^ rng.gen_range(1..4)];
                        }
                    }
                }
                _ => {}
            }
            let want = B64.decode(&text).ok();
            match &want {
                Some(_) => ok += 1,
                None => refused += 1,
            }
            // Into a buffer reused from one text to the next, as the replies' buffers are.
            let got = b64_into(&text, &mut reused).map(|()| reused.clone());
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&text));
        }
        assert!(ok > 30_000 && refused > 30_000, "both kinds are tried: {ok} {refused}");
    }

    const FIPS_RIP: &str = "a8d26d6b19525a023b576468d70dd050cdace101bf8d438a58f071913d559a95";

    #[test]
    fn reply_subject_matches_the_worked_example() {
        // choria-protocol.md §10.1
        assert_eq!(
            reply_subject("mcollective", "choria=rip.mcollective", "3ad5c4a4f5a44e4c9b0c3b1b0f4a2f11"),
            "mcollective.reply.37bdf08389145a56c13096c178802d3b.3ad5c4a4f5a44e4c9b0c3b1b0f4a2f11"
        );
        assert_eq!(
            reply_subject("provisioning", "choria=runbook.mcollective", "x"),
            "provisioning.reply.602914d7f7f9694a79c0c0609e0093ed.x"
        );
        // sha256("choria=rip.mcollective"), as `printf %s choria=rip.mcollective | sha256sum`.
        assert_eq!(
            reply_subject_with(true, "mcollective", "choria=rip.mcollective", "x"),
            format!("mcollective.reply.{}.x", FIPS_RIP)
        );
    }

    #[test]
    fn request_ids_have_the_right_shape() {
        let id = Version::V1.new_request_id();
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let k = Version::V2.new_request_id();
        assert_eq!(k.len(), 27);
        assert!(k.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(k, Version::V2.new_request_id());
    }

    #[test]
    fn worked_example_hash() {
        // choria-protocol.md §10.2: the hash of the example reply.
        let reply = r#"{"protocol":"choria:reply:1","message":"{\"action\":\"restart\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{\"message\":\"Restarting Choria Server after 7s\"}}","envelope":{"requestid":"9f2c7e0d1b3a4c5d8e6f7a8b9c0d1e2f","senderid":"n1.choria.local","agent":"choria_provision","time":1732200001}}"#;
        assert_eq!(sha256_b64(reply.as_bytes()), "UeXpp0Qn2YuWWlET/nDCpF5Enzpd5zVbLCKxikk574s=");
        assert!(hash_matches(reply.as_bytes(), "UeXpp0Qn2YuWWlET/nDCpF5Enzpd5zVbLCKxikk574s="));
        for wrong in ["UeXpp0Qn2YuWWlET/nDCpF5Enzpd5zVbLCKxikk574s", "UeXpp0Qn2YuWWlET/nDCpF5Enzpd5zVbLCKxikk574t=", ""]
        {
            assert!(!hash_matches(reply.as_bytes(), wrong), "{wrong}");
        }
    }
}
