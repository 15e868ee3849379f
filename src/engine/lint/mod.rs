//! `fleetbook check`: static checks of a compiled runbook against the agent DDLs, without a
//! fleet. Calls whose agent, action or keys are literals are checked; computed ones are left
//! to run time. Option keys are checked against the `KEYS` consts the functions themselves
//! read their options with, so the lint and the runtime agree.

use std::borrow::Cow;

use rhai::{ASTNode, Expr, Position, AST};

mod names;
mod values;

use super::api::{discover, election, governor, inventory, metrics, rollout, watch};
use crate::fleet::ddl::DdlRegistry;

/// One problem found.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Where in the runbook.
    pub pos: Position,
    /// What is wrong, naming what would be right.
    pub message: String,
}

fn literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::StringConstant(s, _) => Some(s.as_str()),
        _ => None,
    }
}

/// Where a function takes an option map: with `args` arguments, the one at `arg`.
struct OptionMap {
    function: &'static str,
    args: usize,
    arg: usize,
    keys: &'static [&'static str],
}

/// Every function that takes an option map, with the keys its runtime accepts.
const OPTION_MAPS: [OptionMap; 11] = [
    OptionMap { function: "discover", args: 1, arg: 0, keys: &discover::KEYS },
    OptionMap { function: "rpc_batch", args: 4, arg: 3, keys: &rollout::KEYS },
    OptionMap { function: "watch_events", args: 1, arg: 0, keys: &watch::KEYS },
    OptionMap { function: "watch_events", args: 2, arg: 1, keys: &watch::COLLECT_KEYS },
    OptionMap { function: "event_watch", args: 1, arg: 0, keys: &watch::FILTER_KEYS },
    OptionMap { function: "metrics", args: 2, arg: 1, keys: &metrics::KEYS },
    OptionMap { function: "election_leader", args: 2, arg: 1, keys: &election::KEYS },
    OptionMap { function: "election_info", args: 2, arg: 1, keys: &election::KEYS },
    OptionMap { function: "evict", args: 2, arg: 1, keys: &election::EVICT_KEYS },
    OptionMap { function: "governor", args: 2, arg: 1, keys: &governor::KEYS },
    OptionMap { function: "inventory", args: 2, arg: 1, keys: &inventory::KEYS },
];

/// Option maps inside `rpc_batch`'s options: the key and the keys its map takes.
const NESTED: [(&str, &[&str]); 2] = [("filter", &discover::KEYS), ("wait_for", &rollout::WAIT_FOR_KEYS)];

fn map_keys(e: &Expr) -> Option<Vec<(String, Position)>> {
    match e {
        Expr::Map(m, _) => Some(m.0.iter().map(|(id, _)| (id.name.to_string(), id.pos)).collect()),
        // The optimizer folds all-constant map literals into one value.
        Expr::DynamicConstant(v, pos) => {
            v.read_lock::<rhai::Map>().map(|m| m.keys().map(|k| (k.to_string(), *pos)).collect())
        }
        _ => None,
    }
}

/// The value of `key` in a literal map, as an expression.
fn map_value<'e>(e: &'e Expr, key: &str) -> Option<Cow<'e, Expr>> {
    match e {
        Expr::Map(m, _) => m.0.iter().find(|(id, _)| id.name == key).map(|(_, v)| Cow::Borrowed(v)),
        Expr::DynamicConstant(v, pos) => {
            let value = v.read_lock::<rhai::Map>()?.get(key)?.clone();
            Some(Cow::Owned(Expr::from_dynamic(value, *pos)))
        }
        _ => None,
    }
}

fn unknown_keys(e: Option<&Expr>, valid: &[&str], what: &str, out: &mut Vec<Finding>) {
    for (k, pos) in e.and_then(map_keys).unwrap_or_default() {
        if !valid.contains(&k.as_str()) {
            out.push(Finding {
                pos,
                message: format!("{what}: unknown option '{k}'; valid options: {}", valid.join(", ")),
            });
        }
    }
}

/// Checks every literal `rpc_batch(...)` call against the DDLs, every literal option map
/// (keys and values), and, given the engine, that every called function exists.
pub fn lint(ast: &AST, ddl: &DdlRegistry, engine: Option<&rhai::Engine>) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(engine) = engine {
        names::check_calls(ast, engine, &mut out);
    }
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(Expr::FnCall(call, pos)) | ASTNode::Stmt(rhai::Stmt::FnCall(call, pos))) = path.last()
        else {
            return true;
        };
        let (name, args) = (call.name.as_str(), call.args.as_slice());
        if name == "rpc_batch" {
            check_rpc(args, *pos, ddl, &mut out);
        }
        values::options(name, args, *pos, &mut out);
        for o in OPTION_MAPS.iter().filter(|o| o.function == name && o.args == args.len()) {
            unknown_keys(args.get(o.arg), o.keys, name, &mut out);
        }
        if let Some(opts) = args.get(3).filter(|_| name == "rpc_batch") {
            for (key, keys) in NESTED {
                let nested = map_value(opts, key);
                unknown_keys(nested.as_deref(), keys, &format!("rpc_batch.{key}"), &mut out);
            }
        }
        true
    });
    out.sort_by_key(|f| (f.pos.line(), f.pos.position()));
    out
}

fn check_rpc(args: &[Expr], pos: Position, ddl: &DdlRegistry, out: &mut Vec<Finding>) {
    let (Some(agent), Some(action)) = (args.first().and_then(literal), args.get(1).and_then(literal)) else {
        return;
    };
    let found = match ddl.agent(agent) {
        Err(e) => Err(e),
        Ok(a) => a.action(action).map(|act| act.input.keys().cloned().collect::<Vec<_>>()),
    };
    let inputs = match found {
        Ok(inputs) => inputs,
        Err(e) => {
            out.push(Finding { pos: args.first().map(|a| a.position()).unwrap_or(pos), message: e.to_string() });
            return;
        }
    };
    if let Some(map) = args.get(2) {
        values::inputs(agent, action, map, ddl, out);
    }
    for (k, kpos) in args.get(2).and_then(map_keys).unwrap_or_default() {
        if !inputs.contains(&k) {
            let valid = if inputs.is_empty() { "none".to_string() } else { inputs.join(", ") };
            out.push(Finding {
                pos: kpos,
                message: format!("'{k}' is not an input of {agent}#{action}; valid inputs: {valid}"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(src: &str) -> Vec<String> {
        let ast = rhai::Engine::new().compile(src).unwrap();
        lint(&ast, &DdlRegistry::builtin(), None).into_iter().map(|f| f.message).collect()
    }

    #[test]
    fn a_misspelt_option_is_flagged_in_every_function_that_takes_options() {
        let calls = [
            (r#"discover(#{clas: "x"})"#, "discover: unknown option 'clas'"),
            (
                r#"rpc_batch("rpcutil", "ping", #{}, #{nodes: [], batchsize: 1})"#,
                "rpc_batch: unknown option 'batchsize'",
            ),
            (
                r#"rpc_batch("rpcutil", "ping", #{}, #{filter: #{clas: "x"}})"#,
                "rpc_batch.filter: unknown option 'clas'",
            ),
            (
                r#"rpc_batch("rpcutil", "ping", #{}, #{nodes: [], gate: |b| true, wait_for: #{evnt: "startup"}})"#,
                "rpc_batch.wait_for: unknown option 'evnt'",
            ),
            (r#"watch_events(#{typs: "startup"})"#, "watch_events: unknown option 'typs'"),
            (r#"watch_events(w, #{types: "startup"})"#, "watch_events: unknown option 'types'"),
            (r#"event_watch(#{count: 1})"#, "event_watch: unknown option 'count'"),
            (r#"metrics("http://x/metrics", #{timout: "1s"})"#, "metrics: unknown option 'timout'"),
            (r#"election_leader("e", #{buckt: "b"})"#, "election_leader: unknown option 'buckt'"),
            (r#"election_info("e", #{buckt: "b"})"#, "election_info: unknown option 'buckt'"),
            (r#"evict("e", #{expect: "n1"})"#, "evict: unknown option 'expect'"),
        ];
        for (src, want) in calls {
            let found = findings(src);
            assert!(found.len() == 1 && found[0].starts_with(want), "{src}: {found:?}");
        }
    }

    #[test]
    fn valid_options_are_not_flagged() {
        let src = r#"
            discover(#{class: "x", min: 1});
            discover(#{"with": "apache", combined: "x", dm: "inventory", "do": #{file: "x"}, limit: 2, limit_seed: 1, limit_method: "random"});
            rpc_batch("rpcutil", "ping", #{}, #{nodes: [], limit: "10%", limit_seed: 3, limit_method: "random", filter: #{discovery_options: #{}}});
            rpc_batch("rpcutil", "ping", #{}, #{filter: #{fact: "a=b"}, wait_for: #{event: "startup"}, gate: |b| true});
            watch_events(#{types: "startup", "until": |e| true});
            watch_events(w, #{count: 1, stop_when: |e| true});
            event_watch(#{identity: "n1"});
            metrics("http://x/metrics", #{timeout: "1s"});
            election_leader("e", #{bucket: "b"});
            election_info("e", #{bucket: "b"});
            evict("e", #{bucket: "b", expect_leader: "n1"});
        "#;
        assert_eq!(findings(src), Vec::<String>::new());
    }
}
