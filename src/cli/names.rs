//! Value hints for `req AGENT ACTION`: the agents and actions of the built-in DDLs, offered by
//! shell completion but never enforced (an agent from `--ddl-dir` is just as valid; `req`
//! checks names against the DDLs it loaded, with a better message than clap's).

use std::ffi::OsStr;

use clap::builder::{PossibleValue, TypedValueParser};

use crate::fleet::ddl::DdlRegistry;

/// Accepts any string; lists the names `list` gives as possible values, for completion only.
/// The list is made when asked for (completion, help), not at every start.
#[derive(Clone)]
pub(crate) struct Hinted {
    list: fn() -> Vec<String>,
}

impl TypedValueParser for Hinted {
    type Value = String;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        // Hidden from `--help` (the list is long and not exhaustive), offered by completion.
        Some(Box::new((self.list)().into_iter().map(PossibleValue::new)))
    }
}

/// The built-in agents.
pub(crate) fn agents() -> Hinted {
    Hinted { list: || DdlRegistry::builtin().agent_names() }
}

/// Every action of the built-in agents, once each, sorted.
pub(crate) fn actions() -> Hinted {
    Hinted {
        list: || {
            let reg = DdlRegistry::builtin();
            let mut names: Vec<String> =
                reg.agent_names().iter().filter_map(|a| reg.agent(a).ok()).flat_map(|ddl| ddl.action_names()).collect();
            names.sort();
            names.dedup();
            names
        },
    }
}
