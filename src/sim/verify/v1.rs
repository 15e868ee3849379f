//! Protocol v1 (the `file` provider): how a go-choria server checks a caller's certificate
//! and signature (`providers/security/filesec/file_security.go`,
//! `protocol/v1/security_request.go`). The certificate name comes from the caller id by
//! `callerIDRe`, which is *not* anchored at the end; the certificate must chain to the CA
//! (intermediates may travel in `pubcert`) with the client-auth usage; a certificate whose CN
//! or DNS name matches `plugin.choria.security.privileged_users` (default
//! `\.privileged.mcollective$`, `\.privileged.choria$`) may use any caller id and skips the
//! allow list; any other must name the caller and match
//! `plugin.choria.security.certname_whitelist` (default `\.mcollective$`, `\.choria$`).

use base64::Engine as _;
use regex::Regex;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
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
}
