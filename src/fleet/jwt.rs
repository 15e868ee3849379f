//! Choria JWTs (choria-io/tokens) for protocol v2: reading a client token's claims. Servers'
//! checks of a caller's token are the simulator's (`sim::verify`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
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
    /// `issexp`, Unix seconds: when the chain issuer that made this token expires, and the
    /// token with it (`choria-io/tokens` `StandardClaims.ExpireTime`); `None` when the issuer
    /// signed the token directly.
    pub issuer_expires: Option<i64>,
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
    // golang-jwt's NumericDate may be fractional; it truncates to seconds.
    let time = |k: &str| v.get(k).and_then(Value::as_f64).map(|t| t.floor() as i64);
    Ok(ClientClaims {
        callerid: s("callerid"),
        public_key: s("public_key"),
        purpose: s("purpose"),
        fleet_management: v.pointer("/permissions/fleet_management").and_then(Value::as_bool).unwrap_or(false),
        signed_fleet_management: v
            .pointer("/permissions/signed_fleet_management")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        expires: time("exp"),
        not_before: time("nbf"),
        issuer_expires: time("issexp"),
        org: s("ou"),
    })
}

/// A hex ed25519 public key.
pub fn verifying_key(hex_key: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_key).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}
