//! `rpc_batch`: a runbook's staged rollout. The options become a validated
//! [`crate::rollout::Rollout`]; the driver runs it; the outcome becomes the result map, or a
//! stop no `try/catch` can swallow.

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, FnPtr, FuncRegistration, Map, NativeCallContext};
use serde_json::Value;

use super::discover::{discovery_options, limit_option, run_discovery, SourceDefaults};
use super::{fleet_error, refuse_masked_text, runtime_error, Host, Options, Res};
use crate::engine::convert::{from_json, map_to_json, strings, Secrets};
use crate::engine::options::amount;
use crate::fleet::filter::Filter;
use crate::progress::GateVerdict;
use crate::prompt::Answer;
use crate::rollout::policy::{self, Amount, Thresholds};
use crate::rollout::{ConfirmPolicy, End, GateInput, Hooks, Rollout, Tally, WaitFor};

/// The doc comment of `rpc_batch` in the engine metadata.
const DOC: &str = "/// Calls `agent#action` with `inputs` on nodes in batches and returns\n/// #{ok, failed, no_reply, late, replies, batches, dry_run}.\n/// opts: nodes (identities) or filter (a discover() map); batch (a number, \"10%\" or a ramp\n/// like [1, 5, \"25%\"] whose last entry repeats); sleep between batches (default 1s);\n/// timeout per batch; max_failures and max_batch_failures (count or percent; silent nodes\n/// count); gate, a closure called with each batch result returning true, false or \"pause\";\n/// governor: a Choria Governor to take one lease per node from before each batch\n/// (governor_wait: how long a batch may wait for them, default 5m); limit (N or \"N%\" of\n/// the nodes), limit_seed and limit_method (\"first\" or \"random\"), as `req --limit`;\n/// topology: spread_by (a fact: each batch mixes its values) with max_per_group (N or\n/// \"P%\" of one value per batch), group_by (a fact: one group after another) with group_order\n/// and max_group_failures, last (identities for the final batch), leaders_last (election\n/// leaders in the final batch).";

/// The option keys `rpc_batch` takes; `check` lints against the same list.
pub(crate) const KEYS: [&str; 21] = [
    "nodes",
    "filter",
    "batch",
    "sleep",
    "timeout",
    "max_failures",
    "max_batch_failures",
    "gate",
    "wait_for",
    "governor",
    "governor_wait",
    "limit",
    "limit_seed",
    "limit_method",
    "spread_by",
    "max_per_group",
    "group_by",
    "group_order",
    "max_group_failures",
    "last",
    "leaders_last",
];

/// The keys of `rpc_batch`'s `wait_for` map.
pub(crate) const WAIT_FOR_KEYS: [&str; 3] = ["event", "component", "timeout"];

/// Registers `rpc_batch`.
pub(crate) fn register(engine: &mut Engine, host: &Arc<Host>) {
    let h = host.clone();
    FuncRegistration::new("rpc_batch")
        .with_params_info(["agent: &str", "action: &str", "inputs: Map", "opts: Map", "Map"])
        .with_comments([DOC])
        .register_into_engine(
            engine,
            move |ctx: NativeCallContext, agent: &str, action: &str, inputs: Map, opts: Map| {
                rpc_batch(&h, &ctx, agent, action, &inputs, &opts)
            },
        );
}

fn wait_for(m: &Map) -> Res<WaitFor> {
    let o = Options::new(m, "rpc_batch.wait_for", &WAIT_FOR_KEYS)?;
    let event = o.string("event").ok_or_else(|| runtime_error("invalid", "rpc_batch.wait_for: event is required"))?;
    let timeout = o.duration("timeout")?.unwrap_or(std::time::Duration::from_secs(60));
    WaitFor::new(event, o.string("component"), timeout)
        .map_err(|e| runtime_error("invalid", format!("rpc_batch.wait_for: {e}")))
}

/// `batch`: one amount, or a ramp of them whose last entry repeats.
fn ramp(o: &Options) -> Res<Vec<Amount>> {
    let what = o.name("batch");
    match o.get("batch") {
        None => Ok(Vec::new()),
        Some(d) => match d.read_lock::<Array>() {
            Some(a) if a.is_empty() => Err(runtime_error("invalid", format!("{what}: an empty ramp"))),
            Some(a) => a.iter().map(|x| amount(x, &what)).collect(),
            None => Ok(vec![amount(d, &what)?]),
        },
    }
}

/// The options, validated, and the nodes (discovered when a filter is given).
fn plan(host: &Host, agent: &str, action: &str, opts: &Map) -> Res<(Rollout, Option<FnPtr>)> {
    let o = Options::new(opts, "rpc_batch", &KEYS)?;
    let ramp = ramp(&o)?;
    let topology = super::topology::options(&o)?;
    let thresholds = Thresholds {
        max_failures: o.amount("max_failures")?,
        max_batch_failures: o.amount("max_batch_failures")?,
        max_group_failures: topology.max_group_failures,
    };
    let gate = o.closure("gate", "|batch| batch.failed.len() == 0")?;
    let sleep = o.duration("sleep")?;
    let timeout = o.duration("timeout")?;
    let wait_for =
        o.map("wait_for", Some("#{event: \"startup\", timeout: \"60s\"}"))?.as_ref().map(wait_for).transpose()?;
    let governor = match o.string("governor") {
        Some(name) => Some(crate::rollout::GovernorUse {
            name,
            max_wait: o.duration("governor_wait")?.unwrap_or(super::governor::DEFAULT_WAIT),
            who: super::governor::holder(),
        }),
        None if o.get("governor_wait").is_some() => {
            return Err(runtime_error("invalid", "rpc_batch.governor_wait: give governor: \"NAME\" too"))
        }
        None => None,
    };
    let (nodes, collective, inventory) = match (o.get("nodes"), o.get("filter")) {
        (Some(_), Some(_)) => return Err(runtime_error("invalid", "rpc_batch: give nodes or filter, not both")),
        (None, None) => {
            return Err(runtime_error(
                "invalid",
                "rpc_batch: give nodes (a list of identities) or filter (use filter: #{} for every node)",
            ))
        }
        // A node named twice is called once, in the place it was first named.
        (Some(_), None) => (policy::dedup_keep_order(o.strings("nodes")?.unwrap_or_default()), None, None),
        (None, Some(_)) => {
            let m = o.map("filter", None)?.unwrap_or_default();
            let (nodes, config) = host.source_defaults();
            let (mut d, min) = discovery_options(&m, "rpc_batch.filter", SourceDefaults { nodes, config: &config })?;
            d.rpc_agent = Some(agent.to_string());
            let collective = d.collective.clone();
            // Nodes from an inventory file: the plan takes their facts from it too.
            let inventory = match &d.source {
                crate::fleet::discovery::Source::Inventory(inv) => Some(inv.clone()),
                _ => None,
            };
            (run_discovery(host, &d, min)?, collective, inventory)
        }
    };
    // A limit applies to the nodes given or found, as `req --limit` does.
    let nodes = match limit_option(&o)? {
        None => nodes,
        Some(l) => l
            .apply(&nodes, host.fleet()?.options().limit_method)
            .map_err(|found| fleet_error(host, crate::fleet::FleetError::Limit { limit: l.size.to_string(), found }))?,
    };
    // Topology: facts asked for (read-only, also under --dry-run), then the plan.
    let (batches, groups, counts) = if topology.is_set() {
        let p = super::topology::plan(host, host.fleet()?, &nodes, &ramp, &topology, inventory.as_deref())?;
        (p.batches, p.groups, p.counts)
    } else {
        (policy::plan_batches(&nodes, &policy::plan_sizes(nodes.len(), &ramp)), Vec::new(), Vec::new())
    };
    let s = &host.settings;
    let rollout = Rollout {
        call: 0,
        groups,
        counts,
        agent: agent.to_string(),
        action: action.to_string(),
        inputs: serde_json::Map::new(),
        shown: Value::Null,
        collective,
        timeout,
        filter: Filter::default(),
        batches,
        sleep: sleep.unwrap_or(std::time::Duration::from_secs(1)),
        thresholds,
        wait_for,
        governor,
        plan_only: s.dry_run && !policy::is_read_only(agent, action),
        confirm: ConfirmPolicy { yes: s.yes, every_mutation: s.confirm_mutations },
        resume: None,
    };
    Ok((rollout, gate))
}

/// A runbook's hooks: prompts through the host's prompter, the gate as a Rhai closure.
struct RunbookHooks<'a> {
    host: &'a Host,
    ctx: &'a NativeCallContext<'a>,
    gate: Option<FnPtr>,
}

impl Hooks for RunbookHooks<'_> {
    type Error = Box<rhai::EvalAltResult>;

    fn ask(&mut self, question: &str) -> Answer {
        let reply = self.host.prompter.ask(&format!("{question} [y/N]"));
        Answer::from_reply(reply.as_deref(), &self.host.interrupt)
    }

    fn gate(&mut self, input: GateInput<'_>) -> Option<Result<GateVerdict, Self::Error>> {
        let gate = self.gate.as_ref()?;
        let mut m = batch_map(&input);
        m.insert("batch".into(), Dynamic::from(input.batch as rhai::INT));
        m.insert("batches".into(), Dynamic::from(input.batches as rhai::INT));
        m.insert("run".into(), Dynamic::from_map(result(input.tally)));
        let decision: Dynamic = match gate.call_within_context(self.ctx, (Dynamic::from_map(m),)) {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        Some(if let Some(b) = decision.clone().try_cast::<bool>() {
            Ok(if b { GateVerdict::Continue } else { GateVerdict::Stop })
        } else if decision.is_string() && decision.to_string() == "pause" {
            Ok(GateVerdict::Pause)
        } else {
            Err(runtime_error(
                "invalid",
                format!("rpc_batch.gate must return true, false or \"pause\", not {decision}"),
            ))
        })
    }
}

/// Runs `rpc_batch`.
fn rpc_batch(host: &Host, ctx: &NativeCallContext, agent: &str, action: &str, inputs: &Map, opts: &Map) -> Res<Map> {
    let fleet = host.fleet()?.clone();
    // Validate before anything else touches the fleet; errors never carry clear secrets.
    refuse_masked_text(&Dynamic::from_map(inputs.clone()), &format!("rpc_batch {agent}#{action} inputs"))?;
    let wire = fleet
        .ddl()
        .validate(agent, action, &map_to_json(inputs, Secrets::Reveal))
        .map_err(|e| runtime_error(e.kind().as_str(), e.to_string()))?;
    let (mut rollout, gate) = plan(host, agent, action, opts)?;
    // A secret stood in for under --dry-run may be planned with, never sent.
    if !rollout.plan_only {
        if let Some(name) = missing_secret(inputs) {
            return Err(runtime_error(
                "invalid",
                format!("secret {name} is not set, and {agent}#{action} is sent even under --dry-run (read-only)"),
            ));
        }
    }
    rollout.inputs = wire;
    rollout.shown = Value::Object(map_to_json(inputs, Secrets::Mask));
    // Resuming: the journaled rollout with this ordinal must be this very call.
    let (call, was) = host.next_call();
    rollout.call = call;
    if let Some((was, flags)) = was {
        crate::journal::replay::same_call(call, &was, agent, action, &rollout.shown).map_err(|e| host.guardrail(e))?;
        let (retry_failed, resend_unknown) = (flags.retry_failed, flags.resend_unknown);
        rollout.resume = Some(crate::rollout::Resumed { call: was, retry_failed, resend_unknown });
    }
    let mut hooks = RunbookHooks { host, ctx, gate };
    let o = crate::rollout::drive(&host.rt, &fleet, &rollout, &host.reporter, &host.interrupt, &mut hooks);
    if o.planned {
        return Ok(dry_run(host, &rollout));
    }
    let t = &o.tally;
    let c = t.counts();
    host.count(c.ok, c.failed, c.no_reply, c.unknown);
    let map = result(t);
    match o.end {
        End::Done => Ok(map),
        End::Stopped(stop) => Err(host.guardrail(stop.to_string())),
        End::BrokerLost(why) => Err(host.broker_lost(why)),
        End::Failed(e) => Err(fleet_error(host, e)),
        End::Hook(e) => Err(e),
    }
}

/// The name of a secret among `inputs` that is not set (`--dry-run` stands in for it).
fn missing_secret(inputs: &Map) -> Option<String> {
    inputs
        .values()
        .find_map(|v| v.read_lock::<crate::redact::Secret>().filter(|s| s.is_missing()).map(|s| s.name.clone()))
}

fn dry_run(host: &Host, r: &Rollout) -> Map {
    let total = r.batches.len();
    host.reporter.say(&format!(
        "dry-run: would call {} {} on {} node(s) in {total} batch(es)",
        r.label(),
        r.shown,
        r.nodes()
    ));
    for (i, b) in r.batches.iter().enumerate() {
        let by = match (r.counts.get(i).filter(|c| !c.is_empty()), r.groups.get(i).and_then(Option::as_ref)) {
            (Some(c), Some(g)) => format!(" [group {g}: {}]", crate::progress::event::group_counts(c)),
            (Some(c), None) => format!(" [{}]", crate::progress::event::group_counts(c)),
            (None, _) => String::new(),
        };
        host.reporter.say(&format!("dry-run: batch {}/{total}: {}{by}", i + 1, b.join(", ")));
    }
    let mut m = result_map(&Tally::default(), true);
    m.insert("planned".into(), Dynamic::from_array(r.batches.iter().map(|b| strings(b)).collect()));
    m.insert("batches".into(), Dynamic::from(total as rhai::INT));
    m
}

/// What a gate sees of its batch. The replies come from `input.replies`: by the time the gate
/// runs they have moved from the outcome to the tally (a gate once saw no ok and no failed
/// node at all).
fn batch_map(input: &GateInput<'_>) -> Map {
    let (out, answered) = (input.out, input.replies);
    let mut m = Map::new();
    m.insert("nodes".into(), strings(input.nodes));
    m.insert("ok".into(), strings(&crate::fleet::rpc::ok_nodes(answered)));
    let mut failed = Map::new();
    for r in answered.iter().filter(|r| !r.ok()) {
        failed.insert(r.sender.as_str().into(), status(Some(r.statuscode), &r.statusmsg));
    }
    for (n, why) in &out.malformed {
        failed.insert(n.into(), status(None, &format!("malformed reply: {why}")));
    }
    m.insert("failed".into(), Dynamic::from_map(failed));
    m.insert("no_reply".into(), strings(&out.no_reply));
    m.insert("replies".into(), replies(answered));
    m
}

fn replies<'a>(r: impl IntoIterator<Item = &'a crate::fleet::rpc::NodeReply>) -> Dynamic {
    Dynamic::from_array(
        r.into_iter().map(|r| from_json(&serde_json::to_value(r).unwrap_or(Value::Null))).collect::<Array>(),
    )
}

fn status(code: Option<u8>, msg: &str) -> Dynamic {
    let mut m = Map::new();
    m.insert("statuscode".into(), code.map(|c| Dynamic::from(c as rhai::INT)).unwrap_or(Dynamic::UNIT));
    m.insert("statusmsg".into(), Dynamic::from(msg.to_string()));
    Dynamic::from_map(m)
}

/// The rollout's result map. A rollout a guardrail or Ctrl-C stops never returns one: the
/// stop ends the run, so there is no `aborted` flag to check.
fn result(t: &Tally) -> Map {
    result_map(t, false)
}

fn result_map(t: &Tally, dry_run: bool) -> Map {
    let mut m = Map::new();
    m.insert("ok".into(), strings(&t.ok_nodes()));
    let failed: Map = t.failures().into_iter().map(|(n, f)| (n.into(), status(f.statuscode, &f.statusmsg))).collect();
    m.insert("failed".into(), Dynamic::from_map(failed));
    m.insert("no_reply".into(), strings(&t.no_reply));
    m.insert("late".into(), strings(&t.late.iter().map(|r| r.sender.clone()).collect::<Vec<_>>()));
    m.insert("replies".into(), replies(t.replies.iter().chain(&t.late)));
    m.insert("batches".into(), Dynamic::from(t.batches as rhai::INT));
    m.insert("dry_run".into(), Dynamic::from(dry_run));
    m
}
