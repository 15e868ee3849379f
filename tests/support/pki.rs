//! Throwaway PKIs for the security tests: RSA keys and CAs made with rcgen.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType, PKCS_RSA_SHA256};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};

/// Test key sizes: real enough for RSA PKCS#1 v1.5 SHA-256, quick to generate.
const BITS: usize = 2048;

/// A new RSA private key, PKCS#8 PEM.
pub(crate) fn rsa_pem() -> String {
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), BITS).unwrap();
    key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
}

/// A CA (or intermediate) that signs with `issuer`; its PEM.
pub(crate) struct Ca {
    pub(crate) issuer: Issuer<'static, KeyPair>,
    pub(crate) pem: String,
}

/// A self-signed root CA.
pub(crate) fn ca(name: &str) -> Ca {
    ca_under(name, None)
}

/// A CA signed by `parent` (an intermediate), or self-signed without one.
pub(crate) fn ca_under(name: &str, parent: Option<&Ca>) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::from_pem_and_sign_algo(&rsa_pem(), &PKCS_RSA_SHA256).unwrap();
    let cert = match parent {
        Some(parent) => p.signed_by(&key, &parent.issuer).unwrap(),
        None => p.self_signed(&key).unwrap(),
    };
    Ca { pem: cert.pem(), issuer: Issuer::new(p, key) }
}

/// Writes a certificate for `cn` (with DNS/IP SANs) signed by `ca`; returns (cert, key) paths.
pub(crate) fn leaf(dir: &Path, ca: &Ca, cn: &str, sans: &[&str], expired: bool) -> (PathBuf, PathBuf) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    for s in sans {
        p.subject_alt_names.push(match s.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*s).try_into().unwrap()),
        });
    }
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key_pem = rsa_pem();
    let key = KeyPair::from_pem_and_sign_algo(&key_pem, &PKCS_RSA_SHA256).unwrap();
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    let (c, k) = (dir.join(format!("{cn}.pem")), dir.join(format!("{cn}.key")));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key_pem).unwrap();
    (c, k)
}

/// A new ed25519 key (v2 identities and JWT issuers).
pub(crate) fn ed_key() -> ed25519_dalek::SigningKey {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut seed);
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

/// `claims` as a JWT signed by `issuer` (EdDSA), as Choria's tokens are.
pub(crate) fn sign_jwt(issuer: &ed25519_dalek::SigningKey, claims: &serde_json::Value) -> String {
    use base64::Engine as _;
    use ed25519_dalek::Signer;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(r#"{"alg":"EdDSA","typ":"JWT"}"#);
    let body = format!("{header}.{}", b64.encode(claims.to_string()));
    let sig = issuer.sign(body.as_bytes());
    format!("{body}.{}", b64.encode(sig.to_bytes()))
}

/// Writes a JWT and its client's seed; returns their paths.
pub(crate) fn write_creds(
    dir: &std::path::Path,
    name: &str,
    jwt: &str,
    client: &ed25519_dalek::SigningKey,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (j, s) = (dir.join(format!("{name}.jwt")), dir.join(format!("{name}.seed")));
    std::fs::write(&j, jwt).unwrap();
    std::fs::write(&s, hex::encode(client.to_bytes())).unwrap();
    (j, s)
}

/// A broker's TLS files under `dir`: a throwaway CA and a server certificate for `localhost`
/// and `127.0.0.1` signed by it; returns (CA, certificate, key) paths.
pub(crate) fn broker_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let root = ca("fleetbook test broker CA");
    let ca_path = dir.join("broker-ca.pem");
    std::fs::write(&ca_path, &root.pem).unwrap();
    let (cert, key) = leaf(dir, &root, "broker", &["localhost", "127.0.0.1"], false);
    (ca_path, cert, key)
}
