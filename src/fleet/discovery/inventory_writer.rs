//! Writes an inventory file as `choria tool inventory` does (`cmd/tool_inventory.go`): the
//! format by the file's extension (`.json` indented JSON, `.yaml`/`.yml` YAML, anything else
//! refused), a group `all` (identities `/./`) in a new file, the groups of an existing
//! inventory kept (as its `--update`), and the file replaced in one rename (a new file is
//! private, 0600, as go-choria's; a replaced one keeps its permissions).
//!
//! The file format has no place for a node's Choria version; we keep it in the fact
//! [`VERSION_FACT`], which a twin ([`crate::sim`]) takes back out, so the file stays one
//! that go-choria validates and reads.

use std::path::Path;

use serde_json::{Map, Value};

use super::inventory::{Group, GroupFilter, Inventory, InventoryNode, DATA_SCHEMA};

/// The fact that carries a node's Choria version in the files we write.
pub const VERSION_FACT: &str = "fleetbook_choria_version";

/// The two formats go-choria writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Json,
    Yaml,
}

impl FileFormat {
    /// The format `path`'s extension names, as go-choria decides it.
    pub fn for_path(path: &Path) -> Result<FileFormat, String> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Ok(FileFormat::Json),
            Some("yaml" | "yml") => Ok(FileFormat::Yaml),
            _ => Err(format!(
                "{}: cannot tell the inventory format from the extension; name it .yaml, .yml or .json",
                path.display()
            )),
        }
    }
}

impl InventoryNode {
    /// A node from its `rpcutil#inventory` reply, as `choria tool inventory` takes it:
    /// facts, classes, collectives and agents; the version goes into [`VERSION_FACT`].
    pub fn from_reply(identity: &str, reply: &Map<String, Value>) -> Result<InventoryNode, String> {
        let strings = |k: &str| -> Result<Vec<String>, String> {
            match reply.get(k) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_string).ok_or_else(|| format!("{k} holds a non-string: {x}")))
                    .collect(),
                Some(other) => Err(format!("{k} is not a list: {other}")),
            }
        };
        let mut facts = match reply.get("facts") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => return Err(format!("facts are not an object: {other}")),
        };
        if let Some(v) = reply.get("version").and_then(Value::as_str).filter(|v| !v.is_empty()) {
            facts.insert(VERSION_FACT.into(), Value::String(v.to_string()));
        }
        Ok(InventoryNode {
            name: identity.to_string(),
            collectives: strings("collectives")?,
            facts: Value::Object(facts),
            classes: strings("classes")?,
            agents: strings("agents")?,
        })
    }
}

impl Inventory {
    /// The inventory to write to `path`: the groups of the inventory already there (which
    /// must be one: anything else is not overwritten), else go-choria's group `all`; and
    /// `nodes`, sorted by name.
    pub fn for_file(path: &Path, mut nodes: Vec<InventoryNode>) -> Result<Inventory, String> {
        let groups = if path.exists() {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
            Inventory::parse(&shown, &text)
                .map_err(|e| format!("{e}; refusing to overwrite a file that is not an inventory"))?
                .groups
        } else {
            let all = GroupFilter { identities: vec!["/./".into()], ..Default::default() };
            vec![Group { name: "all".into(), filter: Some(all) }]
        };
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        for n in &mut nodes {
            if n.facts.is_null() {
                n.facts = Value::Object(Map::new());
            }
        }
        Ok(Inventory { schema: DATA_SCHEMA.into(), groups, nodes })
    }

    /// The file's text in `format`.
    pub fn render(&self, format: FileFormat) -> Result<String, String> {
        match format {
            FileFormat::Json => serde_json::to_string_pretty(self).map(|s| s + "\n").map_err(|e| e.to_string()),
            FileFormat::Yaml => serde_yaml::to_string(self).map_err(|e| e.to_string()),
        }
    }

    /// Writes the file at `path` in the format its extension names: a temporary file next
    /// to it, renamed over it, so a reader never sees half a file.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let shown = path.display();
        let text = self.render(FileFormat::for_path(path)?)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("{shown}: {e}"))?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(|e| format!("{shown}: {e}"))?;
        // A new file is private (0600, as go-choria's temporary file); a file we replace
        // keeps its permissions.
        if let Ok(meta) = std::fs::metadata(path) {
            tmp.as_file().set_permissions(meta.permissions()).map_err(|e| format!("{shown}: {e}"))?;
        }
        tmp.persist(path).map_err(|e| format!("{shown}: {}", e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply() -> Map<String, Value> {
        let v = json!({
            "agents": ["rpcutil", "scout"], "classes": ["one"], "collectives": ["mcollective", "eu"],
            "facts": {"country": "mt", "os": {"family": "Debian"}}, "version": "0.29.4",
            "main_collective": "mcollective", "upgradable": true, "machines": []
        });
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn nodes_read_back_as_written_in_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        let b = InventoryNode::from_reply("b.example.net", &reply()).unwrap();
        let a = InventoryNode { name: "a.example.net".into(), ..b.clone() };
        for name in ["inv.yaml", "inv.yml", "inv.json"] {
            let path = dir.path().join(name);
            Inventory::for_file(&path, vec![b.clone(), a.clone()]).unwrap().write(&path).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            let back = Inventory::parse(name, &text).unwrap();
            let names: Vec<&str> = back.nodes().iter().map(|n| n.name.as_str()).collect();
            assert_eq!(names, ["a.example.net", "b.example.net"], "{name}");
            let n = &back.nodes()[1];
            assert_eq!(n.collectives, ["mcollective", "eu"]);
            assert_eq!(n.facts["os"]["family"], "Debian");
            assert_eq!(n.facts[VERSION_FACT], "0.29.4");
            assert_eq!(back.groups.len(), 1, "{name}: go-choria's group all");
        }
    }

    #[test]
    fn the_extension_decides_and_other_files_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let e = FileFormat::for_path(Path::new("fleet.txt")).unwrap_err();
        assert!(e.contains("fleet.txt") && e.contains(".yaml"), "{e}");
        let notes = dir.path().join("notes.yaml");
        std::fs::write(&notes, "shopping:\n  - milk\n").unwrap();
        let e = Inventory::for_file(&notes, vec![]).unwrap_err();
        assert!(e.contains("refusing to overwrite"), "{e}");
        let bad = InventoryNode::from_reply("x", json!({"facts": [1]}).as_object().unwrap()).unwrap_err();
        assert!(bad.contains("facts are not an object"), "{bad}");
    }

    #[test]
    fn an_existing_inventory_keeps_its_groups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inv.yaml");
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/choria/discovery/inventory/good-inventory.yaml");
        std::fs::copy(src, &path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let inv = Inventory::for_file(&path, vec![]).unwrap();
        let groups: Vec<&str> = inv.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(groups, ["malta", "germany", "acme", "all"]);
        inv.write(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644, "kept");
        let written = Inventory::parse("inv.yaml", &std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(written.groups.len(), 4);
    }
}
