//! `fleetbook governor run NAME COMMAND...`: run a command while holding a slot on a Governor,
//! as go-choria's `choria governor run` does (`cmd/governor_run.go`): wait for a lease (up to
//! `--max-wait`, trying every `--interval`), announce it (`enter`), run the command with our
//! terminal, give the slot back (`exit`) and exit with the command's status. A wait that runs
//! out announces `timeouts` and exits 3.
//!
//! Ctrl-C on a terminal reaches the command too (it shares our process group, as with
//! go-choria); the slot is given back once it exits. A second Ctrl-C kills it.

use std::time::{Duration, Instant};

use super::governor::parse_go_duration;
use crate::error::Error;
use crate::fleet::governor::{self, GovernorError, GovernorEvent};
use crate::fleet::Fleet;
use crate::interrupt::Interrupt;

/// The lifecycle component go-choria's CLI announces governor events as.
const COMPONENT: &str = "CLI";

/// `governor run`, validated.
pub(crate) struct RunOptions {
    name: String,
    /// The program and its arguments.
    argv: Vec<String>,
    max_wait: Duration,
    interval: Duration,
}

impl RunOptions {
    /// One argument is split as a shell would (`choria governor run X "puppet agent -t"`);
    /// several are the command's own argv, kept as given.
    pub(crate) fn from_cli(
        name: String,
        command: Vec<String>,
        max_wait: &str,
        interval: &str,
    ) -> Result<RunOptions, Error> {
        let usage = |message: String| Error::Usage { message };
        let argv = match command.as_slice() {
            [one] => shlex::split(one).ok_or_else(|| usage(format!("cannot parse the command {one:?}")))?,
            many => many.to_vec(),
        };
        if argv.is_empty() || argv[0].is_empty() {
            return Err(usage("governor run: give the command to run".into()));
        }
        let max_wait = parse_go_duration(max_wait).map_err(|e| usage(format!("--max-wait {max_wait:?}: {e}")))?;
        let interval = parse_go_duration(interval).map_err(|e| usage(format!("--interval {interval:?}: {e}")))?;
        if interval < Duration::from_secs(1) {
            return Err(usage("--interval should be >=1s".into()));
        }
        Ok(RunOptions { name, argv, max_wait, interval })
    }
}

/// Takes the lease, runs the command, gives the lease back.
pub(crate) async fn run(fleet: &Fleet, o: RunOptions, interrupt: &Interrupt) -> Result<(), Error> {
    let identity = fleet.options().identity.clone();
    let started = Instant::now();
    let lease = governor::acquire_every(fleet, &o.name, &identity, o.max_wait, o.interval, &interrupt.hard()).await;
    let lease = match lease {
        Ok(l) => l,
        Err(e) => {
            if matches!(e, GovernorError::WaitExpired { .. }) {
                governor::announce(fleet, &identity, COMPONENT, &o.name, 0, GovernorEvent::Timeout).await;
            }
            return Err(match e {
                GovernorError::WaitExpired { .. } => Error::Guardrail {
                    reason: format!(
                        "could not get an execution slot on governor {} within {:.0?}",
                        o.name,
                        started.elapsed()
                    ),
                },
                e => e.into(),
            });
        }
    };
    let seq = lease.seq();
    governor::announce(fleet, &identity, COMPONENT, &o.name, seq, GovernorEvent::Enter).await;
    let status = execute(&o.argv, interrupt).await;
    // The slot goes back whatever the command did.
    let released = lease.release().await;
    governor::announce(fleet, &identity, COMPONENT, &o.name, seq, GovernorEvent::Exit).await;
    if let Ok(false) = released {
        eprintln!("warning: lease {seq} on governor {} was gone before it was given back (expired or evicted)", o.name);
    }
    let shown = o.argv[0].clone();
    match status? {
        0 => Ok(()),
        code => Err(Error::Child { command: shown, code }),
    }
}

/// Runs the command with our stdio; its exit status (128+signal when a signal ended it).
async fn execute(argv: &[String], interrupt: &Interrupt) -> Result<i32, Error> {
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Usage { message: format!("cannot run {}: {e}", argv[0]) })?;
    let hard = interrupt.hard();
    let status = tokio::select! {
        s = child.wait() => s,
        _ = hard.cancelled() => {
            let _ = child.kill().await;
            child.wait().await
        }
    }
    .map_err(|e| Error::Internal { message: format!("waiting for {}: {e}", argv[0]) })?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_argument_splits_like_a_shell_several_stay_as_given() {
        let o = RunOptions::from_cli("G".into(), vec!["puppet agent -t --tags 'a b'".into()], "5m", "5s").unwrap();
        assert_eq!(o.argv, ["puppet", "agent", "-t", "--tags", "a b"]);
        let o = RunOptions::from_cli("G".into(), vec!["sh".into(), "-c".into(), "exit 3".into()], "1m", "1s").unwrap();
        assert_eq!(o.argv, ["sh", "-c", "exit 3"]);
        assert!(RunOptions::from_cli("G".into(), vec!["x".into()], "5m", "500ms").is_err());
        assert!(RunOptions::from_cli("G".into(), vec!["'unclosed".into()], "5m", "5s").is_err());
    }
}
