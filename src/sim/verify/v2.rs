//! Protocol v2 (the `choria` provider): how a go-choria server checks a request's caller token
//! and signature. Two steps, as in `protocol/v2/secure_request.go` (`SecureRequest.Valid`):
//!
//! 1. `VerifySignatureBytes` with the caller token only
//!    (`providers/security/choria/choria_security.go`, `verifyByteSignatureByCaller`): a client
//!    or server token, read with the issuer's key (directly or through a chain issuer, see
//!    [`super::token`]); a client token must not need delegation (`signed_fleet_management`)
//!    and must have `fleet_management`; the request must be signed by the token's key;
//! 2. `ShouldAllowCaller` (`shouldAllowCallerUnsigned`): the token must be a client token whose
//!    `callerid` is the request's caller.
//!
//! So a server token gets through the first step, as go-choria's own tests show ("Should
//! support server tokens"), and is refused at the second: no go-choria server answers a
//! request whose caller is a server (go-choria's TODO 1740 there).

use std::collections::BTreeMap;

use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier};

use super::token::{self, key_from_hex, Purpose, Token};
use crate::fleet::protocol::B64;
use crate::fleet::security::Rejection;

/// A protocol v2 request as a go-choria server with the `choria` provider and one trusted
/// token signer (`plugin.security.choria.trusted_signers`, `issuer_hex`) checks it.
pub fn verify_v2(issuer_hex: &str, caller: &str, request: &str, signature: &str, jwt: &str) -> Result<(), Rejection> {
    verify_at(issuer_hex, caller, request, signature, jwt, chrono::Utc::now().timestamp())
}

/// [`verify_v2`] in org-issuer mode (`orgPkForToken`): the token's `ou` picks the issuer from
/// `issuers` (name to hex public key); a token without `ou`, or naming no configured issuer,
/// is refused.
pub fn verify_v2_org(
    issuers: &BTreeMap<String, String>,
    caller: &str,
    request: &str,
    signature: &str,
    jwt: &str,
) -> Result<(), Rejection> {
    if is_insecure(signature) {
        return Err("unsigned");
    }
    let token = Token::unverified(jwt)?;
    let ou = token.str("ou");
    if ou.is_empty() {
        return Err("caller JWT has no ou");
    }
    let issuer = issuers.get(ou).ok_or("no issuer for the caller JWT's ou")?;
    verify_v2(issuer, caller, request, signature, jwt)
}

/// Whether the request carries the unsigned form (`insecure`, base64).
fn is_insecure(signature: &str) -> bool {
    B64.decode(signature).ok().as_deref() == Some(&b"insecure"[..])
}

/// [`verify_v2`] at `now` (Unix seconds).
fn verify_at(issuer_hex: &str, caller: &str, request: &str, sig: &str, jwt: &str, now: i64) -> Result<(), Rejection> {
    if is_insecure(sig) {
        return Err("unsigned");
    }
    let issuer = key_from_hex(issuer_hex).ok_or("bad issuer key")?;
    // Step 1: the signature, by a client or server token.
    let token = match Token::unverified(jwt)?.purpose {
        Purpose::Client | Purpose::Server => token::verify(jwt, &issuer, now)?,
        Purpose::Other => return Err("caller JWT cannot sign requests"),
    };
    if token.purpose == Purpose::Client {
        // Checked before fleet_management: a token with both still needs delegation.
        if token.permission("signed_fleet_management") {
            return Err("caller JWT requires authority delegation");
        }
        if !token.permission("fleet_management") {
            return Err("caller JWT lacks fleet management permission");
        }
    }
    let key = token.public_key()?;
    let sig = B64.decode(sig).ok().and_then(|s| Signature::from_slice(&s).ok()).ok_or("bad signature")?;
    key.verify(request.as_bytes(), &sig).map_err(|_| "bad signature")?;
    // Step 2: the caller.
    if token.purpose != Purpose::Client {
        return Err("caller JWT is not a client token");
    }
    if token.str("callerid") != caller {
        return Err("callerid does not match the JWT");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::{json, Value};

    const MSG: &str = r#"{"agent":"rpcutil"}"#;
    const NOW: i64 = 1_800_000_000;

    fn jwt(signer: &SigningKey, claims: &Value) -> String {
        let body =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA"}"#), URL_SAFE_NO_PAD.encode(claims.to_string()));
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(signer.sign(body.as_bytes()).to_bytes()))
    }

    fn check(issuer: &SigningKey, claims: Value, holder: &SigningKey) -> Result<(), Rejection> {
        let sig = B64.encode(holder.sign(MSG.as_bytes()).to_bytes());
        verify_at(&hex::encode(issuer.verifying_key().as_bytes()), "up=rip", MSG, &sig, &jwt(issuer, &claims), NOW)
    }

    #[test]
    fn token_times_are_golang_jwt_v5s() {
        let (issuer, holder) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
        let claims = |extra: Value| {
            let mut c = json!({"purpose": "choria_client_id", "callerid": "up=rip",
                "public_key": hex::encode(holder.verifying_key().as_bytes()),
                "permissions": {"fleet_management": true}});
            c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            c
        };
        assert_eq!(check(&issuer, claims(json!({"nbf": NOW + 1})), &holder), Err("caller JWT not yet valid"));
        assert_eq!(check(&issuer, claims(json!({"nbf": NOW, "exp": NOW + 1})), &holder), Ok(()));
        assert_eq!(check(&issuer, claims(json!({"exp": NOW})), &holder), Err("caller JWT expired"));
        assert_eq!(check(&issuer, claims(json!({"exp": "soon"})), &holder), Err("caller JWT claims unreadable"));
        assert_eq!(check(&issuer, claims(json!({})), &holder), Ok(()));
        let provisioning =
            json!({"purpose": "choria_provisioning", "public_key": hex::encode(holder.verifying_key().as_bytes())});
        assert_eq!(check(&issuer, provisioning, &holder), Err("caller JWT cannot sign requests"));
    }
}
