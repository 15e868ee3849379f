//! `election_leader`, `election_info` and `evict` for runbooks.

use std::sync::Arc;

use rhai::{Dynamic, Engine, FuncRegistration, Map};

use super::{fleet_error, Host, Options, Res};
use crate::fleet::election::BUCKET;

/// The option keys of `election_leader` and `election_info`.
pub(crate) const KEYS: [&str; 1] = ["bucket"];

/// The option keys of `evict`.
pub(crate) const EVICT_KEYS: [&str; 2] = ["bucket", "expect_leader"];

fn bucket(o: &Options) -> String {
    o.string("bucket").unwrap_or_else(|| BUCKET.to_string())
}

fn leader(host: &Host, name: &str, opts: &Map) -> Res<Dynamic> {
    let b = bucket(&Options::new(opts, "election_leader", &KEYS)?);
    let info = host.rt.block_on(host.fleet()?.election_info(name, &b)).map_err(|e| fleet_error(host, e))?;
    Ok(info.leader.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
}

fn info(host: &Host, name: &str, opts: &Map) -> Res<Map> {
    let b = bucket(&Options::new(opts, "election_info", &KEYS)?);
    let i = host.rt.block_on(host.fleet()?.election_info(name, &b)).map_err(|e| fleet_error(host, e))?;
    let mut m = Map::new();
    m.insert("name".into(), i.name.into());
    m.insert("bucket".into(), i.bucket.into());
    m.insert("leader".into(), i.leader.map(Dynamic::from).unwrap_or(Dynamic::UNIT));
    m.insert("revision".into(), Dynamic::from(i.revision as rhai::INT));
    m.insert("age".into(), i.age_secs.map(Dynamic::from).unwrap_or(Dynamic::UNIT));
    m.insert("ttl".into(), Dynamic::from(i.ttl.as_secs_f64()));
    Ok(m)
}

fn evict(host: &Host, name: &str, opts: &Map) -> Res<Dynamic> {
    let o = Options::new(opts, "evict", &EVICT_KEYS)?;
    let b = bucket(&o);
    let expect = o.string("expect_leader");
    let fleet = host.fleet()?;
    if host.settings.dry_run {
        let i = host.rt.block_on(fleet.election_info(name, &b)).map_err(|e| fleet_error(host, e))?;
        host.reporter.say(&format!(
            "dry-run: would evict {} from election {name} in bucket {b}",
            i.leader.as_deref().unwrap_or("nobody")
        ));
        return Ok(i.leader.map(Dynamic::from).unwrap_or(Dynamic::UNIT));
    }
    // Resuming: an eviction an earlier attempt made is not made again (the new leader stays).
    if let Some(was) = host.replaying(|r| r.next_evict()).flatten() {
        let who = was.as_deref().unwrap_or("nobody");
        host.reporter.say(&format!("election {name}: {who} was evicted by an earlier attempt of this run; not again"));
        host.reporter.emit(crate::progress::RunEvent::Evict {
            election: name.to_string(),
            bucket: b.to_string(),
            evicted: was.clone(),
            resumed: true,
        });
        return Ok(was.map(Dynamic::from).unwrap_or(Dynamic::UNIT));
    }
    let who = host.rt.block_on(fleet.evict(name, &b, expect.as_deref())).map_err(|e| fleet_error(host, e))?;
    match &who {
        Some(w) => host.reporter.say(&format!("Evicted the leader from election {name} in bucket {b} (was {w})")),
        None => host.reporter.say(&format!("election {name} in bucket {b} has no leader: nothing was evicted")),
    }
    host.reporter.emit(crate::progress::RunEvent::Evict {
        election: name.to_string(),
        bucket: b.to_string(),
        evicted: who.clone(),
        resumed: false,
    });
    Ok(who.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
}

/// Registers the election functions.
pub(crate) fn register(engine: &mut Engine, host: &Arc<Host>) {
    let h = host.clone();
    FuncRegistration::new("election_leader")
        .with_params_info(["name: &str", "Dynamic"])
        .with_comments(["/// The identity leading election `name` in CHORIA_LEADER_ELECTION, or () when nobody leads."])
        .register_into_engine(engine, move |name: &str| leader(&h, name, &Map::new()));
    let h = host.clone();
    FuncRegistration::new("election_leader")
        .with_params_info(["name: &str", "opts: Map", "Dynamic"])
        .with_comments(["/// As election_leader(name), with opts #{bucket}."])
        .register_into_engine(engine, move |name: &str, opts: Map| leader(&h, name, &opts));
    let h = host.clone();
    FuncRegistration::new("election_info")
        .with_params_info(["name: &str", "Map"])
        .with_comments(["/// #{name, bucket, leader, revision, age, ttl}: the leader (or ()), the key's revision, seconds\n/// since it was last written, and the bucket TTL in seconds (a dead leader's value lives that long)."])
        .register_into_engine(engine, move |name: &str| info(&h, name, &Map::new()));
    let h = host.clone();
    FuncRegistration::new("election_info")
        .with_params_info(["name: &str", "opts: Map", "Map"])
        .with_comments(["/// As election_info(name), with opts #{bucket}."])
        .register_into_engine(engine, move |name: &str, opts: Map| info(&h, name, &opts));
    let h = host.clone();
    FuncRegistration::new("evict")
        .with_params_info(["name: &str", "Dynamic"])
        .with_comments(["/// Evicts the leader of election `name` (a KV delete, never a purge) and returns who was\n/// evicted, or () when nobody led. Under --dry-run it only says what it would do."])
        .register_into_engine(engine, move |name: &str| evict(&h, name, &Map::new()));
    let h = host.clone();
    FuncRegistration::new("evict")
        .with_params_info(["name: &str", "opts: Map", "Dynamic"])
        .with_comments(["/// As evict(name), with opts #{bucket, expect_leader}: with expect_leader it refuses (an error\n/// of kind \"denied\") unless that identity leads, and deletes only the revision it read."])
        .register_into_engine(engine, move |name: &str, opts: Map| evict(&h, name, &opts));
}
