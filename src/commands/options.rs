//! The options every command shares, from clap types to plain, validated ones: the one
//! place where the `cli` types of the global and the common flags are read. Each command
//! checks its own flags in its `from_cli`; nothing below `commands` sees clap types.

use std::path::Path;

use crate::cli::{ConnectArgs, EngineArgs, FilterArgs, ProtocolArg, SimArgs};
use crate::config::{self, ConnectOptions, Settings, SimOptions};
use crate::engine::RunSettings;
use crate::error::Error;
use crate::fleet::client::TlsFiles;
use crate::fleet::discovery::DiscoveryOptions;
use crate::fleet::filter::Filter;
use crate::fleet::protocol::Version;

/// The environment variable the shipped runbooks read the provisioning token from.
pub(crate) const PROVISION_TOKEN_ENV: &str = "FLEETBOOK_PROVISION_TOKEN";

fn usage(message: impl Into<String>) -> Error {
    Error::Usage { message: message.into() }
}

/// Resolves how to reach the fleet: the connection and simulator flags over the Choria client
/// configuration over defaults.
pub(super) fn settings(connect: &ConnectArgs, sim: &SimArgs) -> Result<Settings, Error> {
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
        identity: c.client_identity.clone(),
        caller_id: c.caller_id.clone(),
        config: c.config.clone(),
        tls: TlsFiles { ca: c.tls_ca.clone(), cert: c.tls_cert.clone(), key: c.tls_key.clone() },
        jwt: c.jwt.clone(),
        seed: c.seed.clone(),
        creds: c.creds.clone(),
        user: c.user.clone(),
        password: c.password.clone(),
        insecure: c.insecure,
        fips: c.fips,
        max_reconnects: c.max_reconnects,
        ddl_dirs: c.ddl_dirs.clone(),
        sim: c.sim,
        sim_from: c.sim_from.clone(),
    }
}

/// The `--sim-*` flags as plain values; they are checked when a simulated fleet is asked for.
pub(super) fn sim_options(s: &SimArgs) -> SimOptions {
    SimOptions {
        ca: s.ca.clone(),
        issuer: s.issuer.clone(),
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
        no_leader_election: s.no_leader_election,
        site: s.site.clone(),
        auto_provision: s.auto_provision.clone(),
    }
}

/// Builds discovery options from the filter, source and limit flags; node lists and
/// inventory files are read and checked here.
pub(super) fn discovery(f: &FilterArgs) -> Result<DiscoveryOptions, Error> {
    let mut filter = Filter::default();
    for fact in &f.fact {
        filter.add_fact(fact).map_err(Error::Fleet)?;
    }
    filter.cf_class = f.class.clone();
    filter.agent = f.agent.clone();
    filter.identity = f.identity.clone();
    for w in &f.with {
        filter.add_combined(w).map_err(Error::Fleet)?;
    }
    for c in &f.compound {
        filter.add_compound(c);
    }
    filter.validate().map_err(Error::Fleet)?;
    let source = super::sources::source(f, &filter)?;
    let limit = super::sources::limit(f)?;
    let timeout = match f.discovery_timeout {
        None => None,
        Some(t) if t > 0.0 => Some(config::parse_seconds(t).map_err(|e| usage(format!("--discovery-timeout: {e}")))?),
        Some(t) => return Err(usage(format!("--discovery-timeout {t}: must be a positive number of seconds"))),
    };
    let d = DiscoveryOptions {
        filter,
        collective: f.target.clone(),
        timeout,
        window: f.discovery_window,
        rpc_agent: None,
        source,
        limit,
    };
    d.validate().map_err(Error::Fleet)?;
    Ok(d)
}

/// Engine settings from the command line and `FLEETBOOK_LIB`.
pub(super) fn engine(e: &EngineArgs) -> RunSettings {
    let mut s = RunSettings::default();
    if let Some(n) = e.max_operations {
        s.limits.max_operations = n;
    }
    s.lib_dirs = e.lib.clone();
    if let Some(env) = std::env::var_os("FLEETBOOK_LIB") {
        s.lib_dirs.extend(std::env::split_paths(&env));
    }
    s
}

/// Engine settings for a command that runs against `settings`: a simulated fleet's
/// provisioning token is the default of [`PROVISION_TOKEN_ENV`].
pub(super) fn engine_for(e: &EngineArgs, settings: &Settings) -> RunSettings {
    let mut rs = engine(e);
    if let Some(sim) = &settings.sim {
        rs.secret_defaults.insert(PROVISION_TOKEN_ENV.into(), sim.token.clone());
    }
    rs
}

/// A duration flag such as `--timeout 30s`; `flag` names it in the error.
pub(super) fn duration(flag: &str, value: &str) -> Result<std::time::Duration, Error> {
    config::parse_duration(value).map_err(|e| usage(format!("{flag}: {e}")))
}

/// The provisioning token `req` uses when no `token=` input is given: from `--token-file`,
/// else `$FLEETBOOK_PROVISION_TOKEN`, else the simulated fleet's. A token given both as an
/// input and as a file is refused.
pub(super) fn provision_token(
    token_file: Option<&Path>,
    inputs: &[String],
    settings: &Settings,
) -> Result<Option<String>, Error> {
    if token_file.is_some() && inputs.iter().any(|i| i.starts_with("token=")) {
        return Err(usage("the token is given twice (token= and --token-file); give it once"));
    }
    Ok(match token_file {
        Some(path) => Some(read_token_file(path)?),
        None => std::env::var(PROVISION_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| settings.sim.as_ref().map(|s| s.token.clone())),
    })
}

/// Reads a provisioning token from a file: the first line, trimmed. The error names the
/// file, never its content.
fn read_token_file(path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("--token-file {}: {e}", path.display())))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(usage(format!("--token-file {}: the file is empty", path.display())));
    }
    Ok(token)
}

/// The journal flags: `None` with `--no-journal`.
pub(crate) fn journal(a: &crate::cli::JournalArgs) -> Result<Option<crate::journal::JournalOptions>, Error> {
    if a.no_journal {
        return Ok(None);
    }
    if !(1..=5).contains(&a.journal_replicas) {
        return Err(Error::Usage {
            message: format!("--journal-replicas {}: must be 1 to 5 (JetStream's limit)", a.journal_replicas),
        });
    }
    Ok(Some(crate::journal::JournalOptions { replicas: a.journal_replicas, ..Default::default() }))
}

/// The `--resume` flags: `None` without `--resume`. Refused with `--dry-run` (a dry run
/// changes nothing, so there is nothing to continue) and with `--sim` (the embedded broker's
/// journal dies with the process that ran it).
pub(crate) fn resume(
    a: &crate::cli::JournalArgs,
    dry_run: bool,
    sim: bool,
) -> Result<Option<super::resume::ResumeOptions>, Error> {
    let Some(id) = &a.resume else { return Ok(None) };
    let id =
        crate::journal::RunId::parse(id).map_err(|message| Error::Usage { message: format!("--resume: {message}") })?;
    if dry_run {
        return Err(Error::Usage {
            message: "--resume and --dry-run: a dry run of a resumed run is not supported".into(),
        });
    }
    if sim {
        return Err(Error::Usage {
            message: "--resume cannot work with --sim: the embedded broker's journal was deleted when the run's process ended; resuming needs a broker that outlives the run: `fleetbook sim` in another terminal (then --server URL), or a real broker".into(),
        });
    }
    let flags = crate::journal::replay::ResumeFlags {
        retry_failed: a.retry_failed,
        resend_unknown: a.resend_unknown,
        force: a.force,
    };
    Ok(Some(super::resume::ResumeOptions { id, flags }))
}

/// `req`'s topology flags as the planner takes them.
pub(crate) fn topology(a: &crate::cli::TopologyArgs) -> Result<crate::rollout::topology::Topology, Error> {
    use crate::rollout::policy::Amount;
    let amount = |flag: &str, v: &Option<String>| -> Result<Option<Amount>, Error> {
        v.as_deref()
            .map(|s| Amount::parse(s).map_err(|e| Error::Usage { message: format!("--{flag}: {e}") }))
            .transpose()
    };
    Ok(crate::rollout::topology::Topology {
        spread_by: a.spread_by.clone(),
        max_per_group: amount("max-per-group", &a.max_per_group)?,
        group_by: a.group_by.clone(),
        group_order: a.group_order.clone(),
        max_group_failures: amount("max-group-failures", &a.max_group_failures)?,
        last: a.last.clone(),
        leaders_last: a.leaders_last,
    })
}
