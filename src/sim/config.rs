//! How a simulated fleet behaves: its size, seed, token, faults and timing.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::Rng;

use super::node::Fault;

/// How the simulated fleet behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// How many servers to simulate.
    pub nodes: usize,
    /// Seeds every random choice (facts, faults, splays, the Provisioner's timing), so a
    /// seeded run can be repeated.
    pub seed: u64,
    /// The provisioning token (`cht`); empty accepts any token.
    pub token: String,
    /// Real seconds per simulated second of splay (0.01 makes a 10 s splay take 100 ms).
    pub time_scale: f64,
    /// Share of nodes that answer mutating actions with an error.
    pub fail_rate: f64,
    /// Share of nodes that answer discovery but never RPC.
    pub silent_rate: f64,
    /// Share of nodes that answer RPC after `slow_delay`.
    pub slow_rate: f64,
    /// How long a slow node takes to answer (real time).
    pub slow_delay: Duration,
    /// Identities forced into a fault, on top of the rates.
    pub fail_nodes: Vec<String>,
    /// Identities that never answer RPC.
    pub silent_nodes: Vec<String>,
    /// Identities that answer RPC after `slow_delay`.
    pub slow_nodes: Vec<String>,
    /// Nodes that go down on restart or reprovision and never come back.
    pub stuck_nodes: Vec<String>,
    /// Nodes in provisioning mode return to service after this long (real time).
    pub auto_provision: Option<Duration>,
    /// The normal collective.
    pub collective: String,
    /// The domain of every node's identity.
    pub domain: String,
    /// The Choria version every node reports.
    pub version: String,
    /// Reported as `upgradable` by inventory.
    pub upgradable: bool,
    /// Provisioner candidates campaigning for leadership (0: no simulated Provisioner).
    pub provisioners: usize,
    /// Whether the Provisioner campaigns in the `provisioner` election (its config's
    /// `leader_election`). Off, one instance provisions on its own and nobody campaigns.
    pub leader_election: bool,
    /// The `site` label of the Provisioner's metrics.
    pub site: String,
    /// Secure mode: the CA (PEM) whose certificates may sign requests. Servers then check
    /// signatures, certificate chain and names like a real `file`-provider server, and stay
    /// silent to requests that fail.
    pub secure_ca: Option<String>,
    /// Secure mode for protocol v2: the trusted issuer's hex ed25519 public key.
    pub secure_issuer: Option<String>,
    /// Secure mode for protocol v2 with org issuers (go-choria's `plugin.security.issuer.names`
    /// and `plugin.security.issuer.<name>.public`): the hex ed25519 public key of each issuer
    /// by name. When set, a caller token must carry `ou` naming one of them and must be
    /// signed by that one; [`SimConfig::secure_issuer`] is then not used, as in go-choria.
    /// Library only (no `--sim-*` option yet).
    pub secure_org_issuers: std::collections::BTreeMap<String, String>,
    /// TLS to the broker (CA, client certificate and key), when it requires it.
    pub tls: Option<crate::fleet::client::TlsFiles>,
    /// A twin of a real fleet: its nodes come from an inventory file, not from the seed
    /// (`nodes` is then their number; `domain` and `version` are not used, save as the
    /// version of nodes whose file gives none).
    pub twin: Option<std::sync::Arc<super::twin::Twin>>,
    /// Say on stderr when the broker connection breaks and comes back (`fleetbook sim`, where
    /// the broker is someone else's; not for the embedded broker we stop ourselves).
    pub announce_link: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 50,
            seed: 1,
            token: "s3cret".into(),
            time_scale: 1.0,
            fail_rate: 0.0,
            silent_rate: 0.0,
            slow_rate: 0.0,
            slow_delay: Duration::from_secs(1),
            fail_nodes: Vec::new(),
            silent_nodes: Vec::new(),
            slow_nodes: Vec::new(),
            stuck_nodes: Vec::new(),
            auto_provision: None,
            collective: "mcollective".into(),
            domain: "example.net".into(),
            version: "0.29.4".into(),
            upgradable: true,
            provisioners: 3,
            leader_election: true,
            site: "simulated".into(),
            secure_ca: None,
            secure_issuer: None,
            secure_org_issuers: Default::default(),
            tls: None,
            twin: None,
            announce_link: false,
        }
    }
}

impl SimConfig {
    /// `secs` of simulated time in real time.
    pub(crate) fn scaled(&self, secs: f64) -> Duration {
        // A request's splay is the client's to choose: saturate rather than panic.
        Duration::try_from_secs_f64((secs * self.time_scale).max(0.0)).unwrap_or(Duration::MAX)
    }

    /// The fault node `id` gets: a listed fault first (by identity or short name), else one
    /// drawn by the rates. Draws from `rng` the same way either way, so listing a node does
    /// not change what the others get.
    pub(crate) fn fault_for(&self, id: &str, rng: &mut SmallRng) -> Fault {
        let listed = |l: &[String]| l.iter().any(|x| x == id || x == id.split('.').next().unwrap_or(id));
        let r: f64 = rng.gen();
        let code = if rng.gen_bool(0.5) { 1 } else { 5 };
        if listed(&self.silent_nodes) {
            Fault::Silent
        } else if listed(&self.fail_nodes) {
            Fault::Failing(code)
        } else if listed(&self.slow_nodes) {
            Fault::Slow
        } else if listed(&self.stuck_nodes) {
            Fault::Stuck
        } else if r < self.silent_rate {
            Fault::Silent
        } else if r < self.silent_rate + self.fail_rate {
            Fault::Failing(code)
        } else if r < self.silent_rate + self.fail_rate + self.slow_rate {
            Fault::Slow
        } else {
            Fault::None
        }
    }
}
