//! A caller's Choria token as a go-choria server reads it (`choria-io/tokens` at b91f2ad, the
//! code behind go-choria's `tokens v0.0.4`): which key must have signed it, its times, and the
//! claims a request depends on.
//!
//! A token is signed either by the issuer itself or by a *chain issuer* (an AAA login service
//! that issues clients in the issuer's organisation). A chained token's `iss` is
//! `C-<chain issuer's token id>.<chain issuer's hex public key>` and its `tcs` (trust chain
//! signature) is `<org signature>.<chain signature>`, both hex:
//!
//! - the org signature is the issuer's over `<chain issuer's id>.<its public key>`, made when
//!   the issuer gave the chain issuer its own token (`AddOrgIssuerData`): this is the chain
//!   issuer's permission to issue, and the only one go-choria checks;
//! - the chain signature is the chain issuer's over `<token id>.<org signature>`
//!   (`AddChainIssuerData`);
//! - the JWT itself is then checked with the chain issuer's key, not the issuer's
//!   (`tokens.go`, `ParseToken`; `standard.go`, `IsSignedByIssuer`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::Value;

use crate::fleet::security::Rejection;

/// `tokens.ChainIssuerPrefix`: the `iss` of a token a chain issuer made.
const CHAIN_PREFIX: &str = "C-";

/// The Unix time of a ksuid's zero timestamp (`segmentio/ksuid`, `epochStamp`).
const KSUID_EPOCH: i64 = 1_400_000_000;

/// What kind of token it is, by its `purpose` claim (`tokens.go`, `TokenPurpose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `choria_client_id`: a user or service.
    Client,
    /// `choria_server`: a fleet node.
    Server,
    /// Anything else (provisioning tokens, none): no go-choria server verifies a signature with it.
    Other,
}

/// A token's claims.
pub(crate) struct Token {
    claims: Value,
    /// Its purpose.
    pub(crate) purpose: Purpose,
}

impl Token {
    /// The claims, unverified, as go-choria reads them before it knows which key to check
    /// (`ParseTokenUnverified`, `TokenPurpose`).
    pub(crate) fn unverified(jwt: &str) -> Result<Token, Rejection> {
        let payload = jwt.trim().split('.').nth(1).ok_or("caller is not a JWT")?;
        let claims: Value = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|c| serde_json::from_slice(&c).ok())
            .filter(Value::is_object)
            .ok_or("caller JWT claims unreadable")?;
        let purpose = match claims.get("purpose").and_then(Value::as_str) {
            Some("choria_client_id") => Purpose::Client,
            Some("choria_server") => Purpose::Server,
            _ => Purpose::Other,
        };
        Ok(Token { claims, purpose })
    }

    /// A string claim; empty when absent, as Go's zero value.
    pub(crate) fn str(&self, name: &str) -> &str {
        self.claims.get(name).and_then(Value::as_str).unwrap_or("")
    }

    /// A client permission (`permissions.<name>`), false when absent.
    pub(crate) fn permission(&self, name: &str) -> bool {
        self.claims.get("permissions").and_then(|p| p.get(name)).and_then(Value::as_bool).unwrap_or(false)
    }

    /// The key the token holder signs with (`public_key`).
    pub(crate) fn public_key(&self) -> Result<VerifyingKey, Rejection> {
        key_from_hex(self.str("public_key")).ok_or("bad public key in the JWT")
    }

    /// A time claim in Unix seconds, truncated as golang-jwt's `NumericDate` is; `Ok(None)`
    /// when absent, an error when not a number.
    fn time(&self, name: &str) -> Result<Option<i64>, Rejection> {
        match self.claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_f64().map(|t| Some(t.floor() as i64)).ok_or("caller JWT claims unreadable"),
        }
    }
}

/// Checks `jwt` as a server does with its issuer's key `issuer` at `now` (Unix seconds):
/// `ParseToken` (the signer, through a chain when `iss` says so; the JWT signature; `exp` and
/// `nbf`) and then what `ParseClientIDToken` and `ParseServerToken` add (the chain issuer's
/// expiry). Only client and server tokens are read this way, as go-choria parses only those
/// with the chain in mind.
pub(crate) fn verify(jwt: &str, issuer: &VerifyingKey, now: i64) -> Result<Token, Rejection> {
    let jwt = jwt.trim();
    let (signed, sig) = jwt.rsplit_once('.').ok_or("caller is not a JWT")?;
    let header: Value = signed
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or("caller is not a JWT")?;
    // RS256 and friends need an RSA issuer key, which a choria-provider server never has.
    if header.get("alg").and_then(Value::as_str) != Some("EdDSA") {
        return Err("caller JWT is not EdDSA");
    }
    let token = Token::unverified(jwt)?;
    let chained = token.str("iss").starts_with(CHAIN_PREFIX) && token.purpose != Purpose::Other;
    let signer = if chained { chain_signer(&token, issuer)? } else { *issuer };
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .ok()
        .and_then(|s| Signature::from_slice(&s).ok())
        .ok_or("caller JWT signature malformed")?;
    signer.verify(signed.as_bytes(), &sig).map_err(|_| "caller JWT not signed by a trusted issuer")?;
    times(&token, now)?;
    issuer_expiry(&token, now)?;
    Ok(token)
}

/// golang-jwt v5's default validation, without leeway: `nbf` after now is not valid yet,
/// `exp` at or before now is expired (`iat` is not checked by default).
fn times(token: &Token, now: i64) -> Result<(), Rejection> {
    if token.time("exp")?.is_some_and(|exp| now >= exp) {
        return Err("caller JWT expired");
    }
    if token.time("nbf")?.is_some_and(|nbf| now < nbf) {
        return Err("caller JWT not yet valid");
    }
    Ok(())
}

/// The chain issuer's expiry (`issexp`, `StandardClaims.verifyIssuerExpiry`): a chained client
/// token is expired once its chain issuer is. go-choria asks this of any server token with a
/// `tcs`, so one issued directly by the issuer but carrying a `tcs` counts as expired; that is
/// modelled too.
fn issuer_expiry(token: &Token, now: i64) -> Result<(), Rejection> {
    let chained = token.str("iss").starts_with(CHAIN_PREFIX);
    let has_tcs = !token.str("tcs").is_empty();
    let applies = match token.purpose {
        Purpose::Client => has_tcs && chained,
        Purpose::Server => has_tcs,
        Purpose::Other => false,
    };
    if !applies {
        return Ok(());
    }
    let expires = match (token.time("issexp")?, token.time("exp")?) {
        (Some(i), Some(e)) => i.min(e),
        (Some(i), None) => i,
        _ => return Err("caller JWT chain issuer expired"),
    };
    if !chained || now >= expires {
        return Err("caller JWT chain issuer expired");
    }
    Ok(())
}

/// The chain issuer's key, once the issuer's signature vouches for it and its signature
/// vouches for the token (`IsSignedByIssuer`, the `C-` branch, with
/// `verifyIssuerRequiredClaims` first).
fn chain_signer(token: &Token, issuer: &VerifyingKey) -> Result<VerifyingKey, Rejection> {
    const INCOMPLETE: Rejection = "caller JWT chain claims incomplete";
    const MALFORMED: Rejection = "caller JWT chain issuer malformed";
    let (id, tcs) = (token.str("jti"), token.str("tcs"));
    if token.str("public_key").is_empty() || tcs.is_empty() || id.is_empty() {
        return Err(INCOMPLETE);
    }
    let (Some(iat), Some(exp), Some(issexp)) = (token.time("iat")?, token.time("exp")?, token.time("issexp")?) else {
        return Err(INCOMPLETE);
    };
    if exp == 0 || issexp == 0 {
        return Err(INCOMPLETE);
    }
    // The token id is a ksuid made at the issue time: a chain issuer cannot re-date a token
    // without re-signing its id.
    if ksuid_time(id).ok_or("caller JWT id is not a ksuid")? != iat {
        return Err("caller JWT id is not based on its issue time");
    }
    let (chain_id, chain_pk) = two_parts(&token.str("iss")[CHAIN_PREFIX.len()..]).ok_or(MALFORMED)?;
    let chain_pk = hex::decode(chain_pk).map_err(|_| MALFORMED)?;
    let (org_sig_hex, chain_sig) = two_parts(tcs).ok_or(MALFORMED)?;
    let chain_sig = hex::decode(chain_sig).map_err(|_| MALFORMED)?;
    let org_sig = hex::decode(org_sig_hex).map_err(|_| MALFORMED)?;
    let org_data = format!("{chain_id}.{}", hex::encode(&chain_pk));
    if !ed_verify(issuer, org_data.as_bytes(), &org_sig) {
        return Err("caller JWT chain issuer not signed by the issuer");
    }
    let chain_key = <[u8; 32]>::try_from(chain_pk.as_slice())
        .ok()
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or(MALFORMED)?;
    if !ed_verify(&chain_key, format!("{id}.{org_sig_hex}").as_bytes(), &chain_sig) {
        return Err("caller JWT chain signature invalid");
    }
    Ok(chain_key)
}

/// `a.b` split at its one dot, both sides non-empty (go-choria's `strings.Split` with a length
/// check of 2).
fn two_parts(s: &str) -> Option<(&str, &str)> {
    let (a, b) = s.split_once('.')?;
    (!a.is_empty() && !b.is_empty() && !b.contains('.')).then_some((a, b))
}

/// An ed25519 signature check that a malformed signature fails rather than errors.
fn ed_verify(key: &VerifyingKey, data: &[u8], sig: &[u8]) -> bool {
    Signature::from_slice(sig).is_ok_and(|s| key.verify(data, &s).is_ok())
}

/// A hex ed25519 public key.
pub(crate) fn key_from_hex(hex_key: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_key).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// The Unix time in a ksuid: 27 base62 characters holding 20 bytes, the first 4 a big-endian
/// count of seconds since [`KSUID_EPOCH`] (`segmentio/ksuid`, `Parse` and `Time`).
fn ksuid_time(id: &str) -> Option<i64> {
    if id.len() != 27 {
        return None;
    }
    let mut bytes = [0u8; 20];
    for c in id.bytes() {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'a'..=b'z' => c - b'a' + 36,
            _ => return None,
        };
        // bytes = bytes * 62 + digit, most significant byte first.
        let mut carry = u32::from(digit);
        for b in bytes.iter_mut().rev() {
            let v = u32::from(*b) * 62 + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    let stamp = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    Some(i64::from(stamp) + KSUID_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ksuids_read_as_segmentio_reads_them() {
        // The example in segmentio/ksuid's README: timestamp 107608047, 2017-10-10T04:00:47Z.
        assert_eq!(ksuid_time("0ujtsYcgvSTl8PAuAdqWYSMnLOv"), Some(1_507_608_047));
        assert_eq!(ksuid_time("000000000000000000000000000"), Some(KSUID_EPOCH));
        // The largest ksuid, and one past it.
        assert_eq!(ksuid_time("aWgEPTl1tmebfsQzFP4bxwgy80V"), Some(i64::from(u32::MAX) + KSUID_EPOCH));
        assert_eq!(ksuid_time("aWgEPTl1tmebfsQzFP4bxwgy80W"), None);
        assert_eq!(ksuid_time("0ujtsYcgvSTl8PAuAdqWYSMnLO"), None, "26 characters");
        assert_eq!(ksuid_time("0ujtsYcgvSTl8PAuAdqWYSMnLO-"), None);
    }

    #[test]
    fn chain_parts_split_like_go() {
        assert_eq!(two_parts("a.b"), Some(("a", "b")));
        assert_eq!(two_parts("a.b.c"), None);
        assert_eq!(two_parts(".b"), None);
        assert_eq!(two_parts("a."), None);
        assert_eq!(two_parts("ab"), None);
    }
}
