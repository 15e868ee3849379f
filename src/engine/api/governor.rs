//! `governor(name, opts)`: one lease on a Choria Governor for the rest of the run, so runs
//! sharing a governor of capacity N never run more than N at once. `rpc_batch`'s `governor`
//! option (per-node leases around each batch) is in the rollout driver.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Engine, FuncRegistration, Map};

use super::{runtime_error, Host, Options, Res};
use crate::fleet::governor::{self, GovernorError, GovernorEvent};
use crate::progress::RunEvent;

/// How long a lease is waited for unless `max_wait` says otherwise.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// The option keys of `governor`; `check` lints against the same list.
pub(crate) const KEYS: [&str; 1] = ["max_wait"];

/// Who holds leases this process takes, as `governor view` shows it.
pub(crate) fn holder() -> String {
    let (user, host) = crate::journal::who();
    format!("fleetbook {user}@{host} pid {}", std::process::id())
}

/// Registers `governor`.
pub(crate) fn register(engine: &mut Engine, host: &Arc<Host>) {
    let h = host.clone();
    FuncRegistration::new("governor")
        .with_params_info(["name: &str", "opts: Map", "()"])
        .with_comments(["/// Takes one lease on Choria Governor `name` for the rest of the run, waiting up to\n/// opts.max_wait (default 5m) for a free slot; past it the run stops (exit 3). The lease\n/// is given back when the run ends; a crashed run's lease expires by the governor's max age."])
        .register_into_engine(engine, move |name: &str, opts: Map| take(&h, name, &opts));
    let h = host.clone();
    FuncRegistration::new("governor")
        .with_params_info(["name: &str", "()"])
        .with_comments(["/// Takes one lease on Choria Governor `name` for the rest of the run (max_wait 5m)."])
        .register_into_engine(engine, move |name: &str| take(&h, name, &Map::new()));
}

fn take(host: &Host, name: &str, opts: &Map) -> Res<()> {
    let o = Options::new(opts, "governor", &KEYS)?;
    let max_wait = o.duration("max_wait")?.unwrap_or(DEFAULT_WAIT);
    let fleet = host.fleet()?;
    if host.settings.dry_run {
        host.reporter.say(&format!("dry-run: would take a lease on governor {name}"));
        return Ok(());
    }
    host.reporter.emit(RunEvent::GovernorWait { governor: name.to_string(), batch: None, leases: 1 });
    let started = Instant::now();
    let lease = host.rt.block_on(governor::acquire(fleet, name, &holder(), max_wait, &host.interrupt.hard()));
    match lease {
        Ok(l) => {
            let waited_ms = started.elapsed().as_millis() as u64;
            host.rt.block_on(governor::announce_runbook(fleet, name, l.seq(), GovernorEvent::Enter));
            host.reporter.emit(RunEvent::Governor { governor: name.to_string(), batch: None, leases: 1, waited_ms });
            crate::lock(&host.leases).push(l);
            Ok(())
        }
        Err(GovernorError::Cancelled { .. }) => {
            Err(host.guardrail("interrupted (Ctrl-C) waiting for a governor lease"))
        }
        Err(e @ GovernorError::WaitExpired { .. }) => {
            host.rt.block_on(governor::announce_runbook(fleet, name, 0, GovernorEvent::Timeout));
            Err(host.guardrail(e.to_string()))
        }
        Err(GovernorError::Fleet(e)) => Err(super::fleet_error(host, e)),
        Err(e) => Err(runtime_error(e.kind().as_str(), e.to_string())),
    }
}
