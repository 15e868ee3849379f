//! The fast path of [`super::decode_reply`]: every layer of a reply read in one pass each,
//! for the plain replies servers send.
//!
//! The client opens one reply per node, and serde's derived map visitors plus its
//! byte-at-a-time unescaping of v1's JSON inside JSON were about half of its CPU per node
//! (issue 15). This reader gives up (`None`) on anything it does not take on itself: a layer
//! that is not an object, a key it reads given twice or with an escape, a field of the wrong
//! type, deep nesting, bytes after a layer, and every failure (bad protocol, bad base64, a
//! hash or signature that does not match). The caller then goes the serde way, which is the
//! reference and words the error: when this returns `Some`, it is what the serde path
//! returns (a unit test compares both on mutated replies of each version). Nothing is
//! skipped to go faster: the hash is checked over the unescaped message (v1) or the decoded
//! reply (v2), and v2 reply signatures are verified, as on the serde path.

use std::borrow::Cow;

use super::{b64_into, hash_matches, v1, v2, ReplyView, Version};
use crate::json::{once, utf8, Scan};

/// The buffers a reply's layers are opened into, kept from one reply to the next: opening
/// 10,000 replies grows three buffers once instead of allocating (and touching fresh memory
/// for) three per reply (issue 15). They keep the size of the largest reply opened.
#[derive(Debug, Default)]
pub struct Scratch {
    /// The transport's `data`, decoded: the secure reply.
    secure: Vec<u8>,
    /// The reply inside it: v1's message unescaped, v2's `reply` decoded.
    reply: Vec<u8>,
    /// The agent's body: v1's unescaped, v2's decoded.
    body: Vec<u8>,
}

/// The reply in `payload`, owned, or `None` to let the serde path decide.
#[cfg(test)]
pub(super) fn decode_reply(payload: &[u8]) -> Option<super::DecodedReply> {
    open(payload, &mut Scratch::default()).map(|r| r.to_owned())
}

/// The reply in `payload`, opened into `scratch`, or `None` to let the serde path decide.
pub(super) fn open<'s>(payload: &[u8], scratch: &'s mut Scratch) -> Option<ReplyView<'s>> {
    let (mut headers_read, mut data) = (false, None);
    let [protocol] = Scan::new(payload)?.whole_strings(["protocol"], |s, key| match key {
        "headers" if !std::mem::replace(&mut headers_read, true) => headers(s).map(drop),
        "headers" => None,
        "data" => raw_once(s, &mut data),
        _ => s.skip(0),
    })?;
    let Scratch { secure, reply, body } = scratch;
    b64_into(data?.as_bytes(), secure)?;
    match protocol?.as_ref() {
        v1::TRANSPORT => reply_v1(secure, reply, body),
        v2::TRANSPORT => reply_v2(secure, reply, body),
        _ => None,
    }
}

/// A base64 field read raw into `slot` ([`Scan::raw_string`]: base64 then refuses the escapes
/// and control characters it leaves in); `None` (give up) when the field is given twice, as
/// serde refuses a struct's field given twice.
fn raw_once<'a>(s: &mut Scan<'a>, slot: &mut Option<&'a str>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(s.raw_string()?);
    Some(())
}

/// A string field unescaped into `out` ([`Scan::unescaped_into`]), noted in `read`; `None`
/// (give up) when the field is given twice, as [`raw_once`] does.
fn unescaped_once(s: &mut Scan<'_>, read: &mut bool, out: &mut Vec<u8>) -> Option<()> {
    if std::mem::replace(read, true) {
        return None;
    }
    s.unescaped_into(out).map(drop)
}

/// The sender a transport's headers name (`mc_sender`, else `sender`), as
/// [`super::transport_sender`] reads it, or `None` to let serde decide. Discovery reads
/// nothing else of each reply: serde's walk over the whole transport, base64 `data`
/// included, was most of the client's CPU per discovered node (issue 15).
pub(super) fn transport_sender(payload: &[u8]) -> Option<Option<String>> {
    let mut read = None;
    Scan::new(payload)?.whole_strings([], |s, key| match key {
        "headers" if read.is_none() => {
            read = Some(headers(s)?);
            Some(())
        }
        "headers" => None,
        _ => s.skip(0),
    })?;
    let [mc_sender, sender] = read.unwrap_or_default();
    Some(mc_sender.or(sender).filter(|s| !s.is_empty()).map(Cow::into_owned))
}

/// Checks the transport headers as the serde path reads them: an object whose known fields
/// are each a string or null, once. Returns `mc_sender` and `sender`.
fn headers<'a>(s: &mut Scan<'a>) -> Option<[Option<Cow<'a, str>>; 2]> {
    if s.peek()? != b'{' {
        return None;
    }
    let mut seen = 0;
    let mut senders = [None, None];
    s.object(1, |s, key| {
        let n = match key {
            "reply-to" => 0,
            "mc_sender" => 1,
            "reply" => 2,
            "sender" => 3,
            _ => return s.skip(1),
        };
        once(&mut seen, n)?;
        let value = match s.peek()? {
            b'n' => s.literal(b"null").map(|()| None)?,
            _ => Some(s.unescaped()?),
        };
        match n {
            1 => senders[0] = value,
            3 => senders[1] = value,
            _ => {}
        }
        Some(())
    })?;
    Some(senders)
}

/// v1: the secure reply's `message` is the reply JSON as a string, hashed unescaped; the
/// reply's `message` is the agent body as a string. Each is unescaped into its buffer.
fn reply_v1<'s>(secure: &[u8], reply: &'s mut Vec<u8>, body: &'s mut Vec<u8>) -> Option<ReplyView<'s>> {
    // `signature` and `pubcert` are strings on the serde path, so they are read (and checked).
    let mut message = false;
    let [protocol, hash, _, _] =
        Scan::new(secure)?.whole_strings(["protocol", "hash", "signature", "pubcert"], |s, key| match key {
            "message" => unescaped_once(s, &mut message, reply),
            _ => s.skip(0),
        })?;
    if protocol? != v1::SECURE_REPLY || !message {
        return None;
    }
    let reply: &'s [u8] = reply;
    if !hash_matches(reply, hash.as_deref().unwrap_or("")) {
        return None;
    }
    let (mut envelope, mut body_read) = (None, false);
    let [protocol] = Scan::of(utf8(reply)?).whole_strings(["protocol"], |s, key| match key {
        "envelope" if envelope.is_none() => {
            envelope = Some(s.strings(1, ["requestid", "senderid", "agent"], |s, _| s.skip(1))?);
            Some(())
        }
        "message" => unescaped_once(s, &mut body_read, body),
        "envelope" => None,
        _ => s.skip(0),
    })?;
    if protocol? != v1::REPLY || !body_read {
        return None;
    }
    let [request_id, sender, agent] = envelope?;
    Some(ReplyView { version: Version::V1, sender: sender?, request_id: request_id?, agent: agent?, body })
}

/// v2: byte fields are base64; the hash covers the decoded reply, and a signed reply must
/// verify with the key its sender's JWT names. Each is decoded into its buffer.
fn reply_v2<'s>(secure: &[u8], reply: &'s mut Vec<u8>, body: &'s mut Vec<u8>) -> Option<ReplyView<'s>> {
    let mut raw_reply = None;
    let [protocol, hash, signature, sender] =
        Scan::new(secure)?.whole_strings(["protocol", "hash", "signature", "sender"], |s, key| match key {
            "reply" => raw_once(s, &mut raw_reply),
            _ => s.skip(0),
        })?;
    if protocol? != v2::SECURE_REPLY {
        return None;
    }
    b64_into(raw_reply?.as_bytes(), reply)?;
    let raw: &'s [u8] = reply;
    if !hash_matches(raw, &hash?) {
        return None;
    }
    let (signature, sender) = (signature.unwrap_or_default(), sender.unwrap_or_default());
    crate::fleet::security::verify_reply_signature(raw, &signature, &sender).ok()?;
    let mut message = None;
    let [protocol, request, sender, agent] =
        Scan::new(raw)?.whole_strings(["protocol", "request", "sender", "agent"], |s, key| match key {
            "message" => raw_once(s, &mut message),
            _ => s.skip(0),
        })?;
    if protocol? != v2::REPLY {
        return None;
    }
    b64_into(message?.as_bytes(), body)?;
    Some(ReplyView { version: Version::V2, sender: sender?, request_id: request?, agent: agent?, body })
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::super::{decode_reply_serde, sha256_b64, B64};
    use super::*;
    use base64::Engine as _;

    /// A transport around `data`'s base64, headers as Go writes them (more than we read).
    fn transport(protocol: &str, data: &str, sender_key: &str) -> String {
        format!(
            r#"{{"protocol":"{protocol}","data":"{}","headers":{{"{sender_key}":"n1.example.net","seen-by":[["a","b"]],"federation":null}}}}"#,
            B64.encode(data)
        )
    }

    /// A v1 secure reply around `reply` (hashed as given) inside a transport.
    fn wrap_v1_secure(secure: &str) -> String {
        transport(v1::TRANSPORT, secure, "mc_sender")
    }

    fn wrap_v1_reply(reply: &str) -> String {
        let message = serde_json::to_string(reply).expect("a string");
        wrap_v1_secure(&format!(
            r#"{{"protocol":"choria:secure:reply:1","message":{message},"hash":"{}"}}"#,
            sha256_b64(reply.as_bytes())
        ))
    }

    fn wrap_v2_secure(secure: &str) -> String {
        transport(v2::TRANSPORT, secure, "sender")
    }

    /// A v2 reply signed by a server key, with the server's JWT naming that key as the sender
    /// (only its `public_key` claim is read to check a reply).
    fn wrap_v2_signed(reply: &str) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use ed25519_dalek::Signer;
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let claims = format!(r#"{{"public_key":"{}"}}"#, hex::encode(key.verifying_key().as_bytes()));
        let jwt = format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(claims));
        wrap_v2_secure(&format!(
            r#"{{"protocol":"io.choria.protocol.v2.secure_reply","reply":"{}","hash":"{}","signature":"{}","sender":"{jwt}"}}"#,
            B64.encode(reply),
            sha256_b64(reply.as_bytes()),
            B64.encode(key.sign(reply.as_bytes()).to_bytes())
        ))
    }

    fn wrap_v2_reply(reply: &str) -> String {
        wrap_v2_secure(&format!(
            r#"{{"protocol":"io.choria.protocol.v2.secure_reply","reply":"{}","hash":"{}","signature":"","sender":""}}"#,
            B64.encode(reply),
            sha256_b64(reply.as_bytes())
        ))
    }

    /// Agent bodies: the shared go-choria replies, and the odd shapes.
    fn bodies() -> Vec<String> {
        let mut v: Vec<String> = [
            r#"{"statuscode":0,"statusmsg":"OK","data":{"pong":1611245602}}"#,
            r#"{"statuscode":1,"statusmsg":"quote \" backslash \\ tab \t \u003cb\u003e é","data":null}"#,
            "pong",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/choria/rpc-replies");
        for f in ["choria.json", "package_replies.json"] {
            let text = std::fs::read_to_string(format!("{dir}/{f}")).expect("the shared replies");
            let all: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            let replies = all.get("replies").unwrap_or(&all).as_array().expect("replies").clone();
            v.extend(replies.iter().take(3).map(|r| r.to_string()));
        }
        v
    }

    /// A transport's `data` is read raw and left to base64 to refuse: escaped (as some
    /// encoders write `/`) it still opens, by the serde path, to the same reply; with an
    /// escaped quote or a raw control character it fails on both paths alike.
    #[test]
    fn escaped_or_broken_transport_data_opens_as_serde_opens_it() {
        let reply = r#"{"protocol":"choria:reply:1","message":"{}","envelope":{"requestid":"r1","senderid":"n1.example.net","agent":"rpcutil","time":1}}"#;
        let plain = wrap_v1_reply(reply);
        let data = plain.split(r#""data":""#).nth(1).and_then(|r| r.split('"').next()).expect("the data");
        let opened = super::super::decode_reply(plain.as_bytes()).expect("the plain transport opens");
        // Its first byte and every `/` escaped, as JSON allows.
        let first = data.as_bytes()[0];
        let escaped_data = format!("\\u{:04x}{}", first, data[1..].replace('/', "\\/"));
        let escaped = plain.replace(data, &escaped_data);
        assert!(decode_reply(escaped.as_bytes()).is_none(), "the fast path leaves escapes to serde");
        assert_eq!(super::super::decode_reply(escaped.as_bytes()).ok(), Some(opened), "{escaped}");
        let cut = data.len() / 2;
        for broken in [format!("{}\\\"{}", &data[..cut], &data[cut..]), format!("{}\n{}", &data[..cut], &data[cut..])] {
            let t = plain.replace(data, &broken);
            assert!(decode_reply(t.as_bytes()).is_none(), "{t}");
            assert!(decode_reply_serde(t.as_bytes()).is_err(), "{t}");
        }
    }

    /// Inner layers as text, each to be mutated and then wrapped (outer hashes recomputed), so
    /// the mutations reach every layer instead of only breaking the outer hash.
    enum Layer {
        V1Reply(String),
        /// A v2 reply, signed after mutation.
        V2Signed(String),
        V1Secure(String),
        V2Reply(String),
        V2Secure(String),
        Transport(String),
    }

    fn seeds() -> Vec<Layer> {
        let mut v = Vec::new();
        for (n, body) in bodies().into_iter().enumerate() {
            let v1_reply = format!(
                r#"{{"protocol":"choria:reply:1","message":{},"envelope":{{"requestid":"9f2c7e0d1b3a4c5d8e6f7a8b9c0d1e2f","senderid":"n{n}.example.net","agent":"rpcutil","time":1732200001}}}}"#,
                serde_json::to_string(&body).expect("a string")
            );
            let v2_reply = format!(
                r#"{{"protocol":"io.choria.protocol.v2.reply","message":"{}","request":"2XbGlS0Ukx3ltbAk1sYbqQ2AqEJ","sender":"n{n}.example.net","agent":"rpcutil","time":1732200001000000000}}"#,
                B64.encode(&body)
            );
            v.push(Layer::Transport(wrap_v1_reply(&v1_reply)));
            v.push(Layer::Transport(wrap_v2_reply(&v2_reply)));
            v.push(Layer::V1Reply(v1_reply));
            if n == 0 {
                v.push(Layer::Transport(wrap_v2_signed(&v2_reply)));
                v.push(Layer::V2Signed(v2_reply.clone()));
            }
            v.push(Layer::V2Reply(v2_reply));
        }
        // Our own encoder's replies, and Go's escapes of the inner JSON.
        for version in [Version::V1, Version::V2] {
            let req = super::super::tests::decoded_request(version, "rpcutil");
            let reply = super::super::encode_reply(&req, "n1.example.net", b"{\"a\":\"<b>\"}", chrono::Utc::now());
            v.push(Layer::Transport(String::from_utf8(reply.to_vec()).expect("UTF-8")));
        }
        let go = r#"{"protocol":"choria:reply:1","message":"{\"statusmsg\":\"\u003cok\u003e\",\"statuscode\":0,\"data\":{}}","envelope":{"requestid":"r","senderid":"n","agent":"a"}}"#;
        v.push(Layer::V1Secure(format!(
            r#"{{"protocol":"choria:secure:reply:1","message":{},"hash":"{}","signature":"x","pubcert":"y"}}"#,
            serde_json::to_string(go).expect("a string"),
            sha256_b64(go.as_bytes())
        )));
        v.push(Layer::V2Secure(format!(
            r#"{{"protocol":"io.choria.protocol.v2.secure_reply","reply":"{}","hash":"{}"}}"#,
            B64.encode(go),
            sha256_b64(go.as_bytes())
        )));
        v
    }

    fn payload(layer: &Layer, mutate: impl FnOnce(&str) -> String) -> Vec<u8> {
        match layer {
            Layer::V1Reply(r) => wrap_v1_reply(&mutate(r)),
            Layer::V1Secure(s) => wrap_v1_secure(&mutate(s)),
            Layer::V2Signed(r) => wrap_v2_signed(&mutate(r)),
            Layer::V2Reply(r) => wrap_v2_reply(&mutate(r)),
            Layer::V2Secure(s) => wrap_v2_secure(&mutate(s)),
            Layer::Transport(t) => mutate(t),
        }
        .into_bytes()
    }

    /// Whenever the fast path answers, it answers as serde does; and it answers for the
    /// replies servers really send (else it would be no fast path).
    #[test]
    fn agrees_with_serde_on_mutated_replies() {
        let seeds = seeds();
        for layer in &seeds {
            let b = payload(layer, str::to_string);
            let fast = decode_reply(&b);
            let text = String::from_utf8_lossy(&b);
            match decode_reply_serde(&b) {
                // The V2Secure seed's reply is v1's text: refused either way.
                Err(_) => assert!(fast.is_none() && matches!(layer, Layer::V2Secure(_)), "{text}"),
                Ok(r) => assert_eq!(fast.expect("a plain reply takes the fast path"), r, "{text}"),
            }
        }
        let mut rng = SmallRng::seed_from_u64(15);
        let (mut fast, mut total) = (0, 0);
        // One set of buffers for all, as the opener keeps one: nothing a reply (or a failed
        // one) leaves in them shows in the next.
        let mut scratch = Scratch::default();
        for _ in 0..60_000 {
            let layer = &seeds[rng.gen_range(0..seeds.len())];
            let b = payload(layer, |text| {
                let mut b = text.as_bytes().to_vec();
                crate::json::mutate(&mut rng, &mut b);
                // Wrapping needs text; the bytes that are not UTF-8 stay visible as U+FFFD.
                String::from_utf8_lossy(&b).into_owned()
            });
            total += 1;
            let reused = open(&b, &mut scratch).map(|r| r.to_owned());
            assert_eq!(reused, decode_reply(&b), "{}", String::from_utf8_lossy(&b));
            if let Some(r) = reused {
                fast += 1;
                assert_eq!(Some(r), decode_reply_serde(&b).ok(), "{}", String::from_utf8_lossy(&b));
            }
        }
        assert!(fast > total / 20, "only {fast} of {total} mutations took the fast path");
    }

    /// Whenever the fast sender reader answers, it answers as serde does; and it answers for
    /// the transports servers really send.
    #[test]
    fn the_sender_agrees_with_serde_on_mutated_transports() {
        let mut transports: Vec<String> = seeds()
            .iter()
            .filter_map(|l| match l {
                Layer::Transport(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        let t = &transports[0].clone();
        transports.extend([
            t.replace("\"mc_sender\":\"n1.example.net\"", "\"mc_sender\":\"\",\"sender\":\"v2.example.net\""),
            t.replace("\"mc_sender\":\"n1.example.net\"", "\"mc_sender\":null,\"sender\":\"n\\u00e9\""),
            t.replace("\"mc_sender\":\"n1.example.net\"", "\"reply-to\":\"x\""),
            t.replace(",\"headers\":{", ",\"extra\":[1,{\"a\":null}],\"headers\":{"),
        ]);
        for t in &transports {
            let fast = transport_sender(t.as_bytes()).unwrap_or_else(|| panic!("a plain transport: {t}"));
            assert_eq!(fast, super::super::transport_sender_serde(t.as_bytes()), "{t}");
        }
        assert_eq!(transport_sender(transports[0].as_bytes()), Some(Some("n1.example.net".into())));
        let mut rng = SmallRng::seed_from_u64(16);
        let (mut fast, mut total) = (0, 0);
        for _ in 0..40_000 {
            let mut b = transports[rng.gen_range(0..transports.len())].clone().into_bytes();
            crate::json::mutate(&mut rng, &mut b);
            total += 1;
            if let Some(sender) = transport_sender(&b) {
                fast += 1;
                assert_eq!(sender, super::super::transport_sender_serde(&b), "{}", String::from_utf8_lossy(&b));
            }
        }
        assert!(fast > total / 5, "only {fast} of {total} mutations took the fast path");
    }

    /// A signed v2 reply is checked on the fast path: one whose signature does not verify is
    /// left to the serde path, which refuses it.
    #[test]
    fn v2_signatures_are_checked() {
        let reply =
            r#"{"protocol":"io.choria.protocol.v2.reply","message":"cG9uZw==","request":"r","sender":"n","agent":"a"}"#;
        let good = wrap_v2_signed(reply);
        assert!(decode_reply(good.as_bytes()).is_some());
        let secure = String::from_utf8(
            B64.decode(serde_json::from_str::<serde_json::Value>(&good).expect("JSON")["data"].as_str().expect("data"))
                .expect("base64"),
        )
        .expect("UTF-8");
        let signature = serde_json::from_str::<serde_json::Value>(&secure).expect("JSON")["signature"]
            .as_str()
            .expect("a signature")
            .to_string();
        let mut wrong = B64.decode(&signature).expect("base64");
        wrong[0] ^= 1;
        let bad = wrap_v2_secure(&secure.replace(&signature, &B64.encode(wrong)));
        assert!(decode_reply(bad.as_bytes()).is_none());
        assert!(decode_reply_serde(bad.as_bytes()).is_err());
    }

    #[test]
    fn gives_up_where_serde_decides() {
        let reply =
            r#"{"protocol":"choria:reply:1","message":"pong","envelope":{"requestid":"r","senderid":"n","agent":"a"}}"#;
        let good = wrap_v1_reply(reply);
        assert!(decode_reply(good.as_bytes()).is_some());
        for bad in [
            good.replace("\"headers\":{", "\"headers\":null,\"x\":{"),
            good.replace("mc_sender\":\"n1.example.net\"", "mc_sender\":5"),
            good.replace("mc_sender\":\"n1.example.net\"", "mc_sender\":[]"),
            good.replacen("\"protocol\"", "\"protocol\":\"x\",\"protocol\"", 1),
            format!("{good} x"),
            wrap_v1_reply(&reply.replace("\"agent\":\"a\"", "\"agent\":\"a\",\"agent\":\"b\"")),
            wrap_v1_reply(&reply.replace("\"requestid\":\"r\",", "")),
            wrap_v1_reply(&reply.replace("choria:reply:1", "choria:reply:2")),
        ] {
            assert!(decode_reply(bad.as_bytes()).is_none(), "{bad}");
        }
        // A hash that does not match: the serde path words the error.
        let secure = format!(
            r#"{{"protocol":"choria:secure:reply:1","message":{},"hash":"{}"}}"#,
            serde_json::to_string(reply).expect("a string"),
            sha256_b64(b"other")
        );
        let b = wrap_v1_secure(&secure);
        assert!(decode_reply(b.as_bytes()).is_none());
        assert!(decode_reply_serde(b.as_bytes()).is_err());
    }
}
