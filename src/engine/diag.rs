//! Runbook errors shown as `file:line:col`, the source line and a caret.

use rhai::{EvalAltResult, Position};

/// Renders a message at a position of `source`, rustc style.
pub fn render(file: &str, source: &str, pos: Position, message: &str) -> String {
    let (Some(line), col) = (pos.line(), pos.position()) else {
        return format!("error: {message}\n --> {file}");
    };
    let col = col.unwrap_or(1);
    let text = source.lines().nth(line.saturating_sub(1)).unwrap_or("");
    let gutter = line.to_string().len();
    let pad = " ".repeat(gutter);
    let caret_pad: String =
        text.chars().take(col.saturating_sub(1)).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
    format!("error: {message}\n{pad}--> {file}:{line}:{col}\n{pad} |\n{line} | {text}\n{pad} | {caret_pad}^")
}

/// The message and position of a runtime error, looking through function-call wrappers to
/// the innermost cause (which is where the runbook went wrong).
pub fn runtime_parts(err: &EvalAltResult) -> (String, Position) {
    match err {
        EvalAltResult::ErrorInFunctionCall(name, _, inner, pos) => {
            let (msg, ipos) = runtime_parts(inner);
            // Inside a script function, the inner position is the precise one.
            if ipos.is_none() {
                (format!("in {name}: {msg}"), *pos)
            } else {
                (msg, ipos)
            }
        }
        EvalAltResult::ErrorRuntime(v, pos) => {
            let msg = match v.read_lock::<rhai::Map>() {
                Some(m) => match (m.get("message"), m.get("kind")) {
                    (Some(msg), Some(kind)) => format!("{msg} ({kind})"),
                    (Some(msg), None) => msg.to_string(),
                    _ => v.to_string(),
                },
                None => v.to_string(),
            };
            (msg, *pos)
        }
        EvalAltResult::ErrorTerminated(v, pos) => (v.to_string(), *pos),
        other => {
            let pos = other.position();
            // Rhai appends " (line L, position C)" to its messages; we show the place ourselves.
            let text = other.to_string();
            let text = match text.rfind(" (line ") {
                Some(i) if !pos.is_none() => text[..i].to_string(),
                _ => text,
            };
            (text, pos)
        }
    }
}

/// [`runtime_parts`], with Rhai's "Function not found" rewritten for a person (which
/// function, what it got, what it takes, the closest name, the missing map field).
pub fn explained(
    err: &EvalAltResult,
    engine: &rhai::Engine,
    ast: Option<&rhai::AST>,
    source: &str,
) -> (String, Position) {
    let (msg, pos) = runtime_parts(err);
    let mut inner = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, e, _) = inner {
        inner = e;
    }
    match inner {
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            let text = super::explain::function_not_found(sig, engine, ast, source, pos.line(), pos.position());
            (text, pos)
        }
        _ => (msg, pos),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_under_the_column() {
        let src = "let a = 1;\nlet b = foo(;\n";
        let out = render("rb.rhai", src, Position::new(2, 13), "bad");
        assert!(out.contains("--> rb.rhai:2:13"), "{out}");
        assert!(out.contains("2 | let b = foo(;"), "{out}");
        assert!(out.ends_with("  |             ^"), "{out:?}");
    }
}
