//! Which `--arg` names a runbook reads, found statically in its AST (and in the modules it
//! imports), so a misspelled `--arg` is refused before anything touches the fleet.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rhai::{ASTNode, Engine, Expr, Stmt, AST};

/// What a runbook does with `arg(...)`.
#[derive(Debug, Default)]
pub struct ArgUse {
    /// Names read with a literal: `arg("class")`, `arg("splay", 1)`.
    pub names: BTreeSet<String>,
    /// Why the list may be incomplete (a computed name, an import that cannot be read); the
    /// check is then skipped.
    pub unknown: Option<String>,
}

impl ArgUse {
    /// Given `--arg` names the runbook never reads. Empty when the runbook's use is unknown.
    pub fn unread<'a>(&self, given: impl IntoIterator<Item = &'a String>) -> Vec<&'a String> {
        if self.unknown.is_some() {
            return Vec::new();
        }
        given.into_iter().filter(|n| !self.names.contains(n.as_str())).collect()
    }
}

/// Collects the `arg` names of `ast`; imports are looked up in `dirs` like the engine's file
/// resolver does (`dir/PATH.rhai`).
pub fn collect(engine: &Engine, ast: &AST, file: &str, dirs: &[PathBuf]) -> ArgUse {
    let mut used = ArgUse::default();
    let mut seen = BTreeSet::new();
    scan(engine, ast, file, dirs, &mut used, &mut seen);
    used
}

fn scan(engine: &Engine, ast: &AST, file: &str, dirs: &[PathBuf], used: &mut ArgUse, seen: &mut BTreeSet<PathBuf>) {
    let mut imports = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, pos)) | ASTNode::Stmt(Stmt::FnCall(call, pos)))
                if call.name == "arg" && !call.is_qualified() =>
            {
                match call.args.first() {
                    Some(Expr::StringConstant(s, _)) => {
                        used.names.insert(s.to_string());
                    }
                    _ => {
                        let at = format!("{file}:{}", pos.line().unwrap_or(0));
                        used.unknown.get_or_insert(format!("{at} reads arg() with a computed name"));
                    }
                }
            }
            Some(ASTNode::Stmt(Stmt::Import(x, pos))) => match &x.0 {
                Expr::StringConstant(s, _) => imports.push(s.to_string()),
                _ => {
                    let at = format!("{file}:{}", pos.line().unwrap_or(0));
                    used.unknown.get_or_insert(format!("{at} imports a module by a computed path"));
                }
            },
            _ => {}
        }
        true
    });
    for import in imports {
        let Some(module) = find(dirs, &import) else {
            used.unknown.get_or_insert(format!("{file} imports \"{import}\", which was not found"));
            continue;
        };
        if !seen.insert(module.clone()) {
            continue;
        }
        let shown = module.display().to_string();
        match std::fs::read_to_string(&module).ok().and_then(|src| engine.compile(super::strip_shebang(&src)).ok()) {
            Some(ast) => scan(engine, &ast, &shown, dirs, used, seen),
            None => {
                used.unknown.get_or_insert(format!("{shown} could not be read"));
            }
        }
    }
}

fn find(dirs: &[PathBuf], import: &str) -> Option<PathBuf> {
    let rel = Path::new(import);
    let candidates: Vec<PathBuf> = if rel.is_absolute() {
        vec![rel.with_extension("rhai")]
    } else {
        dirs.iter().map(|d| d.join(rel).with_extension("rhai")).collect()
    };
    candidates.into_iter().find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(src: &str) -> ArgUse {
        let engine = Engine::new();
        collect(&engine, &engine.compile(src).unwrap(), "rb.rhai", &[])
    }

    #[test]
    fn literal_names_in_statements_functions_and_closures() {
        let u = used("let c = arg(\"class\", \"\"); fn f() { arg(\"splay\", 1) } let g = || arg(\"sleep\");");
        assert_eq!(u.names.iter().map(String::as_str).collect::<Vec<_>>(), ["class", "sleep", "splay"]);
        assert!(u.unknown.is_none());
        let given = ["clas".to_string(), "class".to_string()];
        assert_eq!(u.unread(&given), [&given[0]]);
    }

    #[test]
    fn computed_names_and_missing_imports_make_the_list_unknown() {
        let u = used("let n = \"class\"; arg(n, \"\")");
        assert!(u.unknown.as_deref().unwrap().contains("rb.rhai:1 reads arg() with a computed name"), "{u:?}");
        assert!(u.unread(&["x".to_string()]).is_empty());
        let u = used("import \"nowhere\" as m;");
        assert!(u.unknown.as_deref().unwrap().contains("\"nowhere\", which was not found"), "{u:?}");
    }
}
