//! Choria JWTs (choria-io/tokens) for protocol v2: reading a client token's claims and
//! checking an EdDSA signature against a trusted issuer key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::Value;

/// The claims of a client token that requests depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientClaims {
    pub callerid: String,
    /// Hex ed25519 public key whose seed signs requests.
    pub public_key: String,
    pub purpose: String,
    pub fleet_management: bool,
    /// `permissions.signed_fleet_management`: requests must be signed by a delegated signer
    /// (an AAA service), which go-choria servers require of such a token.
    pub signed_fleet_management: bool,
    /// Unix seconds; `None` when the token never expires.
    pub expires: Option<i64>,
    /// `nbf`, Unix seconds; `None` when the token is valid from the start.
    pub not_before: Option<i64>,
    /// `ou`, the organization unit (`choria-io/tokens` `ClientIDClaims.OrganizationUnit`).
    pub org: String,
}

/// Decodes a token's claims without checking its signature.
pub fn claims(token: &str) -> Result<ClientClaims, String> {
    let mut parts = token.trim().split('.');
    let (_h, c, _s) = (parts.next(), parts.next().ok_or("not a JWT")?, parts.next().ok_or("not a JWT")?);
    let raw = URL_SAFE_NO_PAD.decode(c).map_err(|_| "claims are not base64url")?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| "claims are not JSON")?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Ok(ClientClaims {
        callerid: s("callerid"),
        public_key: s("public_key"),
        purpose: s("purpose"),
        fleet_management: v.pointer("/permissions/fleet_management").and_then(Value::as_bool).unwrap_or(false),
        signed_fleet_management: v
            .pointer("/permissions/signed_fleet_management")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        expires: v.get("exp").and_then(Value::as_i64),
        not_before: v.get("nbf").and_then(Value::as_i64),
        org: s("ou"),
    })
}

/// Checks the token's EdDSA signature with the issuer's hex public key; returns its claims.
pub fn verify(token: &str, issuer_hex: &str) -> Result<ClientClaims, &'static str> {
    let token = token.trim();
    let (signed, sig) = token.rsplit_once('.').ok_or("caller is not a JWT")?;
    let header: Value = signed
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or("caller is not a JWT")?;
    if header.get("alg").and_then(Value::as_str) != Some("EdDSA") {
        return Err("caller JWT is not EdDSA");
    }
    let key = verifying_key(issuer_hex).ok_or("bad issuer key")?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .ok()
        .and_then(|s| Signature::from_slice(&s).ok())
        .ok_or("caller JWT signature malformed")?;
    key.verify(signed.as_bytes(), &sig).map_err(|_| "caller JWT not signed by a trusted issuer")?;
    let c = claims(token).map_err(|_| "caller JWT claims unreadable")?;
    if c.expires.is_some_and(|e| e < chrono::Utc::now().timestamp()) {
        return Err("caller JWT expired");
    }
    Ok(c)
}

/// A hex ed25519 public key.
pub fn verifying_key(hex_key: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_key).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}
