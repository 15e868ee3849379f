//! `fleetbook check`: static checks of a compiled runbook against the agent DDLs, without a
//! fleet. Calls whose agent, action or keys are literals are checked; computed ones are left
//! to run time.

use rhai::{ASTNode, Expr, Position, AST};

use super::api::{discover, rollout};
use crate::fleet::ddl::DdlRegistry;

/// One problem found.
#[derive(Debug, Clone)]
pub struct Finding {
    pub pos: Position,
    pub message: String,
}

fn literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::StringConstant(s, _) => Some(s.as_str()),
        _ => None,
    }
}

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

/// Checks every literal `rpc_batch(...)` and `discover(#{...})` call in `ast`.
pub fn lint(ast: &AST, ddl: &DdlRegistry) -> Vec<Finding> {
    let mut out = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(Expr::FnCall(call, pos)) | ASTNode::Stmt(rhai::Stmt::FnCall(call, pos))) = path.last()
        else {
            return true;
        };
        match call.name.as_str() {
            "rpc_batch" => check_rpc(call.args.as_slice(), *pos, ddl, &mut out),
            "discover" => unknown_keys(call.args.first(), &discover::KEYS, "discover", &mut out),
            _ => {}
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
    for (k, kpos) in args.get(2).and_then(map_keys).unwrap_or_default() {
        if !inputs.contains(&k) {
            let valid = if inputs.is_empty() { "none".to_string() } else { inputs.join(", ") };
            out.push(Finding {
                pos: kpos,
                message: format!("'{k}' is not an input of {agent}#{action}; valid inputs: {valid}"),
            });
        }
    }
    unknown_keys(args.get(3), &rollout::KEYS, "rpc_batch", out);
}
