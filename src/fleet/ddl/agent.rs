//! One agent's DDL, checked: its metadata and actions, each input typed and its validation
//! compiled.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::error::DdlError;
use super::file::{ActionFile, DdlFile, InputFile, TypeName};
use super::input::Input;
use super::validation::Validation;
use crate::fleet::error::{FleetError, Result};

/// One agent's DDL.
#[derive(Debug, Clone)]
pub struct AgentDdl {
    /// Who the agent is and how long it may take.
    pub metadata: Metadata,
    /// The actions, in DDL order.
    pub actions: Vec<Action>,
}

/// The DDL's metadata block.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// The agent's name, which requests address.
    pub name: String,
    /// What the agent is for.
    #[serde(default)]
    pub description: String,
    /// The agent's version.
    #[serde(default)]
    pub version: String,
    /// Seconds the agent may take; the RPC wait is discovery timeout plus this.
    pub timeout: u64,
}

/// One action.
#[derive(Debug, Clone)]
pub struct Action {
    /// The action's name.
    pub action: String,
    /// What the action does.
    pub description: String,
    /// The inputs it takes, by name.
    pub input: BTreeMap<String, Input>,
    /// The outputs it replies with, by name, as written.
    pub output: BTreeMap<String, Value>,
    /// Which replies `choria req` shows (`ok`, `failed`, `always`); kept as written, since
    /// nothing here decides by it.
    pub display: String,
}

impl AgentDdl {
    /// Parses and checks a DDL: the timeout is in range, every input has a known type and
    /// every validation regex compiles. `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<AgentDdl> {
        AgentDdl::parse_with(text, origin, true)
    }

    /// A built-in DDL: its regexes compile on first use (a test compiles every one).
    pub(crate) fn parse_builtin(text: &str, origin: &str) -> Result<AgentDdl> {
        AgentDdl::parse_with(text, origin, false)
    }

    fn parse_with(text: &str, origin: &str, compile: bool) -> Result<AgentDdl> {
        let file: DdlFile = serde_json::from_str(text).map_err(|e| ddl_error(origin, e.into()))?;
        let max = crate::config::MAX_DURATION.as_secs();
        if file.metadata.timeout > max {
            return Err(ddl_error(origin, DdlError::Timeout { timeout: file.metadata.timeout, max }));
        }
        let actions = file.actions.into_iter().map(|a| Action::from_file(a, compile)).collect::<Result<_, _>>();
        let actions = actions.map_err(|e| ddl_error(origin, e))?;
        Ok(AgentDdl { metadata: file.metadata, actions })
    }

    /// The action named `name`, or an error listing the valid ones.
    pub fn action(&self, name: &str) -> Result<&Action> {
        self.actions.iter().find(|a| a.action == name).ok_or_else(|| FleetError::UnknownAction {
            agent: self.metadata.name.clone(),
            action: name.to_string(),
            valid: self.action_names().join(", "),
        })
    }

    /// Names of all actions, in DDL order.
    pub fn action_names(&self) -> Vec<String> {
        self.actions.iter().map(|a| a.action.clone()).collect()
    }
}

/// A DDL that does not load, naming the file.
pub(super) fn ddl_error(path: &str, source: DdlError) -> FleetError {
    FleetError::Ddl { path: path.to_string(), source: Box::new(source) }
}

impl Action {
    /// Checks an action as written, input by input.
    fn from_file(a: ActionFile, compile: bool) -> Result<Action, DdlError> {
        let mut input = BTreeMap::new();
        for (name, i) in a.input {
            let checked = Input::from_file(i, &a.action, &name, compile)?;
            input.insert(name, checked);
        }
        Ok(Action { action: a.action, description: a.description, input, output: a.output, display: a.display })
    }
}

impl Input {
    /// Checks an input as written: a known type, a validation that compiles.
    fn from_file(i: InputFile, action: &str, name: &str, compile: bool) -> Result<Input, DdlError> {
        let kind = match i.kind {
            TypeName::Known(kind) => kind,
            TypeName::Unknown(found) => {
                return Err(DdlError::UnknownType { action: action.to_string(), input: name.to_string(), found })
            }
        };
        let pattern = i.validation.unwrap_or_default();
        let validation = match compile {
            true => Validation::parse(&pattern).map_err(|source| DdlError::Regex {
                action: action.to_string(),
                input: name.to_string(),
                pattern: pattern.clone(),
                source,
            })?,
            false => Validation::parse_unchecked(&pattern),
        };
        Ok(Input {
            kind,
            optional: i.optional,
            validation,
            maxlength: i.maxlength,
            default: i.default,
            list: i.list,
            description: i.description,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use serde_json::json;

    use super::*;
    use crate::fleet::ddl::InputType;
    use crate::fleet::ErrorKind;

    /// The built-in choria_provision DDL with `restart`'s `token` input changed by `edit`.
    fn provision_with(edit: impl FnOnce(&mut Value)) -> String {
        let mut ddl: Value = serde_json::from_str(include_str!("../../../ddl/choria_provision.json")).unwrap();
        let actions = ddl["actions"].as_array_mut().unwrap();
        let restart = actions.iter_mut().find(|a| a["action"] == "restart").unwrap();
        edit(&mut restart["input"]["token"]);
        ddl.to_string()
    }

    #[test]
    fn an_unknown_input_type_names_the_file_action_and_input() {
        let text = provision_with(|token| token["type"] = json!("strnig"));
        let e = AgentDdl::parse(&text, "/ddl/choria_provision.json").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert_eq!(
            e.to_string(),
            "cannot load DDL /ddl/choria_provision.json: action \"restart\", input \"token\": unknown type \
             \"strnig\"; valid types: string, list, boolean, integer, float, number, hash, array"
        );
        let text = provision_with(|token| token["type"] = json!(5));
        let e = AgentDdl::parse(&text, "p.json").unwrap_err().to_string();
        assert!(e.contains("input \"token\": unknown type 5;"), "{e}");
    }

    #[test]
    fn the_schema_spellings_hash_and_array_load() {
        let text = provision_with(|token| token["type"] = json!("Hash"));
        let ddl = AgentDdl::parse(&text, "p.json").unwrap();
        assert_eq!(ddl.action("restart").unwrap().input["token"].kind, InputType::Hash);
    }

    #[test]
    fn load_errors_keep_their_cause() {
        let e = AgentDdl::parse("{", "p.json").unwrap_err();
        assert!(matches!(&e, FleetError::Ddl { source, .. } if matches!(**source, DdlError::Json(_))), "{e:?}");
        assert!(e.source().is_some());
        let text = provision_with(|token| token["validation"] = json!("^(unclosed"));
        let e = AgentDdl::parse(&text, "p.json").unwrap_err();
        assert!(
            e.to_string().ends_with("validation regex /^(unclosed/ does not compile: error: unclosed group"),
            "{e}"
        );
        assert!(e.source().and_then(|s| s.source()).is_some_and(|s| s.downcast_ref::<regex::Error>().is_some()));
    }
}
