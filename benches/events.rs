//! Event throughput: lifecycle events decoded and filtered the way `watch_events` does
//! (`Events::next_matching` with an `EventFilter` holding an identity regex, compiled once)
//! against a raw subscription counting the same messages, in the same run, on the same
//! broker. Target (issue 15): the watch path at >= 0.8x the raw rate.
//!
//! Run: `cargo bench --bench events`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use fleetbook::fleet::ddl::DdlRegistry;
use fleetbook::fleet::events::EventFilter;
use fleetbook::fleet::{ClientOptions, Fleet};
use fleetbook::lifecycle;
use fleetbook::sim::broker::EmbeddedBroker;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: usize = 100_000;
const ROUNDS: usize = 3;
/// The identity of the end marker published after the EVENTS events (n063 publishes only
/// `alive` events in the stream).
const END: &str = "n063.example.net";

/// Publishes EVENTS CloudEvents (a mix of types and components) as fast as possible.
async fn publish(url: &str) {
    let nats = async_nats::ConnectOptions::new().client_capacity(1 << 16).connect(url).await.expect("connect");
    let kinds = ["startup", "shutdown", "provisioned", "alive"];
    let bodies: Vec<(String, bytes::Bytes)> = (0..64)
        .map(|i| {
            let kind = kinds[i % kinds.len()];
            let component = if i % 3 == 0 { "provision_mode_server" } else { "server" };
            let e = lifecycle::cloud_event(lifecycle::choria_event(
                kind,
                &format!("n{i:03}.example.net"),
                component,
                Some("0.29.4"),
                chrono::Utc::now(),
            ));
            (lifecycle::subject(kind, component), bytes::Bytes::from(e.to_string()))
        })
        .collect();
    for i in 0..EVENTS {
        let (s, b) = &bodies[i % bodies.len()];
        nats.publish(s.clone(), b.clone()).await.expect("publish");
    }
    // The end marker: the one event of its kind, and one the watch's filter keeps.
    let end = lifecycle::cloud_event(lifecycle::choria_event(
        "startup",
        END,
        "provision_mode_server",
        Some("0.29.4"),
        chrono::Utc::now(),
    ));
    let subject = lifecycle::subject("startup", "provision_mode_server");
    nats.publish(subject, bytes::Bytes::from(end.to_string())).await.expect("publish");
    nats.flush().await.expect("flush");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    fleetbook::memory::no_transparent_huge_pages();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let broker = EmbeddedBroker::start().unwrap_or_else(|e| panic!("{e}"));
    let url = broker.url().to_string();
    rt.block_on(async {
        let (mut raw_t, mut watch_t, mut every_t) = (Vec::new(), Vec::new(), Vec::new());
        let (mut matched, mut every_matched) = (0, 0);
        for _ in 0..ROUNDS {
            raw_t.push(raw(&url).await);
            // watch_events' path, as runbooks filter: a type, a component and identities.
            let (t, hits) = watch(&url, &runbook_filter()).await;
            watch_t.push(t);
            matched = hits;
            // The worst case: identities only, so every event is parsed (no subject says no).
            let (t, hits) = watch(&url, &identity_filter()).await;
            every_t.push(t);
            every_matched = hits;
        }
        let (r, w, e) = (median(raw_t), median(watch_t), median(every_t));
        println!("event throughput: {EVENTS} CloudEvents, median of {ROUNDS} rounds, publisher in the same process");
        let rate = |d: Duration| EVENTS as f64 / d.as_secs_f64();
        println!("  raw subscription          {:>9.0} events/s ({:.1} ms)", rate(r), r.as_secs_f64() * 1e3);
        println!(
            "  watch_events, type+component+identity  {:>9.0} events/s ({:.1} ms), {matched} kept: {:.2}x the raw rate (target >= 0.8x)",
            rate(w),
            w.as_secs_f64() * 1e3,
            r.as_secs_f64() / w.as_secs_f64()
        );
        println!(
            "  watch_events, identities only (every event parsed)  {:>9.0} events/s ({:.1} ms), {every_matched} kept: {:.2}x the raw rate",
            rate(e),
            e.as_secs_f64() * 1e3,
            r.as_secs_f64() / e.as_secs_f64()
        );
    });
}

/// The floor: a plain subscription that only counts, closed before the next measurement (a
/// subscription left open gets every event too, and slowed the watch measured after it).
async fn raw(url: &str) -> Duration {
    let nats = async_nats::ConnectOptions::new().subscription_capacity(1 << 20).connect(url).await.expect("connect");
    let mut sub = nats.subscribe("choria.lifecycle.event.>").await.expect("sub");
    nats.flush().await.expect("flush");
    let started = Instant::now();
    let p = tokio::spawn({
        let url = url.to_string();
        async move { publish(&url).await }
    });
    for _ in 0..=EVENTS {
        sub.next().await.expect("message");
    }
    let t = started.elapsed();
    p.await.expect("publisher");
    sub.unsubscribe().await.expect("unsubscribe");
    nats.flush().await.expect("flush");
    t
}

/// As a runbook writes it: `startup` events of the Provisioner's component from some nodes
/// (an identity regex, compiled once in `EventFilter::new`, and the end marker's identity).
fn runbook_filter() -> EventFilter {
    EventFilter::new(
        vec!["startup".into()],
        Some("provision_mode_server".into()),
        vec!["/^n0[0-4][0-9]\\.example\\.net$/".into(), END.into()],
    )
    .expect("filter")
}

/// Identities only: nothing on the subject refuses an event, so each one is parsed.
fn identity_filter() -> EventFilter {
    EventFilter::new(Vec::new(), None, vec!["/^n0[0-4][0-9]\\.example\\.net$/".into(), END.into()]).expect("filter")
}

/// One watch over the published events: the time until the end marker, and how many events
/// the filter kept before it.
async fn watch(url: &str, filter: &EventFilter) -> (Duration, usize) {
    let opts = ClientOptions { servers: vec![url.to_string()], ..ClientOptions::default() };
    let fleet = Fleet::connect(opts, DdlRegistry::builtin()).await.expect("client");
    let mut events = fleet.lifecycle_events().await.expect("subscribe");
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let p = tokio::spawn({
        let url = url.to_string();
        async move { publish(&url).await }
    });
    // As watch_events collects: only what the filter keeps is built and returned.
    let mut hits = 0;
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = events.next_matching(filter, Some(until), &cancel).await.expect("next");
        let Some(r) = r else { panic!("the end marker never came") };
        match r.event {
            Ok(e) if e.identity == END && e.kind == "startup" => break,
            Ok(e) => {
                assert!(filter.matches(&e), "only kept events come back");
                hits += 1;
            }
            Err(e) => panic!("every event parses: {e}"),
        }
    }
    let t = started.elapsed();
    p.await.expect("publisher");
    drop(events);
    let by = tokio::time::Instant::now() + Duration::from_secs(5);
    fleet.flush_by(by, &cancel, "the bench").await.expect("flush");
    (t, hits)
}
