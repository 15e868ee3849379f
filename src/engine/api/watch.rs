//! `watch_events` and `event_watch`: lifecycle events for runbooks.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, FuncRegistration, Map, NativeCallContext};
use tokio::time::Instant;

use super::{fleet_error, runtime_error, Host, Options, Res};
use crate::engine::convert::from_json;
use crate::fleet::events::EventFilter;
use crate::lifecycle::Event;

/// The doc comment of `watch_events`.
const DOC: &str = "/// Watches lifecycle events and returns them as maps #{type, kind (= type, for e.kind), identity,\n/// component, timestamp, version, format, subject, ...}. opts: types (a type or a list: startup, shutdown,\n/// provisioned, alive, upgraded, governor), component, identities (exact or /regex/), count\n/// (stop after this many), timeout (default 60s; returns what arrived), \"until\" (quoted: until\n/// is a Rhai keyword) or stop_when, a closure called with each event; true stops. Accepts CloudEvent, Choria and legacy formats.";

/// The option keys of `watch_events(opts)`: the filter's and the collection's.
pub(crate) const KEYS: [&str; 9] =
    ["types", "type", "component", "identities", "identity", "count", "timeout", "until", "stop_when"];

/// The option keys of `event_watch(filter)`.
pub(crate) const FILTER_KEYS: [&str; 5] = ["types", "type", "component", "identities", "identity"];

/// The option keys of `watch_events(handle, opts)`.
pub(crate) const COLLECT_KEYS: [&str; 4] = ["count", "timeout", "until", "stop_when"];

/// Registers `watch_events(opts)`, `event_watch(filter)`, `watch_events(handle, opts)` and
/// the `EventWatch` type.
pub(crate) fn register(engine: &mut Engine, host: &Arc<Host>) {
    let h = host.clone();
    FuncRegistration::new("watch_events")
        .with_params_info(["opts: Map", "Array"])
        .with_comments([DOC])
        .register_into_engine(engine, move |ctx: NativeCallContext, opts: Map| watch_events(&h, &ctx, &opts));

    engine.register_type_with_name::<EventWatch>("EventWatch");
    let h = host.clone();
    FuncRegistration::new("event_watch")
        .with_params_info(["filter: Map", "EventWatch"])
        .with_comments([WATCH_DOC])
        .register_into_engine(engine, move |opts: Map| event_watch(&h, &opts));
    let h = host.clone();
    FuncRegistration::new("watch_events")
        .with_params_info(["watch: EventWatch", "opts: Map", "Array"])
        .with_comments(["/// Collects events from an event_watch handle (including those that arrived since it was
/// started). opts: count, timeout (default 60s), \"until\" / stop_when."])
        .register_into_engine(engine, move |ctx: NativeCallContext, w: EventWatch, opts: Map| {
            watch_events_from(&h, &ctx, &w, &opts)
        });
}

/// The map a runbook sees for one event.
fn event_map(e: &Event, subject: &str) -> Dynamic {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("subject".into(), serde_json::Value::String(subject.to_string()));
        // `type` is a reserved word in Rhai (`e.type` does not parse): `e.kind` says the same.
        o.insert("kind".into(), serde_json::Value::String(e.kind.clone()));
    }
    from_json(&v)
}

/// The event filter from `watch_events` or `event_watch` options.
fn filter_from(o: &Options) -> Res<EventFilter> {
    let list = |k: &str| o.strings(k).map(Option::unwrap_or_default);
    let mut types = list("types")?;
    types.extend(list("type")?);
    let mut identities = list("identities")?;
    identities.extend(list("identity")?);
    EventFilter::new(types, o.string("component"), identities).map_err(|e| runtime_error("invalid", e.to_string()))
}

/// A subscription started by `event_watch`: events are buffered from that moment, so a
/// runbook can start watching, act, then collect without missing anything.
#[derive(Clone)]
pub(crate) struct EventWatch {
    events: Arc<std::sync::Mutex<crate::fleet::events::Events>>,
    filter: EventFilter,
}

/// The doc comment of `event_watch`.
const WATCH_DOC: &str = "/// Starts watching lifecycle events now and returns a handle for watch_events(handle, opts):
/// events that arrive in between are kept. opts: types, component, identities.";

/// Runs `event_watch`.
fn event_watch(host: &Host, opts: &Map) -> Res<EventWatch> {
    let o = Options::new(opts, "event_watch", &FILTER_KEYS)?;
    // Its keys are watch_events' filter keys, and their errors say so.
    let filter = filter_from(&o.named("watch_events"))?;
    let events = host.rt.block_on(host.fleet()?.lifecycle_events()).map_err(|e| fleet_error(host, e))?;
    Ok(EventWatch { events: Arc::new(std::sync::Mutex::new(events)), filter })
}

/// Runs `watch_events`, on a fresh subscription or on an `event_watch` handle.
fn watch_events(host: &Host, ctx: &NativeCallContext, opts: &Map) -> Res<Array> {
    let o = Options::new(opts, "watch_events", &KEYS)?;
    let filter = filter_from(&o)?;
    let events = host.rt.block_on(host.fleet()?.lifecycle_events()).map_err(|e| fleet_error(host, e))?;
    collect(host, ctx, &mut { events }, &filter, &o)
}

/// Runs `watch_events(handle, opts)`: collects from the handle's buffer and subscription.
fn watch_events_from(host: &Host, ctx: &NativeCallContext, w: &EventWatch, opts: &Map) -> Res<Array> {
    let o = Options::new(opts, "watch_events", &COLLECT_KEYS)?;
    let mut events = w.events.lock().map_err(|_| runtime_error("invalid", "event watch is in use"))?;
    collect(host, ctx, &mut events, &w.filter, &o)
}

fn collect(
    host: &Host,
    ctx: &NativeCallContext,
    events: &mut crate::fleet::events::Events,
    filter: &EventFilter,
    o: &Options,
) -> Res<Array> {
    let want = o.count("count")?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(60));
    // `until` is a Rhai keyword, so scripts write it quoted ("until": ...) or as stop_when.
    let until = o.with_alias("until", "stop_when").closure("until", "|e| e.type == \"startup\"")?;
    let deadline = Instant::now() + timeout;
    let mut out = Array::new();
    while want.is_none_or(|w| out.len() < w) {
        let next = host
            .rt
            .block_on(events.next_matching(filter, Some(deadline), &host.interrupt.hard()))
            .map_err(|e| fleet_error(host, e))?;
        let Some(r) = next else { break };
        let Ok(e) = r.event else { continue };
        if !filter.matches(&e) {
            continue;
        }
        host.reporter.emit(crate::progress::RunEvent::Event {
            event_type: e.kind.to_string(),
            identity: e.identity.to_string(),
            component: e.component.to_string(),
            subject: r.subject.to_string(),
        });
        let m = event_map(&e, &r.subject);
        out.push(m.clone());
        if let Some(f) = &until {
            let stop: Dynamic = f.call_within_context(ctx, (m,))?;
            if stop.as_bool().unwrap_or(false) {
                break;
            }
        }
    }
    Ok(out)
}
