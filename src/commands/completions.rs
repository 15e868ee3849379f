//! `fleetbook completions SHELL`: a completion script generated from the same clap
//! definition that parses the command line (`Cli::clap_for_completion`, each command with
//! only the options it uses), so the two cannot drift. `req`
//! completes the agents and actions of the built-in DDLs.

use crate::cli::{Cli, Shell};
use crate::error::Error;

/// Writes the completion script for `shell` to stdout.
pub(crate) fn run(shell: Shell) -> Result<(), Error> {
    let mut cmd = Cli::clap_for_completion();
    let mut out = std::io::stdout().lock();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut cmd, "fleetbook", &mut out);
    std::io::Write::flush(&mut out)?;
    Ok(())
}
