//! How a simulated secure server checks a caller, held to go-choria's own code rather than
//! to what fleetbook itself sends:
//!
//! - protocol v1 (`file` provider, `providers/security/filesec/file_security.go` and
//!   `protocol/v1/security_request.go`): the certificate name comes from the caller id by
//!   `callerIDRe`, which is *not* anchored at the end; the certificate must chain to the CA
//!   (intermediates may travel in `pubcert`) with the client-auth usage; a certificate whose
//!   CN or DNS name matches `plugin.choria.security.privileged_users` (default
//!   `\.privileged.mcollective$`, `\.privileged.choria$`) may use any caller id and skips the
//!   allow list; any other must name the caller and match
//!   `plugin.choria.security.certname_whitelist` (default `\.mcollective$`, `\.choria$`);
//! - protocol v2 (`choria` provider): as [`security::verify_v2`], and the token's `nbf` and
//!   `exp` as golang-jwt v5 checks them (no leeway), and no `signed_fleet_management` token
//!   without a delegated signature.
//!
//! The reasons are the texts [`super::SimStats::rejected`] counts.

use std::collections::BTreeMap;

use base64::Engine as _;
use regex::Regex;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use x509_parser::pem::Pem;
use x509_parser::prelude::*;

use crate::fleet::protocol::B64;
use crate::fleet::security::{self, Rejection};

/// go-choria's `callerIDRe` (`providers/security/filesec/file_security.go`): anchored at the
/// start only, so `choria=ops.mcollective/anything` names `ops.mcollective`. Go's `\w` is
/// ASCII, hence `(?-u:\w)`.
const CALLER_ID: &str = r"^[a-z]+=((?-u:[\w.\-]+))";

/// Default `plugin.choria.security.privileged_users` (go-choria `config/choria.go`); the
/// second dot is unescaped upstream, and so here.
const PRIVILEGED: [&str; 2] = [r"\.privileged.mcollective$", r"\.privileged.choria$"];

/// Default `plugin.choria.security.certname_whitelist`.
const ALLOWED: [&str; 2] = [r"\.mcollective$", r"\.choria$"];

/// How deep a chain through `pubcert` intermediates may go.
const MAX_DEPTH: usize = 8;

/// The certificate name in a caller id, as go-choria's `CallerIdentity` reads it.
pub fn caller_identity(caller: &str) -> Option<String> {
    Regex::new(CALLER_ID).ok()?.captures(caller)?.get(1).map(|m| m.as_str().to_string())
}

/// go-choria's `MatchAnyRegex` (`providers/security/filesec/util.go`): unanchored unless the
/// pattern anchors itself.
fn match_any(name: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| Regex::new(p).is_ok_and(|r| r.is_match(name)))
}

/// A protocol v1 request as a go-choria server with the `file` provider and default settings
/// checks it. `Ok(true)` for a privileged caller.
pub fn verify_v1(ca_pem: &str, caller: &str, message: &str, signature: &str, pubcert: &str) -> Result<bool, Rejection> {
    if signature == "insecure" || pubcert == "insecure" {
        return Err("unsigned");
    }
    let certname = caller_identity(caller).ok_or("malformed callerid")?;
    let roots = pems(ca_pem.as_bytes()).map_err(|_| "bad CA")?;
    let pool = pems(pubcert.as_bytes()).map_err(|_| "bad certificate")?;
    let roots: Vec<X509Certificate<'_>> = roots.iter().filter_map(|p| p.parse_x509().ok()).collect();
    let pool: Vec<X509Certificate<'_>> = pool.iter().filter_map(|p| p.parse_x509().ok()).collect();
    let leaf = pool.first().ok_or("bad certificate")?;
    let chain = chain(leaf, &pool, &roots)?;
    let now = ASN1Time::now();
    for c in &chain {
        if now < c.validity().not_before {
            return Err("certificate not yet valid");
        }
        if now > c.validity().not_after {
            return Err("certificate expired");
        }
        if !client_auth(c) {
            return Err("certificate not for client authentication");
        }
    }
    let names: Vec<String> = security::common_name(leaf).into_iter().chain(dns_names(leaf)).collect();
    let privileged = names.iter().any(|n| match_any(n, &PRIVILEGED));
    if !privileged {
        if !names.contains(&certname) {
            return Err("callerid does not match the certificate");
        }
        if !match_any(&certname, &ALLOWED) {
            return Err("certificate name not allowed");
        }
    }
    let public = RsaPublicKey::from_public_key_der(leaf.public_key().raw).map_err(|_| "not an RSA certificate")?;
    let sig = B64.decode(signature).map_err(|_| "bad signature")?;
    public
        .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message.as_bytes()), &sig)
        .map_err(|_| "bad signature")?;
    Ok(privileged)
}

/// Every PEM block in `data`.
fn pems(data: &[u8]) -> Result<Vec<Pem>, PEMError> {
    Pem::iter_from_buffer(data).collect()
}

/// The chain from `leaf` to one of `roots` through CA certificates in `pool` (Go's
/// `x509.Verify` with `pubcert` as the intermediates), leaf first, root last.
fn chain<'a>(
    leaf: &'a X509Certificate<'a>,
    pool: &'a [X509Certificate<'a>],
    roots: &'a [X509Certificate<'a>],
) -> Result<Vec<&'a X509Certificate<'a>>, Rejection> {
    let signs = |issuer: &X509Certificate<'_>, c: &X509Certificate<'_>| {
        issuer.subject().as_raw() == c.issuer().as_raw() && c.verify_signature(Some(issuer.public_key())).is_ok()
    };
    let mut chain = vec![leaf];
    let mut current = leaf;
    while chain.len() <= MAX_DEPTH {
        if let Some(root) = roots.iter().find(|r| signs(r, current)) {
            chain.push(root);
            return Ok(chain);
        }
        let is_ca = |c: &X509Certificate<'_>| c.basic_constraints().ok().flatten().is_some_and(|b| b.value.ca);
        match pool.iter().find(|i| !chain.iter().any(|c| c.as_raw() == i.as_raw()) && is_ca(i) && signs(i, current)) {
            Some(i) => {
                chain.push(i);
                current = i;
            }
            None => break,
        }
    }
    Err("certificate not signed by the CA")
}

/// Go's rule for a requested usage: a certificate without the extension may be used for
/// anything; one with it must list client auth or any.
fn client_auth(c: &X509Certificate<'_>) -> bool {
    match c.extended_key_usage() {
        Ok(None) => true,
        Ok(Some(eku)) => eku.value.client_auth || eku.value.any,
        Err(_) => false,
    }
}

/// The DNS subject alternative names.
fn dns_names(c: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = c.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|g| if let GeneralName::DNSName(d) = g { Some(d.to_string()) } else { None })
        .collect()
}

/// A protocol v2 request as a go-choria server with the `choria` provider checks it:
/// [`security::verify_v2`], then the token's times as golang-jwt v5 validates them: `nbf`
/// after now is not valid yet, `exp` at or before now is expired.
///
/// A token with `signed_fleet_management` may only be used with a delegated signature
/// (go-choria `providers/security/choria/choria_security.go`, `verifyByteSignatureByCaller`:
/// "requires authority delegation", checked before the fleet-management permission); the
/// simulator has no delegated signers, so it refuses such a token always.
pub fn verify_v2(issuer_hex: &str, caller: &str, request: &str, signature: &str, jwt: &str) -> Result<(), Rejection> {
    // The token first, as go-choria parses it first: signature, times, then permissions.
    if B64.decode(signature).ok().as_deref() != Some(&b"insecure"[..]) {
        crate::fleet::jwt::verify(jwt, issuer_hex)?;
        token_times(jwt, chrono::Utc::now().timestamp())?;
        if claim(jwt, "/permissions/signed_fleet_management").and_then(|v| v.as_bool()) == Some(true) {
            return Err("caller JWT requires authority delegation");
        }
    }
    security::verify_v2(issuer_hex, caller, request, signature, jwt)
}

/// [`verify_v2`] in org-issuer mode (go-choria `providers/security/choria/choria_security.go`,
/// `orgPkForToken`): the token's `ou` picks the issuer from `issuers` (name to hex public
/// key); a token without `ou`, or naming no configured issuer, is refused.
pub fn verify_v2_org(
    issuers: &BTreeMap<String, String>,
    caller: &str,
    request: &str,
    signature: &str,
    jwt: &str,
) -> Result<(), Rejection> {
    if B64.decode(signature).ok().as_deref() == Some(&b"insecure"[..]) {
        return Err("unsigned");
    }
    let ou = claim(jwt, "/ou").and_then(|v| v.as_str().map(str::to_string)).ok_or("caller JWT has no ou")?;
    let issuer = issuers.get(&ou).ok_or("no issuer for the caller JWT's ou")?;
    verify_v2(issuer, caller, request, signature, jwt)
}

/// The claim at JSON `pointer` in a token, unverified.
fn claim(jwt: &str, pointer: &str) -> Option<Value> {
    claims(jwt)?.pointer(pointer).cloned()
}

/// A token's claims, unverified.
fn claims(jwt: &str) -> Option<Value> {
    let c = jwt.trim().split('.').nth(1)?;
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?).ok()
}

/// Checks a token's `nbf` and `exp` against `now` (Unix seconds).
fn token_times(jwt: &str, now: i64) -> Result<(), Rejection> {
    let claims = claims(jwt).ok_or("caller JWT claims unreadable")?;
    let time = |k: &str| claims.get(k).and_then(Value::as_f64).map(|t| t as i64);
    if time("nbf").is_some_and(|nbf| now < nbf) {
        return Err("caller JWT not yet valid");
    }
    if time("exp").is_some_and(|exp| now >= exp) {
        return Err("caller JWT expired");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_ids_are_read_as_go_choria_reads_them() {
        let id = |c: &str| caller_identity(c);
        assert_eq!(id("choria=ops.mcollective").as_deref(), Some("ops.mcollective"));
        // Not anchored at the end: the name stops where the character class does.
        assert_eq!(id("choria=ops.mcollective/x y").as_deref(), Some("ops.mcollective"));
        assert_eq!(id("up=a-b_c.choria:9").as_deref(), Some("a-b_c.choria"));
        assert_eq!(id("Choria=ops.mcollective"), None);
        assert_eq!(id("choria="), None);
        assert_eq!(id("ops.mcollective"), None);
        // Go's \w is ASCII.
        assert_eq!(id("choria=é.mcollective"), None);
    }

    #[test]
    fn privileged_and_allowed_names_use_go_choria_patterns() {
        assert!(match_any("admin.privileged.mcollective", &PRIVILEGED));
        assert!(match_any("admin.privilegedXchoria", &PRIVILEGED), "the unescaped dot");
        assert!(!match_any("admin.mcollective", &PRIVILEGED));
        assert!(match_any("x.choria", &ALLOWED) && !match_any("x.choria.example", &ALLOWED));
    }

    #[test]
    fn token_times_are_golang_jwt_v5s() {
        let tok = |claims: Value| {
            let c = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
            format!("e30.{c}.sig")
        };
        let now = 1_000;
        assert_eq!(token_times(&tok(serde_json::json!({"nbf": 1_001})), now), Err("caller JWT not yet valid"));
        assert_eq!(token_times(&tok(serde_json::json!({"nbf": 1_000, "exp": 1_001})), now), Ok(()));
        assert_eq!(token_times(&tok(serde_json::json!({"exp": 1_000})), now), Err("caller JWT expired"));
        assert_eq!(token_times(&tok(serde_json::json!({})), now), Ok(()));
    }
}
