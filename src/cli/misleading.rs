//! Flags that read like something they are not. `--identity n001` looks like a node filter,
//! but the Choria CLI selects nodes with `-I/--wi`; a fleetbook that took it as its own
//! identity would run `req choria_provision restart --identity n001` on the whole fleet. So
//! clap's "unexpected argument" for such a flag becomes a usage error that says what to type;
//! `--fact`, `--class` and `--agent` get the same hint towards `-F`, `-C` and `-A`.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Flags refused with a hint: (flag, the node filter's spellings, what else it could mean).
const MISLEADING: [(&str, &str, &str); 4] = [
    ("--identity", "-I/--wi/--with-identity", "; --client-identity sets fleetbook's own identity"),
    ("--fact", "-F/--wf/--with-fact", ""),
    ("--class", "-C/--wc/--with-class", ""),
    ("--agent", "-A/--wa/--with-agent", ""),
];

/// Rewrites clap's error for a misleading flag into a hint; other errors pass unchanged.
/// `args` are the arguments parsed, to name the value that followed the flag.
pub(super) fn hint(e: clap::Error, cmd: &mut clap::Command, args: &[std::ffi::OsString]) -> clap::Error {
    if e.kind() != ErrorKind::UnknownArgument {
        return e;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else { return e };
    let (flag, value) = match arg.split_once('=') {
        Some((f, v)) => (f, Some(v)),
        None => (arg.as_str(), None),
    };
    let Some((_, spellings, other)) = MISLEADING.iter().find(|(f, _, _)| *f == flag) else { return e };
    let filter = spellings.split('/').next().unwrap_or(spellings);
    let given = args.iter().filter_map(|a| a.to_str());
    let joined = given.clone().find_map(|a| a.strip_prefix(flag).and_then(|v| v.strip_prefix('=')));
    let next = given.skip_while(|a| *a != flag).nth(1);
    let value = value.or(joined).or(next).filter(|v| !v.starts_with('-')).unwrap_or("NODE");
    cmd.error(
        ErrorKind::UnknownArgument,
        format!("{flag} is not a node filter: did you mean {filter} {value}? ({spellings} selects nodes{other})"),
    )
}
