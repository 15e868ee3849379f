//! The discovery methods by name, with their options, as `--dm`/`--do` and a runbook's
//! `dm`/`do` give them, and the reading of the files they name.

use std::collections::BTreeMap;
use std::io::Read;

use super::inventory::Inventory;
use super::nodelist::{self, ListFormat};

/// A method's options (`--do K=V`, a runbook's `"do"` map).
pub type MethodOptions = BTreeMap<String, String>;

/// The discovery defaults of the Choria client configuration: `default_discovery_method`,
/// `default_discovery_options` (`K=V`, comma separated) and
/// `plugin.choria.discovery.inventory.source`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryDefaults {
    pub method: Option<String>,
    pub options: Vec<String>,
    pub inventory: Option<String>,
}

impl DiscoveryDefaults {
    /// The method and options to use when the caller names no method: the configured
    /// method, with the configured options unless the caller gave some (as go-choria's
    /// `SetDefaultsFromConfig`); `None` when no method is configured.
    pub fn method_and_options(&self, given: &MethodOptions) -> Result<Option<(Method, MethodOptions)>, String> {
        let Some(name) = &self.method else { return Ok(None) };
        let method = Method::parse(name).map_err(|e| format!("default_discovery_method: {e}"))?;
        if !given.is_empty() {
            return Ok(Some((method, given.clone())));
        }
        let mut opts = BTreeMap::new();
        for kv in &self.options {
            let (k, v) =
                kv.split_once('=').ok_or_else(|| format!("default_discovery_options: {kv:?}: expected K=V"))?;
            opts.insert(k.trim().to_string(), v.trim().to_string());
        }
        check_options(method, &opts, "default_discovery_options")?;
        Ok(Some((method, opts)))
    }

    /// The inventory file: the `file` option, else the configured source.
    pub fn inventory_file<'a>(&'a self, opts: &'a BTreeMap<String, String>) -> Option<&'a str> {
        opts.get("file").or(self.inventory.as_ref()).map(String::as_str)
    }
}

/// The discovery methods fleetbook knows, as `--dm` and the runbook `dm` key name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Broadcast,
    FlatFile,
    Inventory,
}

impl Method {
    /// go-choria's names: `mc` is `broadcast`, `file` is `flatfile`. Its `choria`
    /// (PuppetDB) and `external` methods are refused by name.
    pub fn parse(name: &str) -> Result<Method, String> {
        match name {
            "broadcast" | "mc" => Ok(Method::Broadcast),
            "flatfile" | "file" => Ok(Method::FlatFile),
            "inventory" => Ok(Method::Inventory),
            "choria" | "puppetdb" | "external" => Err(format!(
                "discovery method {name:?} is not supported by fleetbook; use broadcast, flatfile or inventory"
            )),
            other => {
                Err(format!("unknown discovery method {other:?}; valid: broadcast (mc), flatfile (file), inventory"))
            }
        }
    }

    /// The name `--dm` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Broadcast => "broadcast",
            Method::FlatFile => "flatfile",
            Method::Inventory => "inventory",
        }
    }

    /// The `--do` keys the method takes.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Method::Broadcast => &[],
            Method::FlatFile => &["file", "format", "filter"],
            // go-choria's `novalidate` skips its JSON schema check, which fleetbook does not
            // make beyond `$schema` and the field names: accepted, changes nothing.
            Method::Inventory => &["file", "novalidate"],
        }
    }
}

/// The method and its options, checked: `what` names the flag or key in errors (`--do`,
/// `discover.do`).
pub fn check_options(method: Method, opts: &BTreeMap<String, String>, what: &str) -> Result<(), String> {
    for k in opts.keys() {
        if !method.keys().contains(&k.as_str()) {
            let valid = if method.keys().is_empty() { "none".to_string() } else { method.keys().join(", ") };
            return Err(format!("{what}: {k:?} is not an option of the {} method; valid: {valid}", method.name()));
        }
    }
    Ok(())
}

/// Reads a node list from `path` (`-`: stdin), in the format `--do format=` names or the
/// one its content shows, picked out by `--do filter=` when given.
pub fn read_list(path: &str, format: Option<&str>, query: Option<&str>) -> Result<Vec<String>, String> {
    let (origin, text) =
        if path == "-" { ("stdin".to_string(), read_stdin()?) } else { (path.to_string(), read(path)?) };
    nodelist::parse_query(&origin, &text, format.map(ListFormat::from_name), query).map_err(|e| e.to_string())
}

/// Reads and checks an inventory file.
pub fn read_inventory(path: &str) -> Result<Inventory, String> {
    Inventory::parse(path, &read(path)?)
}

/// Reads a file without blocking the runtime's other tasks.
fn read(path: &str) -> Result<String, String> {
    crate::blocking::blocking(|| std::fs::read_to_string(path)).map_err(|e| format!("{path}: {e}"))
}

/// Reads all of stdin.
pub fn read_stdin() -> Result<String, String> {
    let mut text = String::new();
    crate::blocking::blocking(|| std::io::stdin().lock().read_to_string(&mut text))
        .map_err(|e| format!("stdin: {e}"))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> MethodOptions {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn methods_by_go_choria_names() {
        assert_eq!(Method::parse("mc"), Ok(Method::Broadcast));
        assert_eq!(Method::parse("file"), Ok(Method::FlatFile));
        assert_eq!(Method::parse("inventory"), Ok(Method::Inventory));
        assert!(Method::parse("external").unwrap_err().contains("not supported by fleetbook"));
        assert!(Method::parse("dns").unwrap_err().starts_with("unknown discovery method \"dns\""));
        assert_eq!(
            check_options(Method::Broadcast, &opts(&[("file", "x")]), "--do").unwrap_err(),
            "--do: \"file\" is not an option of the broadcast method; valid: none"
        );
        assert!(check_options(Method::FlatFile, &opts(&[("file", "x"), ("filter", "a.b")]), "--do").is_ok());
    }

    #[test]
    fn config_defaults_apply_when_the_caller_names_no_method() {
        let none = DiscoveryDefaults::default();
        assert_eq!(none.method_and_options(&opts(&[])), Ok(None));
        let inv = DiscoveryDefaults {
            method: Some("inventory".into()),
            options: vec!["file=/etc/fleet.yaml".into()],
            inventory: Some("/srv/inv.yaml".into()),
        };
        let (m, o) = inv.method_and_options(&opts(&[])).unwrap().unwrap();
        assert_eq!((m, o.get("file").map(String::as_str)), (Method::Inventory, Some("/etc/fleet.yaml")));
        let given = opts(&[("file", "mine.yaml")]);
        assert_eq!(inv.method_and_options(&given).unwrap().unwrap().1, given, "given options win");
        assert_eq!(inv.inventory_file(&opts(&[])), Some("/srv/inv.yaml"));
        assert_eq!(inv.inventory_file(&given), Some("mine.yaml"));
        let bad = DiscoveryDefaults { method: Some("mc".into()), options: vec!["file=x".into()], inventory: None };
        assert!(bad.method_and_options(&opts(&[])).unwrap_err().contains("not an option of the broadcast method"));
    }
}
