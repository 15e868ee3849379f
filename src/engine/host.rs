//! The host side of a run, shared by every registered function: how the run was asked to
//! behave ([`RunSettings`], [`Limits`]), what it has counted so far ([`Totals`]) and the
//! [`Host`] that holds the fleet, the display and the run's state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rhai::{Dynamic, EvalAltResult, Position};

use crate::fleet::Fleet;
use crate::interrupt::Interrupt;
use crate::journal::replay::{CallRecord, Replay, ResumeFlags};
use crate::progress::Reporter;
use crate::prompt::Prompter;

/// Limits that keep a runbook from running away.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Operations a run may take before it is stopped.
    pub max_operations: u64,
    /// How deeply functions may call each other.
    pub max_call_levels: usize,
    /// The longest string, in bytes.
    pub max_string_size: usize,
    /// The most items in one array.
    pub max_array_size: usize,
    /// The most entries in one map.
    pub max_map_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 50_000_000,
            max_call_levels: 64,
            max_string_size: 4 << 20,
            max_array_size: 1_000_000,
            max_map_size: 1_000_000,
        }
    }
}

/// How a run was asked to behave.
#[derive(Debug, Clone, Default)]
pub struct RunSettings {
    /// `--dry-run`: only read-only calls go to the fleet; the rest is planned.
    pub dry_run: bool,
    /// `--yes`: confirmations are given.
    pub yes: bool,
    /// `--arg k=v` values.
    pub args: BTreeMap<String, String>,
    /// The engine's safety limits.
    pub limits: Limits,
    /// Directories `import` looks in after the runbook's own.
    pub lib_dirs: Vec<PathBuf>,
    /// Values `secret(NAME)` falls back to when the environment has none: `--sim` puts the
    /// simulated fleet's provisioning token under `FLEETBOOK_PROVISION_TOKEN`.
    pub secret_defaults: BTreeMap<String, String>,
    /// Defaults `arg(name, ...)` uses when `--arg` does not give one: `--sim` announces the
    /// simulated Provisioner's `metrics_url` this way.
    pub arg_defaults: BTreeMap<String, String>,
    /// The REPL: every mutating call asks first (shutdown even with --yes).
    pub confirm_mutations: bool,
    /// `run --nodes FILE`: the node list a runbook's discovery uses unless its map names a
    /// `dm` of its own.
    pub nodes: Option<std::sync::Arc<Vec<String>>>,
}

/// Node counts over a whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Nodes that answered OK.
    pub ok: usize,
    /// Nodes that answered with a failure or a malformed reply, or missed an awaited event.
    pub failed: usize,
    /// Nodes that did not answer.
    pub no_reply: usize,
    /// Sent, but whether they acted is not known (Ctrl-C, a broken connection).
    pub unknown: usize,
}

/// Everything the runbook API reaches: the fleet, the display, the settings and the
/// run's state. Shared by every registered function.
pub struct Host {
    /// The runtime the script thread blocks on for fleet calls.
    pub rt: tokio::runtime::Handle,
    /// The connected fleet; `None` for runs that only check.
    pub fleet: Option<Fleet>,
    /// Where messages and run events go.
    pub reporter: Reporter,
    /// Ctrl-C, both levels.
    pub interrupt: Interrupt,
    /// How the run was asked to behave.
    pub settings: RunSettings,
    /// Asks the yes/no questions (the terminal, or a script in tests).
    pub prompter: Box<dyn Prompter>,
    /// Set when a guardrail stopped the run; the reason.
    pub stop: Mutex<Option<String>>,
    /// Set when the broker was lost; the reason.
    pub lost: Mutex<Option<String>>,
    /// Node counts so far.
    pub totals: Mutex<Totals>,
    /// Identities of the latest discovery (the REPL completes them).
    pub last_nodes: Mutex<Vec<String>>,
    /// Run-wide governor leases (`governor()`), given back when the run ends.
    pub leases: Mutex<Vec<crate::fleet::governor::Lease>>,
    /// How many rollouts (`rpc_batch` calls) the run has started: their ordinals.
    calls: Mutex<usize>,
    /// Resuming (`--resume`): the journal of the run's earlier attempts, replayed.
    replay: Mutex<Option<Replay>>,
}

impl Host {
    /// A host with a fresh run state (no stop, zero totals, no discovery yet).
    pub fn new(
        rt: tokio::runtime::Handle,
        fleet: Option<Fleet>,
        reporter: Reporter,
        interrupt: Interrupt,
        settings: RunSettings,
        prompter: Box<dyn Prompter>,
    ) -> Arc<Host> {
        Arc::new(Host {
            rt,
            fleet,
            reporter,
            interrupt,
            settings,
            prompter,
            stop: Mutex::new(None),
            lost: Mutex::new(None),
            totals: Mutex::new(Totals::default()),
            last_nodes: Mutex::new(Vec::new()),
            leases: Mutex::new(Vec::new()),
            calls: Mutex::new(0),
            replay: Mutex::new(None),
        })
    }

    /// Makes this run a resumed one: journaled effects are replayed, not repeated.
    pub fn resume(&self, replay: Replay) {
        *crate::lock(&self.replay) = Some(replay);
    }

    /// Resuming: asks the replay for the next journaled effect; `None` when not resuming.
    pub(crate) fn replaying<T>(&self, f: impl FnOnce(&mut Replay) -> T) -> Option<T> {
        crate::lock(&self.replay).as_mut().map(f)
    }

    /// The next rollout's ordinal, with its journaled record and the resume flags when the
    /// run is resumed and got that far before.
    pub(crate) fn next_call(&self) -> (usize, Option<(CallRecord, ResumeFlags)>) {
        let mut n = crate::lock(&self.calls);
        *n += 1;
        let was = crate::lock(&self.replay)
            .as_ref()
            .and_then(|r| r.record.calls.get(*n - 1).map(|c| (c.clone(), r.flags.clone())));
        (*n, was)
    }

    /// The fleet, or an error for runs that have none (lint-only).
    pub fn fleet(&self) -> Result<&Fleet, Box<EvalAltResult>> {
        self.fleet.as_ref().ok_or_else(|| runtime_error("invalid", "no fleet connected"))
    }

    /// Stops the run: an error no `try/catch` can swallow, with exit code 3.
    pub fn guardrail(&self, reason: impl Into<String>) -> Box<EvalAltResult> {
        let reason = reason.into();
        let mut stop = crate::lock(&self.stop);
        if stop.is_none() {
            *stop = Some(reason.clone());
        }
        EvalAltResult::ErrorTerminated(Dynamic::from(reason), Position::NONE).into()
    }

    /// Forgets a guardrail stop (the REPL goes on after one).
    pub fn clear_stop(&self) {
        *crate::lock(&self.stop) = None;
        *crate::lock(&self.lost) = None;
    }

    /// Ends the run because the broker is gone: like a guardrail, a script cannot catch it,
    /// and the run exits 4.
    pub fn broker_lost(&self, reason: impl Into<String>) -> Box<EvalAltResult> {
        let reason = reason.into();
        crate::lock(&self.lost).get_or_insert_with(|| reason.clone());
        EvalAltResult::ErrorTerminated(Dynamic::from(reason), Position::NONE).into()
    }

    /// Why the broker was lost, if it was.
    pub fn lost(&self) -> Option<String> {
        crate::lock(&self.lost).clone()
    }

    /// The guardrail reason, if one stopped the run.
    pub fn stopped(&self) -> Option<String> {
        crate::lock(&self.stop).clone()
    }

    /// Adds a batch's counts to the run totals.
    pub fn count(&self, ok: usize, failed: usize, no_reply: usize, unknown: usize) {
        let mut t = crate::lock(&self.totals);
        t.ok += ok;
        t.failed += failed;
        t.no_reply += no_reply;
        t.unknown += unknown;
    }

    /// The totals so far.
    pub fn totals(&self) -> Totals {
        *crate::lock(&self.totals)
    }
}

/// What the functions registered into Rhai return.
pub(crate) type Res<T> = Result<T, Box<EvalAltResult>>;

/// A catchable runtime error carrying `#{kind, message}`, so scripts can branch on `kind`.
pub fn runtime_error(kind: &str, message: impl Into<String>) -> Box<EvalAltResult> {
    let mut m = rhai::Map::new();
    m.insert("kind".into(), Dynamic::from(kind.to_string()));
    m.insert("message".into(), Dynamic::from(message.into()));
    EvalAltResult::ErrorRuntime(Dynamic::from_map(m), Position::NONE).into()
}
