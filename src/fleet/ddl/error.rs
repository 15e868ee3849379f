//! Why a DDL file does not load; [`FleetError::Ddl`](crate::fleet::FleetError::Ddl) adds the
//! file's path.

use super::input::InputType;

/// Why a DDL file or directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DdlError {
    /// The file or directory could not be read.
    #[error(transparent)]
    Read(#[from] std::io::Error),
    /// The file is not JSON of the DDL's shape.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// `metadata.timeout` is longer than any wait fleetbook allows.
    #[error("timeout {timeout} is out of range; must be between 0 and {max} seconds (1 year)")]
    Timeout { timeout: u64, max: u64 },
    /// An input's `type` is none the DDL schema allows (`found` as written, in JSON).
    #[error("action {action:?}, input {input:?}: unknown type {found}; valid types: {}", InputType::names())]
    UnknownType { action: String, input: String, found: serde_json::Value },
    /// An input's `validation` regex does not compile.
    #[error("action {action:?}, input {input:?}: validation regex /{pattern}/ does not compile: {}", last_line(.source))]
    Regex { action: String, input: String, pattern: String, source: regex::Error },
}

/// The compiler's reason alone: a regex error's last line (its first lines repeat the pattern).
fn last_line(e: &regex::Error) -> String {
    e.to_string().lines().last().unwrap_or_default().trim().to_string()
}
