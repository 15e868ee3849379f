//! Rhai's "Function not found: discover (&str | ImmutableString | String)" rewritten for a
//! person: which function, what it was given, what it takes, and, for an unknown name, the
//! closest known one; for a method called on `()`, the map field that does not exist.

use std::collections::BTreeSet;

use rhai::{Engine, AST};

/// What Rhai calls a type, as a runbook author would.
fn plain_type(t: &str) -> String {
    let t = t.trim();
    if t.contains("ImmutableString") || t == "&str" || t == "String" || t == "&mut String" {
        return "string".into();
    }
    let bare = t.trim_start_matches("&mut ").trim_start_matches('&');
    let bare = bare.rsplit("::").next().unwrap_or(bare);
    match bare {
        "i64" | "INT" | "i32" | "u64" | "usize" => "integer".into(),
        "f64" | "FLOAT" | "f32" => "float".into(),
        "bool" => "bool".into(),
        "()" => "()".into(),
        "Map" | "BTreeMap<SmartString, Dynamic>" => "map".into(),
        "Array" | "Vec<Dynamic>" => "array".into(),
        "FnPtr" | "Fn" => "closure".into(),
        "char" => "character".into(),
        "Dynamic" => "any value".into(),
        other => other.to_string(),
    }
}

/// Splits Rhai's "name (a, b | c)" into the name and the argument types.
fn parse_signature(sig: &str) -> (String, Vec<String>) {
    let Some((name, rest)) = sig.split_once(" (") else { return (sig.trim().to_string(), Vec::new()) };
    let inner = rest.strip_suffix(')').unwrap_or(rest).trim();
    let args = if inner.is_empty() { Vec::new() } else { inner.split(", ").map(plain_type).collect() };
    (name.trim().to_string(), args)
}

/// The argument types of a signature line `name(a: Map, b: &str) -> X`, as plain types.
fn params(line: &str) -> Vec<String> {
    let open = line.find('(').unwrap_or(line.len());
    let close = line.rfind(')').unwrap_or(line.len());
    let inner = line.get(open + 1..close).unwrap_or("").trim();
    if inner.is_empty() {
        return Vec::new();
    }
    inner.split(", ").map(|p| plain_type(p.rsplit(": ").next().unwrap_or(p))).collect()
}

/// Functions the parser and evaluator handle themselves, without a registered signature.
const KEYWORDS: [&str; 10] =
    ["print", "debug", "type_of", "Fn", "call", "curry", "is_def_fn", "is_def_var", "is_shared", "eval"];

/// Every signature the engine has: fleetbook's functions and Rhai's packages.
fn signatures(engine: &Engine) -> Vec<String> {
    let mut all = engine.gen_fn_signatures(true);
    all.extend(engine.gen_fn_signatures(false));
    all.sort();
    all.dedup();
    all
}

/// The function names the engine knows, with the script's own `fn`s (given its AST) and
/// Rhai's keyword functions. `check` and the runtime message judge names by the same set.
pub(super) fn known_functions(engine: &Engine, ast: Option<&AST>) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = signatures(engine)
        .iter()
        .filter_map(|s| s.split('(').next())
        .map(|n| n.trim().rsplit("::").next().unwrap_or(n).trim().to_string())
        .collect();
    names.extend(ast.into_iter().flat_map(|a| a.iter_functions().map(|f| f.name.to_string())));
    names.extend(KEYWORDS.iter().map(|k| k.to_string()));
    names
}

/// "unknown function NAME()", with the closest known name when one is near.
pub(super) fn unknown_function(name: &str, known: &BTreeSet<String>) -> String {
    match known.iter().map(|k| (distance(name, k), k)).filter(|(d, _)| *d <= 2).min() {
        Some((_, k)) => format!("unknown function {name}(); did you mean {k}()?"),
        None => format!("unknown function {name}()"),
    }
}

/// The edit distance between two short names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The field read just before a method call at `col` (1-based) of `line`:
/// `r.nosuchfield.len()` with the caret on `len` gives ("r", "nosuchfield").
fn field_before(line: &str, col: usize) -> Option<(String, String)> {
    let chars: Vec<char> = line.chars().collect();
    let mut i = col.checked_sub(1)?;
    // Rhai points at the method name; step back over the dot before it.
    if chars.get(i.checked_sub(1)?) != Some(&'.') {
        return None;
    }
    i -= 1;
    let ident = |end: usize| -> (String, usize) {
        let mut start = end;
        while start > 0 && (chars[start - 1].is_alphanumeric() || chars[start - 1] == '_') {
            start -= 1;
        }
        (chars[start..end].iter().collect(), start)
    };
    let (field, start) = ident(i);
    if field.is_empty() || start == 0 || chars[start - 1] != '.' {
        return None;
    }
    let (owner, _) = ident(start - 1);
    Some((owner, field))
}

/// The fields of what the runbook's functions return, for "the fields that exist".
fn known_fields(function: &str) -> Option<&'static str> {
    Some(match function {
        "rpc_batch" => "ok, failed, no_reply, late, replies, batches, dry_run (and planned under --dry-run)",
        "gate" => "batch, batches, nodes, ok, failed, no_reply, replies, run",
        "election_info" => "name, bucket, leader, revision, age, ttl",
        "watch_events" => "events, timed_out",
        _ => return None,
    })
}

/// What produced variable `owner`: `let owner = FUNC(` in the source, or a gate closure's
/// parameter.
fn producer(source: &str, owner: &str) -> Option<&'static str> {
    let assigned = regex::Regex::new(&format!(r"let\s+{}\s*=\s*([a-z_]+)\s*\(", regex::escape(owner))).ok()?;
    if let Some(c) = assigned.captures(source) {
        let f = c.get(1)?.as_str();
        return ["rpc_batch", "election_info", "watch_events"].into_iter().find(|k| *k == f);
    }
    let gate = regex::Regex::new(&format!(r"gate\s*:\s*\|\s*{}\s*\|", regex::escape(owner))).ok()?;
    gate.is_match(source).then_some("gate")
}

/// Rewrites Rhai's function-not-found text `sig` (raised at `line`, `col`), or `None` to
/// keep it.
pub(super) fn function_not_found(
    sig: &str,
    engine: &Engine,
    ast: Option<&AST>,
    source: &str,
    line: Option<usize>,
    col: Option<usize>,
) -> String {
    let (name, got) = parse_signature(sig);
    let shown_got = got.join(", ");
    // A method on `()`: most often a map field that does not exist.
    if got.first().map(String::as_str) == Some("()") {
        let text = line.and_then(|l| source.lines().nth(l.saturating_sub(1)));
        if let Some((owner, field)) = text.zip(col).and_then(|(t, c)| field_before(t, c)) {
            let fields = producer(source, &owner)
                .and_then(known_fields)
                .map(|f| format!("; the fields of {owner} are: {f}"))
                .unwrap_or_default();
            return format!(
                "{name}() was called on (): {owner}.{field} has no value, so `{field}` is not a field of {owner} (a misspelling?){fields}"
            );
        }
    }
    let known = known_functions(engine, ast);
    if !known.contains(&name) {
        return unknown_function(&name, &known);
    }
    let sigs: Vec<String> =
        signatures(engine).into_iter().filter(|s| s.split('(').next().map(str::trim) == Some(name.as_str())).collect();
    let mut takes: Vec<String> = sigs.iter().map(|s| s.split(" ->").next().unwrap_or(s).trim().to_string()).collect();
    takes.sort();
    takes.dedup();
    let mut why = String::new();
    // Where the arguments differ from the one form with as many arguments.
    let same_count: Vec<Vec<String>> = sigs.iter().map(|s| params(s)).filter(|p| p.len() == got.len()).collect();
    if let [want] = same_count.as_slice() {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            if g != w && w != "any value" {
                why = format!("; argument {} is a {g}, it must be a {w}", i + 1);
                break;
            }
        }
    } else if same_count.is_empty() && !takes.is_empty() {
        why = format!("; it was given {} argument(s)", got.len());
    }
    format!("{name}({shown_got}) is not a form of {name}{why}; it takes: {}", takes.join(" or "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut e = Engine::new();
        e.register_fn("discover", |_m: rhai::Map| 1_i64);
        e.register_fn("discover", || 1_i64);
        e
    }

    #[test]
    fn a_wrong_argument_type_names_the_argument_and_the_forms() {
        let m = function_not_found("discover (&str | ImmutableString | String)", &engine(), None, "", None, None);
        assert!(
            m.starts_with("discover(string) is not a form of discover; argument 1 is a string, it must be a map"),
            "{m}"
        );
        assert!(m.ends_with("it takes: discover() or discover(_: map)"), "{m}");
    }

    #[test]
    fn distances() {
        assert_eq!(distance("discver", "discover"), 1);
        assert_eq!(distance("abc", "abc"), 0);
    }

    #[test]
    fn an_unknown_name_gets_the_closest_one() {
        let m = function_not_found("discver ()", &engine(), None, "", None, None);
        assert_eq!(m, "unknown function discver(); did you mean discover()?");
        assert_eq!(function_not_found("zzzzzz ()", &engine(), None, "", None, None), "unknown function zzzzzz()");
    }

    #[test]
    fn a_method_on_unit_names_the_missing_field_and_the_fields() {
        let src = "let r = rpc_batch(\"a\", \"b\", #{}, #{});\nprint(r.nosuchfield.len());\n";
        let m = function_not_found("len (())", &engine(), None, src, Some(2), Some(21));
        assert!(m.contains("r.nosuchfield has no value") && m.contains("fields of r are: ok, failed"), "{m}");
        let gate = "rpc_batch(\"a\", \"b\", #{}, #{ gate: |b| b.faild.len() == 0 });";
        let m = function_not_found("len (())", &engine(), None, gate, Some(1), Some(47));
        assert!(m.contains("`faild` is not a field of b") && m.contains("batch, batches"), "{m}");
    }
}
