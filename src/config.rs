//! Turns command-line arguments into validated settings.

use std::time::Duration;

use crate::choria_conf::ChoriaConfig;
use crate::cli::{ConnectArgs, FilterArgs, SimArgs};
use crate::error::Error;
use crate::fleet::client::TlsFiles;
use crate::fleet::ddl::DdlRegistry;
use crate::fleet::discovery::DiscoveryOptions;
use crate::fleet::filter::Filter;
use crate::fleet::protocol::Security;
use crate::fleet::protocol::Version;
use crate::fleet::security::{Ed25519Identity, X509Identity};
use crate::fleet::ClientOptions;
use crate::sim::SimConfig;

/// Everything a command needs to reach a fleet.
#[derive(Debug, Clone)]
pub struct Settings {
    pub client: ClientOptions,
    pub ddl: DdlRegistry,
    /// `Some` when `--sim N` asks for an embedded broker and fleet.
    pub sim: Option<SimConfig>,
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

/// The largest `--sim-time-scale`: one real second per simulated second is real time, and
/// slowing the simulated world down further than 1000x is only ever a typo.
pub const MAX_TIME_SCALE: f64 = 1000.0;

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

fn rate(name: &str, v: Option<f64>) -> Result<f64, Error> {
    match v {
        None => Ok(0.0),
        Some(r) if (0.0..=1.0).contains(&r) => Ok(r),
        Some(r) => Err(usage(format!("--{name} {r}: must be between 0 and 1"))),
    }
}

impl Settings {
    /// Resolves connection and simulator options: the command line over the Choria client
    /// configuration file over defaults.
    pub fn resolve(c: &ConnectArgs, s: &SimArgs) -> Result<Settings, Error> {
        let mut client = ClientOptions::default();
        let conf = match (&c.config, c.sim) {
            (Some(path), _) => Some(ChoriaConfig::load(path).map_err(|e| usage(e.to_string()))?),
            (None, None) => ChoriaConfig::default_path()
                .map(|p| ChoriaConfig::load(&p))
                .transpose()
                .map_err(|e| usage(e.to_string()))?,
            (None, Some(_)) => None,
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
            client.protocol = match p {
                crate::cli::ProtocolArg::V1 => Version::V1,
                crate::cli::ProtocolArg::V2 => Version::V2,
            };
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
        tls.ca = c.tls_ca.clone().or(tls.ca);
        tls.cert = c.tls_cert.clone().or(tls.cert);
        tls.key = c.tls_key.clone().or(tls.key);
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
        let sim = match c.sim {
            Some(0) => return Err(usage("--sim needs at least 1 node")),
            // The simulated fleet serves the collective the client will use.
            Some(n) => Some(sim_config(n, s, Some(&client.collective))?),
            None => None,
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
            if matches!(client.security, Security::Ed25519(_)) && p == crate::cli::ProtocolArg::V1 {
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
                return Err(usage("x509 certificates sign protocol v1 requests; protocol v2 needs ed25519/JWT credentials, which are not supported yet"));
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
        if have_tls && sim.is_none() {
            client.tls = Some(tls);
        }
        if c.max_reconnects == 0 {
            return Err(usage("--max-reconnects must be at least 1"));
        }
        client.max_reconnects = c.max_reconnects;
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
    match conf.security_provider().as_deref() {
        None | Some("file") | Some("puppet") | Some("certmanager") => {
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

/// Simulator settings from `--sim-*` options; `collective` (from `--collective`) is the one
/// the simulated servers join.
/// The most nodes one simulator serves: a few GiB of memory at most, and well past the
/// 50,000 the performance targets use.
pub const MAX_SIM_NODES: usize = 500_000;

/// Builds the simulator's configuration from `--sim-*`.
pub fn sim_config(nodes: usize, s: &SimArgs, collective: Option<&str>) -> Result<SimConfig, Error> {
    if nodes == 0 || nodes > MAX_SIM_NODES {
        return Err(usage(format!(
            "{nodes} simulated nodes: the simulator serves 1 to {MAX_SIM_NODES} nodes (each takes memory in this process)"
        )));
    }
    let mut cfg = SimConfig { nodes, ..SimConfig::default() };
    if let Some(c) = collective {
        if c.is_empty() || c.contains(['.', '*', '>']) || c.contains(char::is_whitespace) {
            return Err(usage(format!("--collective {c:?}: not a collective name")));
        }
        if c == "provisioning" {
            return Err(usage(
                "--collective provisioning: simulated nodes in provisioning mode are there already; \
                 target them with -T provisioning",
            ));
        }
        cfg.collective = c.to_string();
    }
    if let Some(seed) = s.seed {
        cfg.seed = seed;
    }
    if let Some(t) = &s.token {
        cfg.token = t.clone();
    }
    if let Some(ts) = s.time_scale {
        if !(ts.is_finite() && (0.0..=MAX_TIME_SCALE).contains(&ts)) {
            return Err(usage(format!("--sim-time-scale {ts}: must be a number between 0 and {MAX_TIME_SCALE}")));
        }
        cfg.time_scale = ts;
    }
    cfg.fail_rate = rate("sim-fail-rate", s.fail_rate)?;
    cfg.silent_rate = rate("sim-silent-rate", s.silent_rate)?;
    cfg.slow_rate = rate("sim-slow-rate", s.slow_rate)?;
    if let Some(d) = &s.slow_delay {
        cfg.slow_delay = parse_duration(d).map_err(|e| usage(format!("--sim-slow-delay: {e}")))?;
    }
    if let Some(d) = &s.auto_provision {
        cfg.auto_provision = Some(parse_duration(d).map_err(|e| usage(format!("--sim-auto-provision: {e}")))?);
    }
    cfg.fail_nodes = s.fail_nodes.clone();
    cfg.silent_nodes = s.silent_nodes.clone();
    cfg.slow_nodes = s.slow_nodes.clone();
    cfg.stuck_nodes = s.stuck_nodes.clone();
    if let Some(ca) = &s.ca {
        cfg.secure_ca =
            Some(std::fs::read_to_string(ca).map_err(|e| usage(format!("--sim-ca {}: {e}", ca.display())))?);
    }
    if let Some(n) = s.provisioners {
        cfg.provisioners = n;
    }
    if let Some(site) = &s.site {
        cfg.site = site.clone();
    }
    Ok(cfg)
}

/// Builds discovery options from filter flags.
pub fn discovery_options(f: &FilterArgs) -> Result<DiscoveryOptions, Error> {
    let mut filter = Filter::default();
    for fact in &f.fact {
        filter.add_fact(fact).map_err(Error::Fleet)?;
    }
    filter.cf_class = f.class.clone();
    filter.agent = f.agent.clone();
    filter.identity = f.identity.clone();
    for c in &f.compound {
        filter.add_compound(c);
    }
    filter.validate().map_err(Error::Fleet)?;
    let timeout = match f.discovery_timeout {
        None => None,
        Some(t) if t > 0.0 => Some(parse_seconds(t).map_err(|e| usage(format!("--discovery-timeout: {e}")))?),
        Some(t) => return Err(usage(format!("--discovery-timeout {t}: must be a positive number of seconds"))),
    };
    Ok(DiscoveryOptions { filter, collective: f.target.clone(), timeout, window: f.discovery_window, rpc_agent: None })
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
