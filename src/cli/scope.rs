//! Which of the global options each command shows. The connection and simulator options are
//! global so that `fleetbook --server URL req ...` (the form the docs use) and `fleetbook req
//! ... --server URL` both work, but a command that never connects should not list them:
//! each command gets its own copy of every global option, hidden where the command does not
//! use it. clap propagates a global option only to commands that lack one of that id, and
//! matches values by id, so the copies parse exactly as the propagated options would.

use clap::{Arg, Command};

/// The kinds of global options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// How to reach the broker and sign requests.
    Connection,
    /// `--sim N`: run against an embedded broker and simulated fleet.
    Sim,
    /// `--sim-*`: how the simulated fleet behaves.
    SimTuning,
    /// `--ddl-dir`.
    Ddl,
}

fn group(a: &Arg) -> Group {
    match a.get_long().unwrap_or_default() {
        "ddl-dir" => Group::Ddl,
        "sim" | "sim-from" => Group::Sim,
        long if long.starts_with("sim-") => Group::SimTuning,
        // `sim` serves on --server and --collective: those two are the connection it uses.
        _ => Group::Connection,
    }
}

/// Whether command `name` uses option `a`.
fn uses(name: &str, a: &Arg) -> bool {
    let g = group(a);
    match name {
        "check" => g == Group::Ddl,
        "metrics" => matches!(g, Group::Sim | Group::SimTuning),
        "sim" => g == Group::SimTuning || matches!(a.get_long(), Some("server" | "collective")),
        "completions" | "man" => false,
        // The embedded broker's journal is always empty: --sim is no use to `runs`.
        "runs" => g == Group::Connection,
        "discover" | "events" | "election" | "governor" => {
            matches!(g, Group::Connection | Group::Sim | Group::SimTuning)
        }
        // req, run, repl, inventory: the lot.
        _ => true,
    }
}

fn heading(a: Arg) -> Arg {
    let h = match group(&a) {
        Group::Connection => Some("Connection"),
        Group::Sim | Group::SimTuning => Some("Simulated fleet"),
        Group::Ddl => None,
    };
    a.help_heading(h)
}

/// Gives every command its own copy of the global options, shown where it uses them; at the
/// top level the `--sim-*` tuning options are left to the commands' help.
pub(super) fn scoped(cmd: Command) -> Command {
    let mut cmd = cmd.mut_args(|a| if a.is_global_set() { heading(a) } else { a });
    let globals: Vec<Arg> = cmd.get_arguments().filter(|a| a.is_global_set()).cloned().collect();
    let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
    for name in names {
        cmd = cmd.mut_subcommand(&name, |mut sc| {
            for a in &globals {
                let hide = a.is_hide_set() || !uses(&name, a);
                sc = sc.arg(a.clone().hide(hide));
            }
            sc
        });
    }
    cmd.mut_args(|a| if group(&a) == Group::SimTuning { a.hide(true) } else { a })
}

/// For shell completion: the global options become plain options of the top level and of
/// each command that uses them (nested commands included), so that a command's completion
/// offers only its own. Parsing never uses this definition.
pub(super) fn for_completion(cmd: Command) -> Command {
    let globals: Vec<Arg> =
        cmd.get_arguments().filter(|a| a.is_global_set()).map(|a| a.clone().global(false)).collect();
    let cmd = cmd.mut_args(|a| a.global(false));
    let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
    names.iter().fold(cmd, |cmd, name| {
        let used: Vec<Arg> = globals.iter().filter(|a| uses(name, a)).cloned().collect();
        cmd.mut_subcommand(name, |sc| with_args(sc, &used))
    })
}

/// Adds `args` to `cmd` and to every command below it.
fn with_args(cmd: Command, args: &[Arg]) -> Command {
    let cmd = args.iter().fold(cmd, |c, a| c.arg(a.clone()));
    let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
    names.iter().fold(cmd, |cmd, name| cmd.mut_subcommand(name, |sc| with_args(sc, args)))
}
