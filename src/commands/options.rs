//! The options every command shares, from clap types to plain, validated ones: the one
//! place where the `cli` types of the global and the common flags are read, so that nothing
//! below `commands` sees clap types.

use crate::cli::{ConnectArgs, FilterArgs, ProtocolArg, SimArgs};
use crate::config::{self, ConnectOptions, Settings, SimOptions};
use crate::error::Error;
use crate::fleet::client::TlsFiles;
use crate::fleet::discovery::DiscoveryOptions;
use crate::fleet::filter::Filter;
use crate::fleet::protocol::Version;

fn usage(message: impl Into<String>) -> Error {
    Error::Usage { message: message.into() }
}

/// Resolves how to reach the fleet: the connection and simulator flags over the Choria client
/// configuration over defaults.
pub(crate) fn settings(connect: &ConnectArgs, sim: &SimArgs) -> Result<Settings, Error> {
    Settings::resolve(&connect_options(connect), &sim_options(sim))
}

/// The connection flags as plain values.
fn connect_options(c: &ConnectArgs) -> ConnectOptions {
    ConnectOptions {
        servers: c.servers.clone(),
        collective: c.collective.clone(),
        protocol: c.protocol.map(|p| match p {
            ProtocolArg::V1 => Version::V1,
            ProtocolArg::V2 => Version::V2,
        }),
        identity: c.identity.clone(),
        caller_id: c.caller_id.clone(),
        config: c.config.clone(),
        tls: TlsFiles { ca: c.tls_ca.clone(), cert: c.tls_cert.clone(), key: c.tls_key.clone() },
        jwt: c.jwt.clone(),
        seed: c.seed.clone(),
        creds: c.creds.clone(),
        user: c.user.clone(),
        password: c.password.clone(),
        insecure: c.insecure,
        max_reconnects: c.max_reconnects,
        ddl_dirs: c.ddl_dirs.clone(),
        sim: c.sim,
    }
}

/// The `--sim-*` flags as plain values; they are checked when a simulated fleet is asked for.
pub(crate) fn sim_options(s: &SimArgs) -> SimOptions {
    SimOptions {
        ca: s.ca.clone(),
        seed: s.seed,
        token: s.token.clone(),
        time_scale: s.time_scale,
        fail_rate: s.fail_rate,
        silent_rate: s.silent_rate,
        slow_rate: s.slow_rate,
        slow_delay: s.slow_delay.clone(),
        fail_nodes: s.fail_nodes.clone(),
        silent_nodes: s.silent_nodes.clone(),
        slow_nodes: s.slow_nodes.clone(),
        stuck_nodes: s.stuck_nodes.clone(),
        provisioners: s.provisioners,
        site: s.site.clone(),
        auto_provision: s.auto_provision.clone(),
    }
}

/// Builds discovery options from the filter flags.
pub(crate) fn discovery(f: &FilterArgs) -> Result<DiscoveryOptions, Error> {
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
        Some(t) if t > 0.0 => Some(config::parse_seconds(t).map_err(|e| usage(format!("--discovery-timeout: {e}")))?),
        Some(t) => return Err(usage(format!("--discovery-timeout {t}: must be a positive number of seconds"))),
    };
    Ok(DiscoveryOptions { filter, collective: f.target.clone(), timeout, window: f.discovery_window, rpc_agent: None })
}
