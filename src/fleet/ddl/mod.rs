//! Agent DDLs (the `mcorpc/ddl/v1/agent.json` schema): which actions exist, their inputs and
//! timeouts. Requests are checked against them before anything is sent.
//!
//! A DDL file is read in two steps: serde reads it as written ([`file`]), then
//! [`AgentDdl::parse`] checks it into the model the rest of the crate uses, with input types
//! and validations as enums and every regex compiled, so a bad DDL fails when it loads, with
//! the file, action and input named.

mod agent;
pub(crate) mod error;
mod file;
mod input;
mod registry;
mod validation;

pub use agent::{Action, AgentDdl, Metadata};
pub use error::DdlError;
pub use input::{Input, InputType, MAX_DEPTH};
pub use registry::DdlRegistry;
pub use validation::Validation;
