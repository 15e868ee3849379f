//! The runbook API registered into Rhai, each function with parameter names and a doc
//! comment in the engine's metadata (the REPL shows them).

use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, EvalAltResult, FuncRegistration, ImmutableString, Map, NativeCallContext};

use super::convert::strings;
use super::{runtime_error, Host};
use crate::fleet::discovery::DiscoveryOptions;
use crate::fleet::filter::{parse_fact, Filter};
use crate::fleet::FleetError;
use crate::progress::RunEvent;
use crate::prompt::Answer;
use crate::redact::{is_secret_name, Secret};

/// Result type of API functions.
pub type Res<T> = Result<T, Box<EvalAltResult>>;

/// Keys `discover` takes.
pub const DISCOVER_KEYS: [&str; 9] =
    ["fact", "class", "agent", "identity", "compound", "collective", "timeout", "window", "min"];

/// Registers every API function.
pub fn register(engine: &mut Engine, host: Arc<Host>) {
    engine.register_type_with_name::<Secret>("Secret");
    engine.register_fn("to_string", |s: &mut Secret| s.to_string());
    engine.register_fn("to_debug", |s: &mut Secret| format!("{s:?}"));

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

    let h = host.clone();
    FuncRegistration::new("rpc_batch")
        .with_params_info(["agent: &str", "action: &str", "inputs: Map", "opts: Map", "Map"])
        .with_comments([super::rollout::DOC])
        .register_into_engine(
            engine,
            move |ctx: NativeCallContext, agent: &str, action: &str, inputs: Map, opts: Map| {
                super::rollout::rpc_batch(&h, &ctx, agent, action, &inputs, &opts)
            },
        );

    let h = host.clone();
    FuncRegistration::new("watch_events")
        .with_params_info(["opts: Map", "Array"])
        .with_comments([super::watch::DOC])
        .register_into_engine(engine, move |ctx: NativeCallContext, opts: Map| {
            super::watch::watch_events(&h, &ctx, &opts)
        });

    engine.register_type_with_name::<super::watch::EventWatch>("EventWatch");
    let h = host.clone();
    FuncRegistration::new("event_watch")
        .with_params_info(["filter: Map", "EventWatch"])
        .with_comments([super::watch::WATCH_DOC])
        .register_into_engine(engine, move |opts: Map| super::watch::event_watch(&h, &opts));
    let h = host.clone();
    FuncRegistration::new("watch_events")
        .with_params_info(["watch: EventWatch", "opts: Map", "Array"])
        .with_comments(["/// Collects events from an event_watch handle (including those that arrived since it was
/// started). opts: count, timeout (default 60s), \"until\" / stop_when."])
        .register_into_engine(engine, move |ctx: NativeCallContext, w: super::watch::EventWatch, opts: Map| {
            super::watch::watch_events_from(&h, &ctx, &w, &opts)
        });

    let h = host.clone();
    FuncRegistration::new("confirm")
        .with_params_info(["message: &str", "bool"])
        .with_comments(["/// Asks a human to confirm. Returns true when confirmed (or with --yes); a refusal, or no\n/// terminal to ask on, stops the run with exit code 3."])
        .register_into_engine(engine, move |message: &str| confirm(&h, message));

    let h = host.clone();
    FuncRegistration::new("abort")
        .with_params_info(["reason: &str"])
        .with_comments(["/// Stops the run now with exit code 3. `try/catch` cannot catch it."])
        .register_into_engine(engine, move |reason: &str| -> Res<()> { Err(h.guardrail(format!("abort: {reason}"))) });

    // Rhai's own `sleep(INT)` and `sleep(FLOAT)` block the thread, ignore Ctrl-C and panic on
    // huge values; typed overloads registered here take precedence over them.
    let doc = "/// Waits for a duration (\"2s\", \"500ms\" or seconds, at most a year). Ctrl-C ends the wait and stops the run.";
    let h = host.clone();
    FuncRegistration::new("sleep")
        .with_params_info(["duration: Dynamic"])
        .with_comments([doc])
        .register_into_engine(engine, move |d: Dynamic| sleep(&h, &d));
    let h = host.clone();
    FuncRegistration::new("sleep")
        .with_params_info(["seconds: INT"])
        .with_comments([doc])
        .register_into_engine(engine, move |d: rhai::INT| sleep(&h, &Dynamic::from(d)));
    let h = host.clone();
    FuncRegistration::new("sleep")
        .with_params_info(["seconds: FLOAT"])
        .with_comments([doc])
        .register_into_engine(engine, move |d: rhai::FLOAT| sleep(&h, &Dynamic::from(d)));

    let h = host.clone();
    FuncRegistration::new("dry_run")
        .with_params_info(["bool"])
        .with_comments([
            "/// True under --dry-run: discovery and read-only actions run, everything else is only planned.",
        ])
        .register_into_engine(engine, move || h.settings.dry_run);

    let h = host.clone();
    FuncRegistration::new("arg")
        .with_params_info(["name: &str", "default: Dynamic", "Dynamic"])
        .with_comments(["/// The value of `--arg name=value`, converted to the type of `default` (int, float, bool or\n/// string); `default` when not given. Secret names (token, password, secret, key, ...) give a\n/// Secret, which never prints, logs or serialises in clear. `fleetbook run` refuses an\n/// `--arg` the runbook never reads with arg(\"name\")."])
        .register_into_engine(engine, move |name: &str, default: Dynamic| arg(&h, name, Some(default)));
    let h = host.clone();
    FuncRegistration::new("arg")
        .with_params_info(["name: &str", "String"])
        .with_comments([
            "/// The value of `--arg name=value`; an error when it was not given. Secret names give a Secret.",
        ])
        .register_into_engine(engine, move |name: &str| arg(&h, name, None));

    let h = host;
    FuncRegistration::new("secret")
        .with_params_info(["env_name: &str", "Secret"])
        .with_comments(["/// A secret read from the environment variable `env_name`. It never prints, logs or\n/// serialises in clear; only the request sent to the nodes carries its value."])
        .register_into_engine(engine, move |env: &str| secret(&h, env));
}

/// Maps a fleet error to a runtime error scripts can catch by `kind`; Ctrl-C stops the run.
pub fn fleet_error(host: &Host, e: FleetError) -> Box<EvalAltResult> {
    match e {
        FleetError::Cancelled => host.guardrail("interrupted (Ctrl-C)"),
        e if e.kind() == crate::fleet::ErrorKind::Connection => host.broker_lost(e.to_string()),
        e => runtime_error(e.kind().as_str(), e.to_string()),
    }
}

/// Rejects keys a function does not know, naming the valid ones.
pub fn check_keys(m: &Map, allowed: &[&str], what: &str) -> Res<()> {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(runtime_error(
                "invalid",
                format!("{what}: unknown option '{k}'; valid options: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

/// A string or a list of strings.
pub fn string_list(d: &Dynamic, what: &str) -> Res<Vec<String>> {
    if d.is_string() {
        return Ok(vec![d.to_string()]);
    }
    if let Some(a) = d.read_lock::<Array>() {
        return a
            .iter()
            .map(|x| {
                if x.is_string() {
                    Ok(x.to_string())
                } else {
                    Err(runtime_error("invalid", format!("{what}: expected strings, got {}", x.type_name())))
                }
            })
            .collect();
    }
    Err(runtime_error("invalid", format!("{what}: expected a string or an array of strings, got {}", d.type_name())))
}

/// `sleep(duration)`: waits, ending early (and stopping the run) on Ctrl-C.
fn sleep(h: &Host, d: &Dynamic) -> Res<()> {
    let d = duration(d, "sleep")?;
    let interrupted = h.rt.block_on(async {
        let soft = h.interrupt.soft();
        tokio::select! {
            _ = soft.cancelled() => true,
            _ = tokio::time::sleep(d) => false,
        }
    });
    if interrupted {
        return Err(h.guardrail("interrupted (Ctrl-C)"));
    }
    Ok(())
}

/// Refuses text that holds the secret mask: a secret joined with text (`"Bearer " + token`,
/// `` `x=${token}` ``) prints as `[secret]`, which is fine to show but must never go to the
/// fleet in place of the value.
pub fn refuse_masked_text(d: &Dynamic, what: &str) -> Res<()> {
    let bad = || {
        runtime_error(
            "invalid",
            format!(
                "{what}: a value contains \"{}\": a secret was joined with text (+ or interpolation), which would send the mask instead of the value; pass the secret itself",
                crate::redact::MASK
            ),
        )
    };
    if let Some(s) = d.read_lock::<ImmutableString>() {
        if s.contains(crate::redact::MASK) {
            return Err(bad());
        }
    } else if let Some(a) = d.read_lock::<rhai::Array>() {
        for x in a.iter() {
            refuse_masked_text(x, what)?;
        }
    } else if let Some(m) = d.read_lock::<Map>() {
        for x in m.values() {
            refuse_masked_text(x, what)?;
        }
    }
    Ok(())
}

/// `"30s"`, `"2m"` or a number of seconds.
pub fn duration(d: &Dynamic, what: &str) -> Res<Duration> {
    let bad = |r: String| runtime_error("invalid", format!("{what}: {r}"));
    if d.is_string() {
        return crate::config::parse_duration(&d.to_string()).map_err(bad);
    }
    let secs = if let Some(i) = d.clone().try_cast::<rhai::INT>() {
        i as f64
    } else if let Some(f) = d.clone().try_cast::<rhai::FLOAT>() {
        f
    } else {
        return Err(bad(format!("expected a duration like \"30s\" or seconds, got {}", d.type_name())));
    };
    crate::config::parse_seconds(secs).map_err(bad)
}

/// A non-negative integer option.
pub fn count(d: &Dynamic, what: &str) -> Res<usize> {
    match d.clone().try_cast::<rhai::INT>() {
        Some(i) if i >= 0 => Ok(i as usize),
        _ => Err(runtime_error("invalid", format!("{what}: expected a whole number >= 0, got {d}"))),
    }
}

/// Builds discovery options from a runbook filter map.
pub fn discovery_options(m: &Map, what: &str) -> Res<(DiscoveryOptions, usize)> {
    check_keys(m, &DISCOVER_KEYS, what)?;
    refuse_masked_text(&Dynamic::from_map(m.clone()), what)?;
    let mut f = Filter::default();
    let list =
        |k: &str| m.get(k).map(|v| string_list(v, &format!("{what}.{k}"))).transpose().map(Option::unwrap_or_default);
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
        collective: m.get("collective").map(|c| c.to_string()),
        timeout: m.get("timeout").map(|t| duration(t, &format!("{what}.timeout"))).transpose()?,
        window: m.get("window").map(|w| w.as_bool().unwrap_or(false)).unwrap_or(false),
        rpc_agent: None,
    };
    let min = m.get("min").map(|v| count(v, &format!("{what}.min"))).transpose()?.unwrap_or(0);
    Ok((opts, min))
}

/// Runs discovery with the spinner and the `discovered` event.
pub fn run_discovery(host: &Host, opts: &DiscoveryOptions, min: usize) -> Res<Vec<String>> {
    let fleet = host.fleet()?;
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

/// Confirmation: `--yes` answers, else the terminal, else the run stops.
pub fn confirm(host: &Host, message: &str) -> Res<bool> {
    confirm_with(host, message, host.settings.yes)
}

/// Confirmation where `--yes` may or may not answer (the REPL always asks before shutdown).
pub fn confirm_with(host: &Host, message: &str, yes_counts: bool) -> Res<bool> {
    if yes_counts {
        host.reporter.say(&format!("confirmed by --yes: {message}"));
        return Ok(true);
    }
    let answer = host.reporter.suspend(|| host.prompter.ask(&format!("{message} [y/N]")));
    match Answer::from_reply(answer.as_deref(), &host.interrupt) {
        Answer::Yes => Ok(true),
        Answer::Interrupted => Err(host.guardrail(format!("interrupted (Ctrl-C) at: {message}"))),
        Answer::No => Err(host.guardrail(format!("not confirmed: {message}"))),
        Answer::NoTerminal => {
            Err(host.guardrail(format!("cannot ask for confirmation (no terminal); pass --yes to confirm: {message}")))
        }
    }
}

fn arg(host: &Host, name: &str, default: Option<Dynamic>) -> Res<Dynamic> {
    let Some(raw) = host.settings.args.get(name).or_else(|| host.settings.arg_defaults.get(name)) else {
        return default.ok_or_else(|| runtime_error("invalid", format!("missing --arg {name}=VALUE")));
    };
    // A secret-named argument (token, password, ...) is a Secret from the start, so it is
    // masked wherever the runbook sends it; only the wire sees the value.
    if is_secret_name(name) {
        return Ok(Dynamic::from(Secret::new(name, raw)));
    }
    let bad = |t: &str| runtime_error("invalid", format!("--arg {name}={raw}: expected {t}"));
    Ok(match default {
        Some(d) if d.is_int() => Dynamic::from(raw.trim().parse::<rhai::INT>().map_err(|_| bad("an integer"))?),
        Some(d) if d.is_float() => Dynamic::from(raw.trim().parse::<rhai::FLOAT>().map_err(|_| bad("a number"))?),
        Some(d) if d.is_bool() => Dynamic::from(match raw.trim() {
            "true" | "yes" | "1" => true,
            "false" | "no" | "0" => false,
            _ => return Err(bad("true or false")),
        }),
        _ => Dynamic::from(raw.clone()),
    })
}

fn secret(host: &Host, env: &str) -> Res<Secret> {
    let value =
        std::env::var(env).ok().filter(|v| !v.is_empty()).or_else(|| host.settings.secret_defaults.get(env).cloned());
    match value {
        Some(v) if !v.is_empty() => Ok(Secret::new(env, &v)),
        _ => Err(runtime_error("invalid", format!("secret: environment variable {env} is not set or empty"))),
    }
}
