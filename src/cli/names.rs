//! Value hints for `req AGENT ACTION`: the agents and actions of the built-in DDLs, offered by
//! shell completion but never enforced (an agent from `--ddl-dir` is just as valid; `req`
//! checks names against the DDLs it loaded, with a better message than clap's).

use std::ffi::OsStr;

use clap::builder::{PossibleValue, TypedValueParser};

use crate::fleet::ddl::DdlRegistry;

/// Accepts any string; lists `names` as possible values for completion only.
#[derive(Clone)]
pub(crate) struct Hinted {
    names: Vec<String>,
}

impl TypedValueParser for Hinted {
    type Value = String;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        // Hidden from `--help` (the list is long and not exhaustive), offered by completion.
        Some(Box::new(self.names.iter().map(|n| PossibleValue::new(n.clone()))))
    }
}

/// The built-in agents.
pub(crate) fn agents() -> Hinted {
    Hinted { names: DdlRegistry::builtin().agent_names() }
}

/// Every action of the built-in agents, once each, sorted.
pub(crate) fn actions() -> Hinted {
    let reg = DdlRegistry::builtin();
    let mut names: Vec<String> =
        reg.agent_names().iter().filter_map(|a| reg.agent(a).ok()).flat_map(|ddl| ddl.action_names()).collect();
    names.sort();
    names.dedup();
    Hinted { names }
}
