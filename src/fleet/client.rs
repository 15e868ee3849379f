//! The fleet client handle: one NATS connection and the settings every request needs.

use std::sync::Arc;
use std::time::Duration;

use super::ddl::DdlRegistry;
use super::error::{FleetError, Result};
use super::protocol::{Security, Version};

/// How to reach and speak to a fleet; resolved from the command line and config files.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Broker URLs, tried in order.
    pub servers: Vec<String>,
    /// Our `senderid`.
    pub identity: String,
    /// Our `callerid`, e.g. `choria=ops.mcollective`.
    pub caller_id: String,
    /// The collective requests go to unless one is named.
    pub collective: String,
    pub protocol: Version,
    pub security: Security,
    pub discovery_timeout: Duration,
    /// Request TTL in seconds (the v1 schema wants at least 30).
    pub ttl: u64,
    pub connect_timeout: Duration,
    /// NATS user and password (the Provisioner account uses these).
    pub user_password: Option<(String, String)>,
    /// A NATS credentials file.
    pub creds: Option<std::path::PathBuf>,
    /// TLS: the CA that signs the broker's certificate, and a client certificate and key
    /// for mutual TLS.
    pub tls: Option<TlsFiles>,
}

/// Files for a TLS connection to the broker.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

impl TlsFiles {
    /// Requires TLS, trusts the CA and presents the client certificate (mutual TLS).
    pub fn apply(&self, mut co: async_nats::ConnectOptions) -> async_nats::ConnectOptions {
        co = co.require_tls(true);
        if let Some(ca) = &self.ca {
            co = co.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            co = co.add_client_certificate(cert.clone(), key.clone());
        }
        co
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "fleetbook".into());
        let host = hostname();
        ClientOptions {
            servers: vec!["nats://127.0.0.1:4222".into()],
            identity: host,
            caller_id: format!("choria={user}.mcollective"),
            collective: "mcollective".into(),
            protocol: Version::V1,
            security: Security::Insecure,
            discovery_timeout: Duration::from_secs(2),
            ttl: 60,
            connect_timeout: Duration::from_secs(5),
            user_password: None,
            creds: None,
            tls: None,
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "fleetbook.local".into())
}

/// A cheap-clone handle on a connected fleet.
#[derive(Clone)]
pub struct Fleet {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) nats: async_nats::Client,
    pub(crate) opts: ClientOptions,
    pub(crate) ddl: DdlRegistry,
}

impl Fleet {
    /// Connects to the first reachable broker of `opts.servers`.
    pub async fn connect(opts: ClientOptions, ddl: DdlRegistry) -> Result<Fleet> {
        let shown = opts.servers.join(",");
        let fail = |reason: String| FleetError::Connect { servers: redact_url(&shown), reason };
        let mut addrs = Vec::new();
        for s in &opts.servers {
            addrs.push(
                s.parse::<async_nats::ServerAddr>()
                    .map_err(|e| fail(format!("bad server URL {}: {e}", redact_url(s))))?,
            );
        }
        let mut co = async_nats::ConnectOptions::new()
            .name("fleetbook")
            .connection_timeout(opts.connect_timeout)
            .subscription_capacity(1 << 18)
            .client_capacity(1 << 16);
        if let Some((u, p)) = &opts.user_password {
            co = co.user_and_password(u.clone(), p.clone());
        }
        if let Some(tls) = &opts.tls {
            co = tls.apply(co);
        }
        // Choria's issuer-mode broker reads the JWT as the CONNECT token and checks the
        // nonce signed with the seed (choria-protocol.md §6.4); Go sets both.
        if let (super::protocol::Security::Ed25519(id), None, None) = (&opts.security, &opts.user_password, &opts.creds)
        {
            let signer = id.clone();
            co = co.token(id.jwt.clone()).jwt(id.jwt.clone(), move |nonce| {
                let sig = signer.sign_raw(&nonce);
                async move { Ok(sig) }
            });
        }
        if let Some(path) = &opts.creds {
            co = co
                .credentials_file(path)
                .await
                .map_err(|e| fail(format!("cannot read credentials file {}: {e}", path.display())))?;
        }
        let nats = async_nats::connect_with_options(addrs, co).await.map_err(|e| fail(e.to_string()))?;
        Ok(Fleet { inner: Arc::new(Inner { nats, opts, ddl }) })
    }

    /// The settings in use.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// The known agent DDLs.
    pub fn ddl(&self) -> &DdlRegistry {
        &self.inner.ddl
    }

    /// The raw NATS client, for subscriptions outside the RPC protocol (lifecycle events, KV).
    pub fn nats(&self) -> &async_nats::Client {
        &self.inner.nats
    }
}

/// Hides a password in `nats://user:pass@host` forms.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:[redacted]{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(super::redact_url("nats://u:secret@h:4222"), "nats://u:[redacted]@h:4222");
        assert_eq!(super::redact_url("nats://h:4222"), "nats://h:4222");
    }
}
