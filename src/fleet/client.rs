//! The fleet client handle: one NATS connection and the settings every request needs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ddl::DdlRegistry;
use super::error::{ConnectCause, FleetError, Result};
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
    /// Reconnect attempts before the connection closes for good.
    pub max_reconnects: usize,
    /// NATS user and password (the Provisioner account uses these).
    pub user_password: Option<(String, String)>,
    /// A NATS credentials file.
    pub creds: Option<std::path::PathBuf>,
    /// TLS: the CA that signs the broker's certificate, and a client certificate and key
    /// for mutual TLS.
    pub tls: Option<TlsFiles>,
    /// FIPS 140 mode: reply subjects carry the sha256 of the caller id, as go-choria's do
    /// under Go's FIPS mode; [`Fleet::connect`] puts the process in that mode.
    pub fips: bool,
    /// `rpclimitmethod`: which nodes a limit keeps when it does not say.
    pub limit_method: super::discovery::limit::LimitMethod,
    /// The configuration's default discovery method and options, for callers that name none.
    pub discovery_defaults: super::discovery::method::DiscoveryDefaults,
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
            max_reconnects: MAX_RECONNECTS,
            user_password: None,
            creds: None,
            tls: None,
            fips: false,
            limit_method: Default::default(),
            discovery_defaults: Default::default(),
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
    pub(crate) link: Arc<Link>,
}

/// How often the client pings the broker. Three unanswered pings (about 15 s) mark a stalled
/// broker (`kill -STOP`) as lost; a shorter stall keeps the connection and loses nothing.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);

/// Reconnection is bounded: by default, after this many failed attempts (about two minutes
/// with [`reconnect_delay`]) the connection closes and every wait on it ends.
pub const MAX_RECONNECTS: usize = 60;

/// The wait before reconnect attempt `n`: at once, then backing off to two seconds.
pub fn reconnect_delay(attempt: usize) -> Duration {
    match attempt {
        0 | 1 => Duration::ZERO,
        n => Duration::from_millis((250u64 << (n - 2).min(3)).min(2000)),
    }
}

/// What happened to the connection, for the user to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The connection broke; the client is reconnecting.
    Lost,
    /// Connected again after `after` without a broker.
    Restored { after: Duration },
    /// Reconnection gave up; the connection is closed for good.
    Closed { reason: String },
}

/// The state of the connection to the broker, kept from the client's events.
#[derive(Debug)]
pub struct Link {
    max_reconnects: usize,
    disconnects: AtomicU64,
    closed: std::sync::Mutex<Option<String>>,
    lost_at: std::sync::Mutex<Option<std::time::Instant>>,
    events: broadcast::Sender<LinkEvent>,
}

impl Link {
    fn new(max_reconnects: usize) -> Self {
        Link {
            max_reconnects,
            disconnects: AtomicU64::new(0),
            closed: std::sync::Mutex::new(None),
            lost_at: std::sync::Mutex::new(None),
            events: broadcast::channel(64).0,
        }
    }

    fn on_event(&self, e: &async_nats::Event) {
        let event = match e {
            async_nats::Event::Disconnected => {
                self.disconnects.fetch_add(1, Ordering::SeqCst);
                *crate::lock(&self.lost_at) = Some(std::time::Instant::now());
                LinkEvent::Lost
            }
            // The first connection is no news; only a return after a loss is.
            async_nats::Event::Connected => match crate::lock(&self.lost_at).take() {
                Some(t) => LinkEvent::Restored { after: t.elapsed() },
                None => return,
            },
            // `Closed` also comes when we close the client ourselves: not news either.
            async_nats::Event::ClientError(async_nats::ClientError::MaxReconnects) => {
                let reason = format!("gave up after {} reconnect attempts", self.max_reconnects);
                *crate::lock(&self.closed) = Some(reason.clone());
                LinkEvent::Closed { reason }
            }
            _ => return,
        };
        let _ = self.events.send(event);
    }

    /// How many times the connection broke so far.
    pub fn disconnects(&self) -> u64 {
        self.disconnects.load(Ordering::SeqCst)
    }

    /// Why the connection is closed for good, if it is.
    pub fn closed(&self) -> Option<String> {
        crate::lock(&self.closed).clone()
    }

    /// Connection events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LinkEvent> {
        self.events.subscribe()
    }
}

impl Fleet {
    /// Connects to the first reachable broker of `opts.servers`.
    pub async fn connect(opts: ClientOptions, ddl: DdlRegistry) -> Result<Fleet> {
        if opts.fips {
            super::protocol::enable_fips();
        }
        let shown = opts.servers.join(",");
        let fail = |source: ConnectCause| FleetError::Connect { servers: redact_url(&shown), source };
        let mut addrs = Vec::new();
        for s in &opts.servers {
            addrs.push(
                s.parse::<async_nats::ServerAddr>()
                    .map_err(|source| fail(ConnectCause::BadUrl { url: redact_url(s), source }))?,
            );
        }
        let link = Arc::new(Link::new(opts.max_reconnects));
        let on_event = link.clone();
        let mut co = async_nats::ConnectOptions::new()
            .name("fleetbook")
            .connection_timeout(opts.connect_timeout)
            .subscription_capacity(1 << 18)
            .client_capacity(1 << 16)
            .ping_interval(PING_INTERVAL)
            .max_reconnects(opts.max_reconnects)
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(move |e| {
                on_event.on_event(&e);
                async {}
            });
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
                .map_err(|source| fail(ConnectCause::Credentials { path: path.clone(), source }))?;
        }
        // The connect timeout bounds each attempt; this bounds the whole (TLS, auth) handshake.
        let limit = opts.connect_timeout * 2 + Duration::from_secs(1);
        let nats = match tokio::time::timeout(limit, async_nats::connect_with_options(addrs, co)).await {
            Ok(r) => r.map_err(|e| fail(e.into()))?,
            Err(_) => return Err(fail(ConnectCause::Timeout { limit })),
        };
        Ok(Fleet { inner: Arc::new(Inner { nats, opts, ddl, link }) })
    }

    /// The connection's state and events.
    pub fn link(&self) -> &Link {
        &self.inner.link
    }

    /// True while the client has a live connection.
    pub fn connected(&self) -> bool {
        self.inner.nats.connection_state() == async_nats::connection::State::Connected
    }

    /// The error for a broker that went away `during` something, naming the servers.
    pub fn broker_lost(&self, during: &str, reason: String) -> FleetError {
        FleetError::BrokerLost {
            servers: redact_url(&self.inner.opts.servers.join(",")),
            during: during.into(),
            reason,
        }
    }

    /// The error for a broker that is gone now (closed for good, or down past a deadline).
    pub fn lost(&self, during: &str) -> FleetError {
        let why = match self.link().closed() {
            Some(r) => format!("the connection is closed ({r})"),
            None => "the connection is down and did not come back in time".to_string(),
        };
        self.broker_lost(during, why)
    }

    /// Waits until the client is connected, at most until `deadline`; Ctrl-C ends the wait.
    pub async fn await_connected(&self, deadline: Instant, cancel: &CancellationToken, during: &str) -> Result<()> {
        while !self.connected() {
            if self.link().closed().is_some() {
                return Err(self.lost(during));
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(FleetError::Cancelled),
                _ = tokio::time::sleep_until(deadline) => return Err(self.lost(during)),
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        Ok(())
    }

    /// Runs a broker conversation (JetStream, KV) with one overall deadline, so a broker that
    /// stops answering mid-way is reported instead of waited on.
    pub async fn within<T>(&self, during: &str, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let limit = self.inner.opts.connect_timeout * 6;
        match tokio::time::timeout(limit, work).await {
            Ok(r) => r,
            Err(_) => Err(self.broker_lost(during, format!("no answer within {}s", limit.as_secs()))),
        }
    }

    /// [`Fleet::within`] for a conversation that is safe to repeat (a read, a delete by
    /// sequence, a publish with a message id): when the connection breaks or comes back while
    /// `work` waits, its answer may have gone with the old connection (a request a broker
    /// took just before it was killed is never answered), so `work` runs again once the
    /// client is connected instead of waiting out its own timeout. One overall deadline, as
    /// `within` has; a broker that does not come back by then is reported as lost.
    pub async fn again<T, E, F, Fut>(&self, during: &str, mut work: F) -> std::result::Result<T, E>
    where
        E: From<FleetError>,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, E>>,
    {
        let limit = self.inner.opts.connect_timeout * 6;
        let deadline = Instant::now() + limit;
        let never = CancellationToken::new();
        loop {
            self.await_connected(deadline, &never, during).await?;
            // Subscribed before the work starts: a break while it waits is seen.
            let mut link = self.link().subscribe();
            let breaks = self.link().disconnects();
            tokio::select! {
                r = work() => match r {
                    // It failed (timed out, say) while the connection broke: asked again.
                    Err(_) if self.link().disconnects() != breaks => {}
                    r => return r,
                },
                _ = link.recv() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(self.broker_lost(during, format!("no answer within {}s", limit.as_secs())).into())
                }
            }
        }
    }

    /// Runs one client operation until `deadline` at most; Ctrl-C (`cancel`) ends it too. A
    /// flush or a publish into a full queue waits for a connection, and a broker that is gone
    /// must not hang the caller.
    async fn by<E: std::error::Error + Send + Sync + 'static>(
        &self,
        work: impl std::future::Future<Output = std::result::Result<(), E>>,
        operation: &'static str,
        deadline: Instant,
        cancel: &CancellationToken,
        during: &str,
    ) -> Result<()> {
        tokio::select! {
            _ = cancel.cancelled() => Err(FleetError::Cancelled),
            _ = tokio::time::sleep_until(deadline) => Err(self.lost(during)),
            r = work => r.map_err(|e| FleetError::nats(operation, e)),
        }
    }

    /// Flushes what was published, at most until `deadline`.
    pub async fn flush_by(&self, deadline: Instant, cancel: &CancellationToken, during: &str) -> Result<()> {
        self.by(self.nats().flush(), "flush", deadline, cancel, during).await
    }

    /// Publishes one message, at most until `deadline`.
    pub async fn publish_by(
        &self,
        subject: String,
        payload: bytes::Bytes,
        deadline: Instant,
        cancel: &CancellationToken,
        during: &str,
    ) -> Result<()> {
        self.by(self.nats().publish(subject, payload), "publish", deadline, cancel, during).await
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
