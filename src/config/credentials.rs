//! Checks on the credentials a command resolved, made before anything connects: what a real
//! Choria broker or server would refuse silently is refused here with a clear message.

use super::usage;
use crate::error::Error;

/// Whether a broker URL is a TLS connection by its scheme (`tls://`, `wss://`).
fn tls_scheme(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("tls://") || lower.starts_with("wss://")
}

/// A JWT needs TLS: a Choria broker checks a client's JWT only on a TLS connection and
/// refuses a plain one with "unverified connection without JWT token"
/// (go-choria `broker/network/choria_auth.go`, `handleDefaultConnection`). `tls_files` is
/// whether a CA or client certificate was given: then fleetbook requires TLS on every URL.
pub(crate) fn require_tls_for_jwt(servers: &[String], tls_files: bool) -> Result<(), Error> {
    if tls_files {
        return Ok(());
    }
    match servers.iter().find(|s| !tls_scheme(s)) {
        None => Ok(()),
        Some(plain) => Err(usage(format!(
            "a JWT (protocol v2) needs a TLS connection: a Choria broker refuses a JWT on a plain \
             connection (\"unverified connection without JWT token\"); server {} is not TLS: use \
             tls://HOST:PORT and give the broker's CA with --tls-ca (or plugin.security.file.ca), \
             or pass --insecure to send unsigned requests",
            crate::fleet::client::redact_url(plain)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_needs_tls() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(require_tls_for_jwt(&s(&["tls://b:4222", "WSS://b:443"]), false).is_ok());
        assert!(require_tls_for_jwt(&s(&["nats://b:4222"]), true).is_ok());
        let e = require_tls_for_jwt(&s(&["tls://a:4222", "nats://u:secret@b:4222"]), false).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("tls://") && m.contains("--tls-ca") && m.contains("b:4222"), "{m}");
        assert!(!m.contains("secret"), "{m}");
        assert!(require_tls_for_jwt(&s(&["b:4222"]), false).is_err());
    }
}
