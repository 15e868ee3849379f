//! A DDL file as written, read by serde before it is checked into the model of
//! [`super::agent`]: the only place that knows the file's field names and defaults.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::agent::Metadata;
use super::input::InputType;

/// The whole file.
#[derive(Debug, Deserialize)]
pub(super) struct DdlFile {
    pub(super) metadata: Metadata,
    #[serde(default)]
    pub(super) actions: Vec<ActionFile>,
}

/// One action as written.
#[derive(Debug, Deserialize)]
pub(super) struct ActionFile {
    pub(super) action: String,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) input: BTreeMap<String, InputFile>,
    #[serde(default)]
    pub(super) output: BTreeMap<String, Value>,
    #[serde(default)]
    pub(super) display: String,
}

/// One input as written.
#[derive(Debug, Deserialize)]
pub(super) struct InputFile {
    #[serde(rename = "type")]
    pub(super) kind: TypeName,
    #[serde(default)]
    pub(super) optional: bool,
    #[serde(default)]
    pub(super) validation: Option<String>,
    #[serde(default)]
    pub(super) maxlength: Option<u64>,
    #[serde(default)]
    pub(super) default: Option<Value>,
    #[serde(default)]
    pub(super) list: Option<Vec<Value>>,
    #[serde(default)]
    pub(super) description: String,
}

/// An input's `type`: a known one, or what was written instead. An unknown type is kept
/// rather than failing here, so the load error can name the action and input it belongs to.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum TypeName {
    Known(InputType),
    Unknown(Value),
}
