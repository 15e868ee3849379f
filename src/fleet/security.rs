//! Protocol v1 (x509) request signing and verification: RSA PKCS#1 v1.5 over SHA-256 of the
//! exact request JSON, the PEM certificate as `pubcert`, `callerid` `choria=<certificate
//! name>` (choria-protocol.md §2.1, §6.1).

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use x509_parser::prelude::*;

use super::error::{CredentialError, FleetError, Result};
use super::protocol::B64;

/// Credentials at `path` failed one of our checks.
fn sec_err(path: &Path, reason: impl std::fmt::Display) -> FleetError {
    FleetError::Security { path: path.display().to_string(), reason: reason.to_string() }
}

/// Credentials at `path` could not be read or parsed.
fn cred_err(path: &Path, source: CredentialError) -> FleetError {
    FleetError::Credentials { path: path.display().to_string(), source }
}

/// A client certificate and its private key, checked to belong together.
pub struct X509Identity {
    pub cert_pem: String,
    /// The certificate's common name: our caller id is `choria=<certname>`.
    pub certname: String,
    key: RsaPrivateKey,
}

impl std::fmt::Debug for X509Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        write!(f, "X509Identity({})", self.certname)
    }
}

impl X509Identity {
    /// Loads and checks: readable files, an RSA key that matches the certificate, and a
    /// certificate valid now.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<X509Identity>> {
        let cert_pem =
            std::fs::read_to_string(cert).map_err(|e| cred_err(cert, CredentialError::ReadCertificate(e)))?;
        let (_, pem) = parse_x509_pem(cert_pem.as_bytes()).map_err(|e| cred_err(cert, CredentialError::NotPem(e)))?;
        let x509 = pem.parse_x509().map_err(|e| cred_err(cert, CredentialError::NotX509(e)))?;
        let v = x509.validity();
        let now = ASN1Time::now();
        if now > v.not_after {
            return Err(sec_err(cert, format!("the certificate expired on {}", v.not_after)));
        }
        if now < v.not_before {
            return Err(sec_err(cert, format!("the certificate is not valid before {}", v.not_before)));
        }
        check_client_auth(&x509).map_err(|why| sec_err(cert, why))?;
        let certname = common_name(&x509).ok_or_else(|| sec_err(cert, "the certificate has no common name"))?;
        // The key file is read, never echoed: errors name the file only.
        let key_pem = std::fs::read_to_string(key).map_err(|e| cred_err(key, CredentialError::ReadKey(e)))?;
        let private = RsaPrivateKey::from_pkcs1_pem(&key_pem)
            .or_else(|_| RsaPrivateKey::from_pkcs8_pem(&key_pem))
            .map_err(|_| sec_err(key, "not an RSA private key in PKCS#1 or PKCS#8 PEM"))?;
        let public = RsaPublicKey::from_public_key_der(x509.public_key().raw)
            .map_err(|_| sec_err(cert, "the certificate does not hold an RSA key"))?;
        if public != private.to_public_key() {
            return Err(sec_err(key, format!("the key does not match the certificate {}", cert.display())));
        }
        Ok(Arc::new(X509Identity { cert_pem, certname, key: private }))
    }

    /// base64 of the PKCS#1 v1.5 SHA-256 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        let digest = Sha256::digest(message);
        // Signing with a valid key and a SHA-256 digest cannot fail.
        let sig = self.key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest).unwrap_or_default();
        B64.encode(sig)
    }
}

/// Whether the certificate may authenticate a client, as go-choria's servers check it
/// (`providers/security/filesec/file_security.go`, `VerifyCertificate`: Go's `x509.Verify`
/// with `KeyUsages: ClientAuth`). Go treats a certificate without the extended key usage
/// extension as good for any usage, and `anyExtendedKeyUsage` likewise; otherwise it must
/// list `clientAuth`, or every server drops our requests without a word.
fn check_client_auth(x509: &X509Certificate<'_>) -> std::result::Result<(), String> {
    let eku = match x509.extended_key_usage() {
        Ok(None) => return Ok(()),
        Ok(Some(ext)) => ext.value,
        Err(e) => return Err(format!("the certificate's extended key usage cannot be read: {e}")),
    };
    if eku.any || eku.client_auth {
        return Ok(());
    }
    let mut has = Vec::new();
    for (on, name) in [
        (eku.server_auth, "serverAuth"),
        (eku.code_signing, "codeSigning"),
        (eku.email_protection, "emailProtection"),
        (eku.time_stamping, "timeStamping"),
        (eku.ocsp_signing, "OCSPSigning"),
    ] {
        if on {
            has.push(name.to_string());
        }
    }
    has.extend(eku.other.iter().map(|oid| oid.to_id_string()));
    Err(format!(
        "the certificate is not for client authentication: its extended key usage lists {} but not \
         clientAuth, and Choria servers refuse such a certificate; issue one with the clientAuth \
         (TLS Web Client Authentication) extended key usage",
        if has.is_empty() { "nothing".to_string() } else { has.join(", ") }
    ))
}

/// The certificate's CN.
pub fn common_name(x509: &X509Certificate<'_>) -> Option<String> {
    x509.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string)
}

/// The name in a caller id (`choria=ops.mcollective` -> `ops.mcollective`), as go-choria's
/// `callerIDRe` reads it; `None` when the caller id is not of that form.
pub fn caller_name(caller: &str) -> Option<String> {
    regex::Regex::new(r"^[a-z]+=([\w.\-]+)$").ok()?.captures(caller)?.get(1).map(|m| m.as_str().to_string())
}

/// Why a server refuses a request (the simulator counts these).
pub type Rejection = &'static str;

/// What a v1 server with the `file` provider checks (choria-protocol.md §6.1), except the
/// filter, collective and TTL, which the caller checks.
pub fn verify_v1(
    ca_pem: &str,
    caller: &str,
    message: &str,
    signature: &str,
    pubcert: &str,
) -> std::result::Result<(), Rejection> {
    if signature == "insecure" || pubcert == "insecure" {
        return Err("unsigned");
    }
    let (_, ca_pem) = parse_x509_pem(ca_pem.as_bytes()).map_err(|_| "bad CA")?;
    let ca = ca_pem.parse_x509().map_err(|_| "bad CA")?;
    let (_, pem) = parse_x509_pem(pubcert.as_bytes()).map_err(|_| "bad certificate")?;
    let cert = pem.parse_x509().map_err(|_| "bad certificate")?;
    cert.verify_signature(Some(ca.public_key())).map_err(|_| "certificate not signed by the CA")?;
    if !cert.validity().is_valid() {
        return Err("certificate expired");
    }
    let certname = caller_name(caller).ok_or("malformed callerid")?;
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|g| if let GeneralName::DNSName(d) = g { Some(d.to_string()) } else { None })
                .collect()
        })
        .unwrap_or_default();
    if common_name(&cert).as_deref() != Some(certname.as_str()) && !sans.contains(&certname) {
        return Err("callerid does not match the certificate");
    }
    // plugin.choria.security.certname_whitelist default.
    if !(certname.ends_with(".mcollective") || certname.ends_with(".choria")) {
        return Err("certificate name not allowed");
    }
    let public = RsaPublicKey::from_public_key_der(cert.public_key().raw).map_err(|_| "not an RSA certificate")?;
    let sig = B64.decode(signature).map_err(|_| "bad signature")?;
    public.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message.as_bytes()), &sig).map_err(|_| "bad signature")
}

/// A protocol v2 client: its JWT and the ed25519 seed whose public key the JWT names.
pub struct Ed25519Identity {
    pub jwt: String,
    pub callerid: String,
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for Ed25519Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ed25519Identity({})", self.callerid)
    }
}

impl Ed25519Identity {
    /// Loads the JWT and the seed file (64 hex characters) and checks they belong together
    /// and the token has not expired.
    pub fn load(jwt_path: &Path, seed_path: &Path) -> Result<Arc<Ed25519Identity>> {
        let jwt = std::fs::read_to_string(jwt_path)
            .map_err(|e| cred_err(jwt_path, CredentialError::ReadJwt(e)))?
            .trim()
            .to_string();
        let claims = super::jwt::claims(&jwt).map_err(|e| sec_err(jwt_path, e))?;
        // go-choria servers take a request only from a client token: a server token's
        // signature is checked and then the caller refused (`choria_security.go`,
        // `shouldAllowCallerUnsigned`), and other purposes cannot sign at all.
        if claims.purpose != "choria_client_id" {
            return Err(sec_err(
                jwt_path,
                format!(
                    "the JWT is not a client token (purpose {:?}, not \"choria_client_id\"): Choria servers \
                     take requests only from client tokens, never from a server's or a provisioning token",
                    claims.purpose
                ),
            ));
        }
        if claims.callerid.is_empty() || claims.public_key.is_empty() {
            return Err(sec_err(jwt_path, "the JWT has no callerid or public_key claim"));
        }
        let now = chrono::Utc::now().timestamp();
        if claims.expires.is_some_and(|e| e < now) {
            return Err(sec_err(jwt_path, "the JWT has expired"));
        }
        // A token from a chain issuer (an AAA login service) dies with its issuer's token
        // (`choria-io/tokens` `ParseClientIDToken`: `issexp`); servers then drop its requests.
        if let Some(issexp) = claims.issuer_expires.filter(|i| *i <= now) {
            let when =
                chrono::DateTime::from_timestamp(issexp, 0).map(|t| t.to_rfc3339()).unwrap_or(issexp.to_string());
            return Err(sec_err(
                jwt_path,
                format!("the JWT's issuer (a chain issuer, `issexp`) expired at {when}: log in again for a new token"),
            ));
        }
        if let Some(nbf) = claims.not_before.filter(|n| *n > now) {
            let when = chrono::DateTime::from_timestamp(nbf, 0).map(|t| t.to_rfc3339()).unwrap_or(nbf.to_string());
            return Err(sec_err(jwt_path, format!("the JWT is not yet valid: not before {when}")));
        }
        // go-choria servers refuse a self-signed request from a token that needs delegation
        // (`providers/security/choria/choria_security.go`, `VerifySignatureBytes`: "requires
        // authority delegation"), even when it also has fleet_management.
        if claims.signed_fleet_management {
            return Err(sec_err(
                jwt_path,
                "the JWT has the signed_fleet_management permission: its requests must be signed by a \
                 delegated signer (an AAA service), which fleetbook does not support, and every server \
                 would drop them; use a token with fleet_management and without signed_fleet_management",
            ));
        }
        // The seed is read, never echoed: errors name the file only.
        let seed_hex =
            std::fs::read_to_string(seed_path).map_err(|e| cred_err(seed_path, CredentialError::ReadSeed(e)))?;
        let seed: [u8; 32] = hex::decode(seed_hex.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| sec_err(seed_path, "not an ed25519 seed (64 hex characters)"))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        if hex::encode(key.verifying_key().as_bytes()) != claims.public_key.to_ascii_lowercase() {
            return Err(sec_err(
                seed_path,
                format!("the seed does not match the public key in {}", jwt_path.display()),
            ));
        }
        Ok(Arc::new(Ed25519Identity { jwt, callerid: claims.callerid, key }))
    }

    /// base64 of the ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        B64.encode(self.sign_raw(message))
    }

    /// The raw ed25519 signature of `message` (the broker's connection nonce).
    pub fn sign_raw(&self, message: &[u8]) -> Vec<u8> {
        use ed25519_dalek::Signer;
        self.key.sign(message).to_bytes().to_vec()
    }
}

/// Checks a v2 reply signature when the server sent one: ed25519 over the reply JSON by the
/// key named in the sender's JWT. `Ok(false)` when the reply is unsigned.
pub fn verify_reply_signature(
    reply: &[u8],
    signature: &str,
    sender_jwt: &str,
) -> std::result::Result<bool, &'static str> {
    if signature.is_empty() {
        return Ok(false);
    }
    let claims = super::jwt::claims(sender_jwt).map_err(|_| "reply sender JWT unreadable")?;
    let key = super::jwt::verifying_key(&claims.public_key).ok_or("reply sender JWT has no valid public key")?;
    let sig = B64
        .decode(signature)
        .ok()
        .and_then(|s| ed25519_dalek::Signature::from_slice(&s).ok())
        .ok_or("reply signature malformed")?;
    use ed25519_dalek::Verifier;
    key.verify(reply, &sig).map(|_| true).map_err(|_| "reply signature does not verify")
}
