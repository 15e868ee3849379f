//! Calls of functions that do not exist (`discver()`), found before the run, with the closest
//! known name. Known: every function the engine has (fleetbook's and Rhai's packages), the
//! runbook's own `fn`s, Rhai's keyword functions, and variables (a closure held in a variable
//! is called like a function). Namespaced calls (`lib::f()`), methods and operators are left
//! to run time.

use std::collections::BTreeSet;

use rhai::{ASTNode, Engine, Expr, Stmt, AST};

use super::Finding;

/// Every name bound as a variable or parameter anywhere in the script.
fn bound(ast: &AST) -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Var(x, ..))) = path.last() {
            vars.insert(x.0.name.to_string());
        }
        true
    });
    for f in ast.iter_functions() {
        vars.extend(f.params.iter().map(|p| p.to_string()));
    }
    vars
}

/// A literal argument's type as a runbook author says it, or `None` when not a literal.
fn literal_type(e: &Expr) -> Option<&'static str> {
    let v = e.get_literal_value(None)?;
    Some(if v.is_string() {
        "string"
    } else if v.is_int() {
        "integer"
    } else if v.is_float() {
        "float"
    } else if v.is_bool() {
        "bool"
    } else if v.is_map() {
        "map"
    } else if v.is_array() {
        "array"
    } else if v.is_unit() {
        "()"
    } else {
        return None;
    })
}

/// Whether a literal of type `got` fits a parameter declared as `want`.
fn fits(got: &str, want: &str) -> bool {
    let want = want.rsplit(": ").next().unwrap_or(want).trim().to_ascii_lowercase();
    match want.as_str() {
        "&str" | "string" | "immutablestring" | "&mut string" => got == "string",
        "int" | "i64" => got == "integer",
        "float" | "f64" => got == "float",
        "bool" => got == "bool",
        "map" => got == "map",
        "array" => got == "array",
        "fnptr" | "fn" => false,
        // Dynamic, ? and types we do not know take anything.
        _ => true,
    }
}

/// Calls of fleetbook's functions whose literal arguments fit none of the function's forms.
fn wrong_arguments(ast: &AST, engine: &Engine, out: &mut Vec<Finding>) {
    // fleetbook's functions are registered on the engine itself (not in a package).
    let sigs = engine.gen_fn_signatures(false);
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(Expr::FnCall(call, pos)) | ASTNode::Stmt(Stmt::FnCall(call, pos))) = path.last() else {
            return true;
        };
        let name = call.name.as_str();
        if !crate::engine::API.contains(&name) || !call.namespace.is_empty() {
            return true;
        }
        let Some(got) = call.args.iter().map(literal_type).collect::<Option<Vec<_>>>() else { return true };
        let forms: Vec<&String> = sigs.iter().filter(|s| s.split('(').next() == Some(name)).collect();
        let params = |s: &str| -> Vec<String> {
            let inner = s.split_once('(').map(|x| x.1).unwrap_or("");
            let inner = inner.split_once(')').map(|x| x.0).unwrap_or("").trim();
            if inner.is_empty() {
                Vec::new()
            } else {
                inner.split(", ").map(str::to_string).collect()
            }
        };
        let fitting = forms.iter().any(|f| {
            let p = params(f);
            p.len() == got.len() && p.iter().zip(&got).all(|(w, g)| fits(g, w))
        });
        if forms.is_empty() || fitting {
            return true;
        }
        let mut takes: Vec<String> = forms.iter().map(|f| f.split(" ->").next().unwrap_or(f).to_string()).collect();
        takes.sort();
        takes.dedup();
        let message = format!("{name}({}) is not a form of {name}; it takes: {}", got.join(", "), takes.join(" or "));
        out.push(Finding { pos: *pos, message });
        true
    });
}

/// Finds calls of unknown functions, and of fleetbook's functions with literal arguments of
/// the wrong types.
pub(super) fn check_calls(ast: &AST, engine: &Engine, out: &mut Vec<Finding>) {
    unknown_functions(ast, engine, out);
    wrong_arguments(ast, engine, out);
}

/// Finds calls of unknown functions.
fn unknown_functions(ast: &AST, engine: &Engine, out: &mut Vec<Finding>) {
    let known = crate::engine::explain::known_functions(engine, Some(ast));
    let vars = bound(ast);
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(Expr::FnCall(call, pos)) | ASTNode::Stmt(Stmt::FnCall(call, pos))) = path.last() else {
            return true;
        };
        let name = call.name.as_str();
        let plain = call.namespace.is_empty() && call.op_token.is_none();
        let ident = name.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !plain || !ident || known.contains(name) || vars.contains(name) {
            return true;
        }
        out.push(Finding { pos: *pos, message: crate::engine::explain::unknown_function(name, &known) });
        true
    });
}

#[cfg(test)]
mod call_tests {
    use super::*;

    #[test]
    fn wrong_literal_arguments_are_found() {
        let mut engine = Engine::new();
        rhai::FuncRegistration::new("discover")
            .with_params_info(["filter: Map", "Array"])
            .register_into_engine(&mut engine, |_m: rhai::Map| rhai::Array::new());
        let ast = engine.compile("let n = discover(\"web\");").unwrap();
        let mut out = Vec::new();
        wrong_arguments(&ast, &engine, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].message.starts_with("discover(string) is not a form of discover; it takes: discover(filter: map)"),
            "{out:?}"
        );
        let ok = engine.compile("let n = discover(#{ class: \"web\" }); let m = discover(x);").unwrap();
        let mut out = Vec::new();
        wrong_arguments(&ok, &engine, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
