//! What the command line asks for, as plain values, resolved with the Choria client
//! configuration into validated [`Settings`]. No clap types here: `commands::options` turns
//! the `cli` types into `ConnectOptions` and `SimOptions`.

use std::path::PathBuf;
use std::time::Duration;

use crate::choria_conf::ChoriaConfig;
use crate::error::Error;
use crate::fleet::client::TlsFiles;
use crate::fleet::ddl::DdlRegistry;
use crate::fleet::protocol::Security;
use crate::fleet::protocol::Version;
use crate::fleet::security::{Ed25519Identity, X509Identity};
use crate::fleet::ClientOptions;
use crate::sim::SimConfig;

mod credentials;
mod puppet;
mod simulated;
pub(crate) use simulated::{sim_config, twin_config, SimOptions};

/// Everything a command needs to reach a fleet.
#[derive(Debug, Clone)]
pub struct Settings {
    pub client: ClientOptions,
    pub ddl: DdlRegistry,
    /// `Some` when `--sim N` asks for an embedded broker and fleet.
    pub sim: Option<SimConfig>,
}

/// How to reach the fleet, as given on the command line (valid on every command);
/// [`Settings::resolve`] checks it and fills the gaps from the Choria client configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectOptions {
    /// Broker URLs; empty: the configuration's.
    pub(crate) servers: Vec<String>,
    /// The main collective.
    pub(crate) collective: Option<String>,
    /// The protocol generation asked for.
    pub(crate) protocol: Option<Version>,
    /// Our identity (senderid).
    pub(crate) identity: Option<String>,
    /// Our caller id, `kind=name`.
    pub(crate) caller_id: Option<String>,
    /// A Choria client configuration file; `None`: the default one, unless `sim` is given.
    pub(crate) config: Option<PathBuf>,
    /// CA, client certificate and key; each overrides the configuration's.
    pub(crate) tls: TlsFiles,
    /// Client JWT (protocol v2).
    pub(crate) jwt: Option<PathBuf>,
    /// ed25519 seed file that goes with `jwt`.
    pub(crate) seed: Option<PathBuf>,
    /// NATS credentials file.
    pub(crate) creds: Option<PathBuf>,
    /// NATS user name; needs `password`.
    pub(crate) user: Option<String>,
    /// NATS password; needs `user`.
    pub(crate) password: Option<String>,
    /// Send unsigned requests.
    pub(crate) insecure: bool,
    /// FIPS 140 mode (sha256 reply subjects).
    pub(crate) fips: bool,
    /// Reconnect attempts after the broker connection breaks; at least 1.
    pub(crate) max_reconnects: usize,
    /// Directories of extra agent DDLs.
    pub(crate) ddl_dirs: Vec<PathBuf>,
    /// `Some(n)`: an embedded broker and a simulated fleet of `n` nodes.
    pub(crate) sim: Option<usize>,
    /// An embedded broker and a twin of the fleet this inventory file describes.
    pub(crate) sim_from: Option<PathBuf>,
}

fn usage(message: impl Into<String>) -> Error {
    Error::Usage { message: message.into() }
}

/// The longest duration any flag, setting or runbook may ask for: one year. Anything longer
/// is a typo, and near `u64::MAX` seconds a deadline would overflow and panic.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The allowed range of durations, for error messages.
fn allowed() -> String {
    format!("between 0 and {} seconds (1 year)", MAX_DURATION.as_secs())
}

/// Checks a number of seconds: finite, not negative, at most [`MAX_DURATION`]. Every
/// duration from the edge (flags, the Choria config, runbook values) comes through here.
pub fn parse_seconds(secs: f64) -> Result<Duration, String> {
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("{secs} is not a valid number of seconds; must be {}", allowed()));
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!("{secs} seconds is too long; must be {}", allowed()));
    }
    // In range, so the conversion cannot fail; the fallback only keeps this panic-free.
    Ok(Duration::try_from_secs_f64(secs).unwrap_or(MAX_DURATION))
}

/// Parses `30s`, `2m`, `500ms`, `1h` or a plain number of seconds, at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    // The unit is the trailing letters, so `1e300` is a number and `1e3s` has unit `s`.
    let num = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = match &t[num.len()..] {
        "" => "s",
        u => u,
    };
    let n: f64 = num.trim().parse().map_err(|_| format!("{s:?} is not a duration (like 30s, 2m, 500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?} has an unknown unit {unit:?} (use ms, s, m or h)")),
    };
    parse_seconds(secs).map_err(|_| format!("{s:?} is not a valid duration; must be {}", allowed()))
}

/// Refuses a broker URL that cannot work before anything connects: NATS speaks `nats://`,
/// `tls://`, `ws://` or `wss://` (a bare `host:port` means `nats://`), on a port 1-65535.
pub fn check_server(url: &str) -> Result<(), Error> {
    let shown = crate::fleet::client::redact_url(url);
    let bad = |why: String| {
        usage(format!("server URL {shown}: {why}; expected nats://HOST:PORT (or tls://, ws://, wss://, or HOST:PORT)"))
    };
    let addr = url.parse::<async_nats::ServerAddr>().map_err(|e| bad(e.to_string()))?;
    if addr.host().is_empty() {
        return Err(bad("no host".into()));
    }
    if addr.port() == 0 {
        return Err(bad("port 0 is not a port a broker listens on".into()));
    }
    Ok(())
}

impl Settings {
    /// Resolves connection and simulator options: the command line over the Choria client
    /// configuration file over defaults.
    pub(crate) fn resolve(c: &ConnectOptions, s: &SimOptions) -> Result<Settings, Error> {
        let mut client = ClientOptions::default();
        let simulated = c.sim.is_some() || c.sim_from.is_some();
        let conf = match (&c.config, simulated) {
            (Some(path), _) => Some(ChoriaConfig::load(path).map_err(|e| usage(e.to_string()))?),
            (None, false) => ChoriaConfig::default_path()
                .map(|p| ChoriaConfig::load(&p))
                .transpose()
                .map_err(|e| usage(e.to_string()))?,
            (None, true) => None,
        };
        if let Some(conf) = &conf {
            apply_conf(&mut client, conf)?;
        }
        if !c.servers.is_empty() {
            client.servers = c.servers.clone();
        }
        for server in &client.servers {
            check_server(server)?;
        }
        if let Some(col) = &c.collective {
            client.collective = col.clone();
        }
        if let Some(p) = c.protocol {
            client.protocol = p;
        }
        if let Some(id) = &c.identity {
            client.identity = id.clone();
        }
        match (&c.user, &c.password) {
            (Some(u), Some(p)) => client.user_password = Some((u.clone(), p.clone())),
            (Some(_), None) => return Err(usage("--user needs --password (or FLEETBOOK_PASSWORD)")),
            (None, Some(_)) => return Err(usage("--password needs --user")),
            (None, None) => {}
        }
        if c.creds.is_some() {
            client.creds = c.creds.clone();
        }
        let mut tls = client.tls.take().unwrap_or_default();
        tls.ca = c.tls.ca.clone().or(tls.ca);
        tls.cert = c.tls.cert.clone().or(tls.cert);
        tls.key = c.tls.key.clone().or(tls.key);
        let have_tls = tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some();
        if tls.cert.is_some() != tls.key.is_some() {
            return Err(usage(
                "a client certificate needs its key: give both --tls-cert and --tls-key (or plugin.security.file.*)",
            ));
        }
        let mut ddl = DdlRegistry::builtin();
        for dir in &c.ddl_dirs {
            ddl.load_dir(dir).map_err(Error::Fleet)?;
        }
        let sim = match (c.sim, &c.sim_from) {
            (Some(_), Some(_)) => return Err(usage("--sim N and --sim-from FILE: give one")),
            (Some(0), None) => return Err(usage("--sim needs at least 1 node")),
            // The simulated fleet serves the collective the client will use.
            (Some(n), None) => Some(sim_config(n, s, Some(&client.collective))?),
            (None, Some(path)) => {
                let given = c.collective.is_some() || conf.is_some();
                let cfg = twin_config(path, s, &client.collective, given)?;
                client.collective = cfg.collective.clone();
                Some(cfg)
            }
            (None, None) => None,
        };
        match (&c.jwt, &c.seed) {
            (Some(jwt), Some(seed)) if !c.insecure => {
                let id = Ed25519Identity::load(jwt, seed).map_err(Error::Fleet)?;
                client.protocol = Version::V2;
                client.caller_id = id.callerid.clone();
                client.security = Security::Ed25519(id);
            }
            (Some(_), None) | (None, Some(_)) => return Err(usage("--jwt and --seed go together")),
            _ => {}
        }
        if let Some(p) = c.protocol {
            if matches!(client.security, Security::Ed25519(_)) && p == Version::V1 {
                return Err(usage("ed25519/JWT credentials sign protocol v2 requests, not v1"));
            }
        }
        let signed_v2 = matches!(client.security, Security::Ed25519(_));
        // Requests are signed with the client certificate unless --insecure asks for the
        // unsigned form (provisioning-mode and test fleets); a simulated fleet takes either.
        if signed_v2 {
            // Signed by the ed25519 identity; TLS files only secure the connection.
        } else if let (Some(cert), Some(key), false) = (&tls.cert, &tls.key, c.insecure) {
            if client.protocol == Version::V2 {
                return Err(usage("x509 certificates sign protocol v1 requests; protocol v2 signs with an ed25519 seed and a client JWT: give --seed and --jwt (or --protocol v1)"));
            }
            let id = X509Identity::load(cert, key).map_err(Error::Fleet)?;
            client.caller_id = format!("choria={}", id.certname);
            client.security = Security::X509(id);
        } else if !c.insecure && sim.is_none() {
            return Err(usage(
                "no credentials to sign requests with: give a client certificate (--tls-cert/--tls-key, or \
                 plugin.security.file.* in the Choria config), or pass --insecure to send unsigned requests \
                 (accepted by provisioning-mode and test fleets)",
            ));
        }
        if let Some(caller) = &c.caller_id {
            if crate::fleet::security::caller_name(caller).is_none() {
                return Err(usage(format!("--caller-id {caller}: expected kind=name, e.g. choria=ops.mcollective")));
            }
            client.caller_id = caller.clone();
        }
        // Signing with a JWT, however it was asked for (--protocol v2, the config's choria
        // provider, or a bare --jwt/--seed, which means v2 as well): the JWT goes to the
        // broker, on CONNECT and in every request, and a real broker takes it only over TLS.
        if signed_v2 && !c.insecure && sim.is_none() {
            credentials::require_tls_for_jwt(&client.servers, have_tls)?;
        }
        if have_tls && sim.is_none() {
            client.tls = Some(tls);
        }
        if c.max_reconnects == 0 {
            return Err(usage("--max-reconnects must be at least 1"));
        }
        client.max_reconnects = c.max_reconnects;
        client.fips = c.fips;
        Ok(Settings { client, ddl, sim })
    }
}

/// Takes what the Choria client configuration says.
fn apply_conf(client: &mut ClientOptions, conf: &ChoriaConfig) -> Result<(), Error> {
    let hosts = conf.middleware_hosts();
    if !hosts.is_empty() {
        client.servers = hosts;
    }
    if let Some(c) = conf.main_collective() {
        client.collective = c;
    }
    if let Some(id) = conf.identity() {
        client.identity = id;
    }
    if let Some(t) = conf.discovery_timeout().map_err(|e| usage(e.to_string()))? {
        client.discovery_timeout = t;
    }
    if let Some(m) = conf.limit_method().map_err(|e| usage(e.to_string()))? {
        client.limit_method = m;
    }
    client.discovery_defaults = conf.discovery_defaults();
    match conf.security_provider().as_deref() {
        Some("puppet") => {
            // go-choria's puppet provider reads no plugin.security.file.* settings.
            let p = puppet::puppet_paths(conf, &puppet::PuppetEnv::current(), puppet::puppet_ssldir)
                .map_err(|e| usage(format!("{}: the puppet security provider: {e}", conf.path.display())))?;
            client.tls = Some(TlsFiles { ca: Some(p.ca), cert: Some(p.cert), key: Some(p.key) });
        }
        None | Some("file") | Some("certmanager") => {
            let (cert, key, ca) = conf.x509_paths();
            if cert.is_some() || key.is_some() || ca.is_some() {
                client.tls = Some(TlsFiles { ca, cert, key });
            }
        }
        Some("choria") => {
            let (jwt, seed) = conf.ed25519_paths();
            let (Some(jwt), Some(seed)) = (jwt, seed) else {
                return Err(usage(format!(
                    "{}: the choria provider needs plugin.security.choria.token_file and plugin.security.choria.seed_file",
                    conf.path.display()
                )));
            };
            client.protocol = Version::V2;
            let id = Ed25519Identity::load(&jwt, &seed).map_err(Error::Fleet)?;
            client.caller_id = id.callerid.clone();
            client.security = Security::Ed25519(id);
            // A lone default collective is `choria` with this provider (config.normalize).
            if conf.collectives().is_empty() {
                client.collective = "choria".into();
            }
            let (_, _, ca) = conf.x509_paths();
            if ca.is_some() {
                client.tls = Some(TlsFiles { ca, cert: None, key: None });
            }
        }
        Some(other) => return Err(usage(format!("{}: unknown security provider {other:?}", conf.path.display()))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse_duration("8760h").unwrap(), super::MAX_DURATION);
        for bad in ["8761h", "1e300", "99999999999999999999999s", "1e19ms", "-0.5"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("between 0 and 31536000 seconds"), "{bad}: {e}");
        }
        assert_eq!(parse_duration("1e3s").unwrap(), Duration::from_secs(1000));
        assert!(parse_duration("inf").is_err() && parse_duration("NaN").is_err() && parse_duration("").is_err());
        assert!(super::parse_seconds(f64::MAX).is_err());
        assert!(super::parse_seconds(f64::NAN).is_err());
    }
}
