//! The simulated fleet's settings (`--sim N` and `sim`), from the `--sim-*` options.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{parse_duration, usage};
use crate::error::Error;
use crate::sim::{SimConfig, Twin};

/// The most nodes one simulator serves: a few GiB of memory at most, and well past the
/// 50,000 the performance targets use.
pub(crate) const MAX_SIM_NODES: usize = 500_000;

/// The largest `--sim-time-scale`: one real second per simulated second is real time, and
/// slowing the simulated world down further than 1000x is only ever a typo.
pub(crate) const MAX_TIME_SCALE: f64 = 1000.0;

/// The simulated fleet's behaviour as given on the command line; checked by [`sim_config`]
/// only when a simulated fleet is asked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct SimOptions {
    /// Secure mode (protocol v1): the CA file whose certificates the servers trust.
    pub(crate) ca: Option<PathBuf>,
    /// Secure mode (protocol v2): the trusted issuer's ed25519 public key, in hex.
    pub(crate) issuer: Option<String>,
    /// Seed for facts and faults.
    pub(crate) seed: Option<u64>,
    /// Provisioning token the servers expect ("" accepts any).
    pub(crate) token: Option<String>,
    /// Real seconds per simulated second of splay.
    pub(crate) time_scale: Option<f64>,
    /// Fraction of nodes that fail mutating actions.
    pub(crate) fail_rate: Option<f64>,
    /// Fraction of nodes that answer discovery but never RPC.
    pub(crate) silent_rate: Option<f64>,
    /// Fraction of nodes that answer RPC late.
    pub(crate) slow_rate: Option<f64>,
    /// How late slow nodes answer, as written (e.g. `3s`).
    pub(crate) slow_delay: Option<String>,
    /// Nodes that fail.
    pub(crate) fail_nodes: Vec<String>,
    /// Nodes that stay silent to RPC.
    pub(crate) silent_nodes: Vec<String>,
    /// Nodes that answer late.
    pub(crate) slow_nodes: Vec<String>,
    /// Nodes that go down on restart or reprovision and never come back.
    pub(crate) stuck_nodes: Vec<String>,
    /// Simulated Provisioner candidates.
    pub(crate) provisioners: Option<usize>,
    /// The simulated Provisioner runs without leader election.
    pub(crate) no_leader_election: bool,
    /// The site label of the simulated Provisioner's metrics.
    pub(crate) site: Option<String>,
    /// Return reprovisioned nodes to service after this long, as written (e.g. `5s`).
    pub(crate) auto_provision: Option<String>,
}

fn rate(name: &str, v: Option<f64>) -> Result<f64, Error> {
    match v {
        None => Ok(0.0),
        Some(r) if (0.0..=1.0).contains(&r) => Ok(r),
        Some(r) => Err(usage(format!("--{name} {r}: must be between 0 and 1"))),
    }
}

/// Builds and checks the simulator's configuration from `--sim-*`; `collective` (from
/// `--collective` or the Choria configuration) is the one the simulated servers join.
pub(crate) fn sim_config(nodes: usize, s: &SimOptions, collective: Option<&str>) -> Result<SimConfig, Error> {
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
    if let Some(issuer) = &s.issuer {
        if crate::fleet::jwt::verifying_key(issuer).is_none() {
            return Err(usage(format!("--sim-issuer {issuer:?}: not an ed25519 public key (64 hex characters)")));
        }
        cfg.secure_issuer = Some(issuer.clone());
    }
    if let Some(n) = s.provisioners {
        cfg.provisioners = n;
    }
    cfg.leader_election = !s.no_leader_election;
    if let Some(site) = &s.site {
        cfg.site = site.clone();
    }
    Ok(cfg)
}

/// The configuration of a twin of the fleet the inventory file at `path` describes, with
/// the `--sim-*` behaviour. `collective` is the client's; unless it was `given` (by
/// `--collective` or a Choria configuration), a twin none of whose nodes serve it uses the
/// collective most of its nodes serve, so that discovery finds them.
pub(crate) fn twin_config(path: &Path, s: &SimOptions, collective: &str, given: bool) -> Result<SimConfig, Error> {
    let shown = path.display().to_string();
    let twin = Twin::read(&shown).map_err(|e| usage(format!("--sim-from: {e}")))?;
    let collective = match twin.most_served() {
        Some(c) if !given && twin.nodes.iter().all(|n| !n.collectives.iter().any(|x| x == collective)) => c,
        _ => collective.to_string(),
    };
    let mut cfg =
        sim_config(twin.nodes.len(), s, Some(&collective)).map_err(|e| usage(format!("--sim-from {shown}: {e}")))?;
    cfg.twin = Some(Arc::new(twin));
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::{sim_config, SimOptions};

    #[test]
    fn sim_issuer_turns_on_secure_mode_for_v2() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let issuer = hex::encode(key.as_bytes());
        let s = SimOptions { issuer: Some(issuer.clone()), ..SimOptions::default() };
        assert_eq!(sim_config(3, &s, None).unwrap().secure_issuer, Some(issuer));
        assert_eq!(sim_config(3, &SimOptions::default(), None).unwrap().secure_issuer, None);
        let bad = SimOptions { issuer: Some("abc".into()), ..SimOptions::default() };
        let e = sim_config(3, &bad, None).unwrap_err().to_string();
        assert!(e.contains("--sim-issuer") && e.contains("64 hex characters"), "{e}");
    }
}
