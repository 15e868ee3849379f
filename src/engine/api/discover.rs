//! `discover`: which nodes match a filter. `rpc_batch` reads its `filter` option here too.

use std::collections::BTreeMap;
use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, FuncRegistration, Map};

use super::{fleet_error, refuse_masked_text, runtime_error, Host, Options, Res};
use crate::engine::convert::strings;
use crate::fleet::discovery::limit::Limit;
use crate::fleet::discovery::method::{check_options, read_inventory, read_list, DiscoveryDefaults, Method};
use crate::fleet::discovery::{DiscoveryOptions, Source};
use crate::fleet::filter::{parse_fact, Filter};
use crate::fleet::FleetError;
use crate::progress::RunEvent;

/// The option keys `discover` takes (and `rpc_batch`'s `filter`); `check` lints against them.
pub(crate) const KEYS: [&str; 17] = [
    "fact",
    "class",
    "agent",
    "identity",
    "with",
    "combined",
    "compound",
    "collective",
    "timeout",
    "window",
    "min",
    "dm",
    "do",
    "discovery_options",
    "limit",
    "limit_seed",
    "limit_method",
];

/// Registers `discover(filter)` and `discover()`.
pub(crate) fn register(engine: &mut Engine, host: &Arc<Host>) {
    let h = host.clone();
    FuncRegistration::new("discover")
        .with_params_info(["filter: Map", "Array"])
        .with_comments(["/// Discovers the nodes matching `filter` and returns their identities, sorted.\n/// Keys: fact (\"name=value\" or a list), class, agent, identity (exact or /regex/),\n/// \"with\" or combined (choria's -W: facts and classes), compound, collective,\n/// timeout (\"2s\"), window (true: stop 300 ms after the last reply), min (fewer nodes is\n/// an error of kind \"no_responders\"); dm (\"broadcast\", \"flatfile\" or \"inventory\")\n/// with \"do\" or discovery_options (#{file: \"nodes.txt\"}); limit (N or \"N%\"),\n/// limit_seed, limit_method (\"first\" or \"random\")."])
        .register_into_engine(engine, move |filter: Map| discover(&h, &filter));
    let h = host.clone();
    FuncRegistration::new("discover")
        .with_params_info(["Array"])
        .with_comments(["/// Discovers every node of the main collective."])
        .register_into_engine(engine, move || discover(&h, &Map::new()));
    FuncRegistration::new("nodes_from")
        .with_params_info(["path: &str", "Array"])
        .with_comments(["/// Reads a node list from `path` (\"-\": stdin): one identity per line, a JSON or YAML\n/// array, or the JSON of `discover --json` or `req --json`. Errors name the file and line."])
        .register_into_engine(engine, |path: &str| -> Res<Array> {
            let nodes = read_list(path, None, None).map_err(|e| runtime_error("invalid", format!("nodes_from: {e}")))?;
            Ok(strings(&nodes).into_array().unwrap_or_default())
        });
}

/// The limit of an option map (`discover` or `rpc_batch`), when it has one.
pub(crate) fn limit_option(o: &Options) -> Res<Option<Limit>> {
    let size = match o.get("limit") {
        None => {
            if let Some(k) = ["limit_seed", "limit_method"].into_iter().find(|k| o.get(k).is_some()) {
                return Err(runtime_error("invalid", format!("{}: give limit too", o.name(k))));
            }
            return Ok(None);
        }
        Some(v) if v.is_string() => v.to_string(),
        Some(v) => match v.as_int() {
            Ok(n) => n.to_string(),
            Err(_) => {
                return Err(runtime_error("invalid", format!("{}: expected N or \"N%\", got {v}", o.name("limit"))))
            }
        },
    };
    let seed = o.count("limit_seed")?.map(|s| s as u64);
    Limit::from_parts(&size, o.string("limit_method").as_deref(), seed)
        .map(Some)
        .map_err(|e| runtime_error("invalid", format!("{}: {e}", o.name("limit"))))
}

/// Where a runbook's discovery looks when its map names no `dm`: the run's node list
/// (`run --nodes`), else the client configuration's default method.
#[derive(Clone, Copy)]
pub(crate) struct SourceDefaults<'a> {
    pub(crate) nodes: Option<&'a Arc<Vec<String>>>,
    pub(crate) config: &'a DiscoveryDefaults,
}

impl Host {
    /// The run's discovery defaults (none without a fleet).
    pub(crate) fn source_defaults(&self) -> (Option<&Arc<Vec<String>>>, DiscoveryDefaults) {
        let config = self.fleet.as_ref().map(|f| f.options().discovery_defaults.clone()).unwrap_or_default();
        (self.settings.nodes.as_ref(), config)
    }
}

/// The source of a filter map: `dm` and its `do` options, else the defaults.
/// `do` is a Rhai keyword: the key is written quoted (`"do": #{..}`) or as
/// `discovery_options` (go-choria's JSON name for it).
fn source_option(o: &Options, defaults: SourceDefaults) -> Res<Source> {
    let o = &o.with_alias("do", "discovery_options");
    let bad = |e: String| runtime_error("invalid", e);
    let opts: BTreeMap<String, String> = o
        .map("do", Some("#{file: \"nodes.txt\"}"))?
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (method, opts) = match o.string("dm") {
        Some(dm) => {
            let method = Method::parse(&dm).map_err(|e| bad(format!("{}: {e}", o.name("dm"))))?;
            check_options(method, &opts, &o.name("do")).map_err(bad)?;
            (method, opts)
        }
        None => match (defaults.nodes, defaults.config.method_and_options(&opts).map_err(bad)?) {
            (Some(list), _) if opts.is_empty() => return Ok(Source::List(list.clone())),
            (None, Some(found)) => found,
            (None, None) if opts.is_empty() => return Ok(Source::Broadcast),
            _ => return Err(bad(format!("{}: give dm too", o.name("do")))),
        },
    };
    let file =
        || opts.get("file").ok_or_else(|| bad(format!("{}: the {} method needs file", o.name("do"), method.name())));
    Ok(match method {
        Method::Broadcast => Source::Broadcast,
        Method::FlatFile => {
            let nodes =
                read_list(file()?, opts.get("format").map(String::as_str), opts.get("filter").map(String::as_str))
                    .map_err(bad)?;
            Source::List(Arc::new(nodes))
        }
        Method::Inventory => {
            let path = defaults.config.inventory_file(&opts).ok_or_else(|| {
                bad(format!(
                    "{}: the inventory method needs file (or plugin.choria.discovery.inventory.source)",
                    o.name("do")
                ))
            })?;
            Source::Inventory(Arc::new(read_inventory(path).map_err(bad)?))
        }
    })
}

/// Builds discovery options from a runbook filter map; `defaults` say where to look when
/// the map names no `dm`.
pub(crate) fn discovery_options(m: &Map, what: &str, defaults: SourceDefaults) -> Res<(DiscoveryOptions, usize)> {
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
    // `with` is a reserved word in Rhai: written quoted, or as `combined` (go-choria's name).
    for w in o.with_alias("with", "combined").strings("with")?.unwrap_or_default() {
        f.add_combined(&w).map_err(|e| runtime_error("invalid", e.to_string()))?;
    }
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
        source: source_option(&o, defaults)?,
        limit: limit_option(&o)?,
    };
    opts.validate().map_err(|e| runtime_error("invalid", format!("{what}: {e}")))?;
    let min = o.count("min")?.unwrap_or(0);
    Ok((opts, min))
}

/// Runs discovery with the spinner and the `discovered` event.
pub(crate) fn run_discovery(host: &Host, opts: &DiscoveryOptions, min: usize) -> Res<Vec<String>> {
    let fleet = host.fleet()?;
    // Resuming: the nodes this discovery found the first time, so the run acts on the same.
    if let Some(nodes) = host.replaying(|r| r.next_discovery()).flatten() {
        *crate::lock(&host.last_nodes) = nodes.clone();
        host.reporter.discovered(&nodes);
        if nodes.len() < min {
            return Err(fleet_error(host, FleetError::TooFew { found: nodes.len(), min }));
        }
        return Ok(nodes);
    }
    host.reporter.emit(RunEvent::Discovering { what: opts.describe() });
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
    host.reporter.discovered(&found.nodes);
    if found.nodes.len() < min {
        return Err(fleet_error(host, FleetError::TooFew { found: found.nodes.len(), min }));
    }
    Ok(found.nodes)
}

fn discover(host: &Host, filter: &Map) -> Res<Array> {
    let (nodes, config) = host.source_defaults();
    let (opts, min) = discovery_options(filter, "discover", SourceDefaults { nodes, config: &config })?;
    let nodes = run_discovery(host, &opts, min)?;
    Ok(strings(&nodes).into_array().unwrap_or_default())
}
