//! Choria tokens shaped as `choria-io/tokens` makes them: client and server claims with ksuid
//! ids, and chain issuers (an AAA login service) that the org issuer vouches for and that
//! issue tokens of their own (`standard.go`: `AddOrgIssuerData`, `AddChainIssuerData`).

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde_json::{json, Value};

use super::pki::sign_jwt;

/// A ksuid made at `at` (Unix seconds) with a random payload, as `ksuid.NewRandomWithTime`:
/// 4 bytes of seconds since 2014-05-13 and 16 random bytes, in 27 base62 characters.
pub(crate) fn ksuid(at: i64) -> String {
    use rand::RngCore;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bytes = [0u8; 20];
    bytes[..4].copy_from_slice(&u32::try_from(at - 1_400_000_000).unwrap().to_be_bytes());
    rand::thread_rng().fill_bytes(&mut bytes[4..]);
    let mut digits = Vec::with_capacity(27);
    for _ in 0..27 {
        // bytes /= 62, the remainder is the next digit, least significant first.
        let mut rem = 0u32;
        for b in bytes.iter_mut() {
            let v = (rem << 8) | u32::from(*b);
            *b = (v / 62) as u8;
            rem = v % 62;
        }
        digits.push(ALPHABET[rem as usize]);
    }
    digits.reverse();
    String::from_utf8(digits).unwrap()
}

/// `extra` merged over `claims`, key by key.
fn merged(mut claims: Value, extra: Value) -> Value {
    if let (Some(c), Value::Object(e)) = (claims.as_object_mut(), extra) {
        c.extend(e);
    }
    claims
}

/// The standard claims `newStandardClaims` sets (issued now, valid an hour, `iss` the org
/// issuer's `I-<hex key>`), the token's `public_key`, and `extra`.
fn standard(issuer: &VerifyingKey, holder: &VerifyingKey, purpose: &str, extra: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "purpose": purpose,
        "public_key": hex::encode(holder.as_bytes()),
        "iss": format!("I-{}", hex::encode(issuer.as_bytes())),
        "jti": ksuid(now),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    });
    merged(claims, extra)
}

/// A client's claims (`NewClientIDClaims`): `callerid`, `ou` `choria`, fleet management.
pub(crate) fn client_claims(issuer: &VerifyingKey, holder: &VerifyingKey, callerid: &str, extra: Value) -> Value {
    let client = json!({"callerid": callerid, "ou": "choria", "permissions": {"fleet_management": true}});
    standard(issuer, holder, "choria_client_id", merged(client, extra))
}

/// A server's claims (`NewServerClaims`): its `identity` and collectives.
pub(crate) fn server_claims(issuer: &VerifyingKey, holder: &VerifyingKey, identity: &str, extra: Value) -> Value {
    let server = json!({"identity": identity, "collectives": ["mcollective"], "ou": "choria"});
    standard(issuer, holder, "choria_server", merged(server, extra))
}

/// A chain issuer: its key and the token the org issuer gave it.
pub(crate) struct ChainIssuer {
    pub(crate) key: SigningKey,
    pub(crate) claims: Value,
}

impl ChainIssuer {
    /// A client token for a new key, vouched for by `org` (`AddOrgIssuerData`): `tcs` is
    /// `org`'s signature of `<jti>.<public key>`; `extra` goes into its claims.
    pub(crate) fn new(org: &SigningKey, extra: Value) -> ChainIssuer {
        let key = super::pki::ed_key();
        let mut claims = client_claims(&org.verifying_key(), &key.verifying_key(), "aaasvc-login", extra);
        let data = format!("{}.{}", claims["jti"].as_str().unwrap(), claims["public_key"].as_str().unwrap());
        claims["tcs"] = json!(hex::encode(org.sign(data.as_bytes()).to_bytes()));
        ChainIssuer { key, claims }
    }

    /// `claims` made into a token this chain issuer issued (`AddChainIssuerData`, then signed
    /// with its key): `iss` `C-<its jti>.<its key>`, `issexp` its expiry (and `exp` no later),
    /// `tcs` `<its tcs>.<its signature of "<jti>.<its tcs>">`. `tweak` runs last, before signing.
    pub(crate) fn issue(&self, mut claims: Value, tweak: impl FnOnce(&mut Value)) -> String {
        let me = &self.claims;
        let (my_tcs, my_exp) = (me["tcs"].as_str().unwrap(), me["exp"].as_i64().unwrap());
        claims["iss"] = json!(format!("C-{}.{}", me["jti"].as_str().unwrap(), me["public_key"].as_str().unwrap()));
        claims["issexp"] = json!(my_exp);
        if claims["exp"].as_i64().is_none_or(|e| e > my_exp) {
            claims["exp"] = json!(my_exp);
        }
        let sig = self.key.sign(format!("{}.{my_tcs}", claims["jti"].as_str().unwrap()).as_bytes());
        claims["tcs"] = json!(format!("{my_tcs}.{}", hex::encode(sig.to_bytes())));
        tweak(&mut claims);
        sign_jwt(&self.key, &claims)
    }
}
