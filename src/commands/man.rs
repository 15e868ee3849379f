//! `fleetbook man`: the manual page, generated from the same clap definition that parses the
//! command line (`Cli::clap`), help texts, examples and exit codes included.

use std::io::Write;
use std::path::Path;

use crate::cli::Cli;
use crate::error::Error;

/// Prints `fleetbook.1`, or with `dir` writes it and one `fleetbook-COMMAND.1` per command
/// (`fleetbook-election-view.1` for nested ones) into `dir`.
pub(crate) fn run(dir: Option<&Path>) -> Result<(), Error> {
    let cmd = Cli::clap();
    let Some(dir) = dir else {
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        return Ok(out.flush()?);
    };
    let cannot = |e: std::io::Error| Error::Usage { message: format!("man --dir {}: {e}", dir.display()) };
    std::fs::create_dir_all(dir).map_err(cannot)?;
    clap_mangen::generate_to(cmd, dir).map_err(cannot)?;
    Ok(())
}
