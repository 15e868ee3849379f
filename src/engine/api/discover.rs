//! `discover`: which nodes match a filter. `rpc_batch` reads its `filter` option here too.

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, FuncRegistration, Map};

use super::{fleet_error, refuse_masked_text, runtime_error, Host, Options, Res};
use crate::engine::convert::strings;
use crate::fleet::discovery::DiscoveryOptions;
use crate::fleet::filter::{parse_fact, Filter};
use crate::fleet::FleetError;
use crate::progress::RunEvent;

/// The option keys `discover` takes (and `rpc_batch`'s `filter`); `check` lints against them.
pub(crate) const KEYS: [&str; 9] =
    ["fact", "class", "agent", "identity", "compound", "collective", "timeout", "window", "min"];

/// Registers `discover(filter)` and `discover()`.
pub(crate) fn register(engine: &mut Engine, host: &Arc<Host>) {
    let h = host.clone();
    FuncRegistration::new("discover")
        .with_params_info(["filter: Map", "Array"])
        .with_comments(["/// Discovers the nodes matching `filter` and returns their identities, sorted.\n/// Keys: fact (\"name=value\" or a list), class, agent, identity (exact or /regex/), compound,\n/// collective, timeout (\"2s\"), window (true: stop 300 ms after the last reply),\n/// min (fewer nodes is an error of kind \"no_responders\")."])
        .register_into_engine(engine, move |filter: Map| discover(&h, &filter));
    let h = host.clone();
    FuncRegistration::new("discover")
        .with_params_info(["Array"])
        .with_comments(["/// Discovers every node of the main collective."])
        .register_into_engine(engine, move || discover(&h, &Map::new()));
}

/// Builds discovery options from a runbook filter map.
pub(crate) fn discovery_options(m: &Map, what: &str) -> Res<(DiscoveryOptions, usize)> {
    let o = Options::new(m, what, &KEYS)?;
    refuse_masked_text(&Dynamic::from_map(m.clone()), what)?;
    let mut f = Filter::default();
    let list = |k: &str| o.strings(k).map(Option::unwrap_or_default);
    for fact in list("fact")? {
        f.fact.push(parse_fact(&fact).map_err(|e| runtime_error("invalid", e.to_string()))?);
    }
    f.cf_class = list("class")?;
    f.agent = list("agent")?;
    f.identity = list("identity")?;
    for c in list("compound")? {
        f.add_compound(&c);
    }
    f.validate().map_err(|e| runtime_error("invalid", e.to_string()))?;
    let opts = DiscoveryOptions {
        filter: f,
        collective: o.string("collective"),
        timeout: o.duration("timeout")?,
        window: o.bool("window"),
        rpc_agent: None,
    };
    let min = o.count("min")?.unwrap_or(0);
    Ok((opts, min))
}

/// Runs discovery with the spinner and the `discovered` event.
pub(crate) fn run_discovery(host: &Host, opts: &DiscoveryOptions, min: usize) -> Res<Vec<String>> {
    let fleet = host.fleet()?;
    // Resuming: the nodes this discovery found the first time, so the run acts on the same.
    if let Some(nodes) = host.replaying(|r| r.next_discovery()).flatten() {
        *crate::lock(&host.last_nodes) = nodes.clone();
        host.reporter.emit(RunEvent::Discovered { count: nodes.len(), nodes: nodes.clone() });
        if nodes.len() < min {
            return Err(fleet_error(host, FleetError::TooFew { found: nodes.len(), min }));
        }
        return Ok(nodes);
    }
    host.reporter.emit(RunEvent::Discovering { what: opts.filter.describe() });
    let found = host.rt.block_on(fleet.discover(opts, &host.interrupt.hard()));
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            // A failed or interrupted discovery found nothing usable; it does not claim 0.
            host.reporter.emit(RunEvent::DiscoveryFailed);
            return Err(fleet_error(host, e));
        }
    };
    *crate::lock(&host.last_nodes) = found.nodes.clone();
    host.reporter.emit(RunEvent::Discovered { count: found.nodes.len(), nodes: found.nodes.clone() });
    if found.nodes.len() < min {
        return Err(fleet_error(host, FleetError::TooFew { found: found.nodes.len(), min }));
    }
    Ok(found.nodes)
}

fn discover(host: &Host, filter: &Map) -> Res<Array> {
    let (opts, min) = discovery_options(filter, "discover")?;
    let nodes = run_discovery(host, &opts, min)?;
    Ok(strings(&nodes).into_array().unwrap_or_default())
}
