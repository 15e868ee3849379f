//! The text at the end of each command's `--help`: a few examples, the exit codes and the
//! environment variables the command reads. Kept apart from the flag definitions so that
//! `cli.rs` stays a list of flags; `man` and `--help` both show it.

/// The exit codes every command shares (decided in `error::Error::exit_code`).
macro_rules! exit_codes {
    () => {
        "Exit codes:\n  0  success\n  1  failed or unanswered nodes, a runbook error\n  2  usage or configuration error\n  3  stopped by a guardrail, a declined confirmation or Ctrl-C\n  4  cannot reach the broker, or lost it"
    };
}

/// The environment variables of every command that connects.
macro_rules! connect_env {
    () => {
        "  FLEETBOOK_SERVER           broker URL(s), as --server\n  FLEETBOOK_PASSWORD         NATS password, as --password\n  FLEETBOOK_FIPS             FIPS mode, as --fips\n  FLEETBOOK_NATS_SERVER      the nats-server binary --sim starts (else PATH, then .tools/)\n  FLEETBOOK_SIM_TOKEN        the token the simulated fleet expects, as --sim-token"
    };
}

/// `fleetbook --help`.
pub(crate) const TOP: &str = concat!(
    "Connection options go before or after the command; each command's --help lists the ones it uses,\n",
    "with the --sim-* options of the simulated fleet (also: docs/simulator.md).\n\n",
    "Examples:\n",
    "  fleetbook --sim 50 req rpcutil ping            # a simulated fleet of 50 nodes\n",
    "  fleetbook --server nats://broker:4222 --insecure discover -C apache\n",
    "  fleetbook check runbooks/*.rhai\n\n",
    exit_codes!(),
    "\n\nEnvironment:\n",
    connect_env!(),
    "\n  FLEETBOOK_PROVISION_TOKEN  provisioning token of req and the runbooks' secret()\n",
    "  FLEETBOOK_JOURNAL_HEARTBEAT  seconds between run-journal heartbeats (run, req)\n",
    "  FLEETBOOK_LIB              runbook import directories, colon separated (run, repl, check)\n",
    "  FLEETBOOK_HISTORY          the REPL's history file"
);

/// `discover --help`.
pub(crate) const DISCOVER: &str = concat!(
    "Examples:\n",
    "  fleetbook --sim 50 discover -F country=mt\n",
    "  fleetbook --sim 50 discover -W \"apache country=mt\" --limit 10% --limit-seed 7\n",
    "  fleetbook --server nats://broker:4222 --insecure discover -I /^web/ --json\n\n",
    exit_codes!(),
    "\n\nEnvironment:\n",
    connect_env!()
);

/// `req --help`.
pub(crate) const REQ: &str = concat!(
    "Examples:\n",
    "  fleetbook --sim 50 req rpcutil ping --json\n",
    "  fleetbook --sim 50 req choria_provision restart splay=1 --batch 10 --batch-sleep 2\n",
    "  fleetbook --sim 50 req choria_provision shutdown -I n001.example.net --yes\n\n",
    exit_codes!(),
    "\n\nEnvironment:\n",
    "  FLEETBOOK_PROVISION_TOKEN  the choria_provision token when neither token= nor --token-file is given\n",
    "  FLEETBOOK_JOURNAL_HEARTBEAT  seconds between run-journal heartbeats\n",
    connect_env!()
);

/// `runs --help`.
pub(crate) const RUNS: &str = concat!(
    "Examples:\n",
    "  fleetbook --server nats://broker:4222 --insecure runs\n",
    "  fleetbook --server nats://broker:4222 --insecure runs show RUN_ID --json\n\n",
    exit_codes!(),
    "\n\nEnvironment:\n",
    connect_env!()
);

/// `inventory --help`.
pub(crate) const INVENTORY: &str = concat!(
    "Examples:\n",
    "  fleetbook --sim 50 inventory n001.example.net\n",
    "  fleetbook --sim 50 inventory n001.example.net --no-facts\n",
    "  fleetbook --server nats://broker:4222 --insecure inventory web1.example.net --json\n\n",
    exit_codes!(),
    "\n\nEnvironment:\n",
    connect_env!()
);

/// `events --help`.
pub(crate) const EVENTS: &str = concat!(
    "Examples:\n",
    "  fleetbook --sim 20 events --component provision_mode_server\n",
    "  fleetbook --server nats://broker:4222 --insecure events --type startup --count 10 --json\n\n",
    "Runs until Ctrl-C, --count or --timeout; stopping it exits 0.\n\n",
    exit_codes!(),
    "\n\nEnvironment:\n",
    connect_env!()
);

/// `metrics --help`.
pub(crate) const METRICS: &str = concat!(
    "Examples:\n",
    "  fleetbook metrics http://provisioner:8080/metrics\n",
    "  fleetbook --sim 3 metrics                       # the simulated Provisioner's metrics\n",
    "  fleetbook metrics http://provisioner:8080/metrics --json\n\n",
    exit_codes!(),
    "\n\nEnvironment:\n",
    "  FLEETBOOK_NATS_SERVER      the nats-server binary --sim starts (else PATH, then .tools/)"
);

/// `election --help`.
pub(crate) const ELECTION: &str = concat!(
    "Examples:\n",
    "  fleetbook --server nats://broker:4222 --insecure election view\n",
    "  fleetbook --server nats://broker:4222 --insecure election evict provisioner --force\n\n",
    exit_codes!(),
    "\n\nEnvironment:\n",
    connect_env!()
);

/// `governor --help`.
pub(crate) const GOVERNOR: &str = concat!(
    "Examples:\n",
    "  fleetbook --server nats://broker:4222 --insecure governor add PUPPET 10 1h\n",
    "  fleetbook --server nats://broker:4222 --insecure governor run PUPPET \"puppet agent -t\"\n",
    "  fleetbook --server nats://broker:4222 --insecure governor view PUPPET\n\n",
    exit_codes!(),
    "\n\nEnvironment:\n",
    connect_env!()
);

/// `run --help`.
pub(crate) const RUN: &str = concat!(
    "Examples:\n",
    "  fleetbook --sim 50 run runbooks/rolling-restart.rhai\n",
    "  fleetbook --sim 50 run runbooks/reprovision.rhai --arg fact=site=fra1 --dry-run\n",
    "  fleetbook --server nats://broker:4222 --insecure run runbooks/rolling-restart.rhai --resume RUN_ID\n\n",
    exit_codes!(),
    "\n\nEnvironment:\n",
    "  FLEETBOOK_PROVISION_TOKEN  the provisioning token the shipped runbooks read with secret()\n",
    "  FLEETBOOK_JOURNAL_HEARTBEAT  seconds between run-journal heartbeats\n",
    "  FLEETBOOK_LIB              extra import directories, colon separated, as --lib\n",
    connect_env!()
);

/// `repl --help`.
pub(crate) const REPL: &str = concat!(
    "Examples:\n",
    "  fleetbook --sim 20 repl\n",
    "  fleetbook --server nats://broker:4222 --insecure repl\n\n",
    exit_codes!(),
    "\n\nEnvironment:\n",
    "  FLEETBOOK_HISTORY          the history file (else $XDG_DATA_HOME/fleetbook/history)\n",
    "  FLEETBOOK_PROVISION_TOKEN  read by secret(\"FLEETBOOK_PROVISION_TOKEN\")\n",
    "  FLEETBOOK_LIB              extra import directories, colon separated, as --lib\n",
    connect_env!()
);

/// `check --help`.
pub(crate) const CHECK: &str = concat!(
    "Examples:\n",
    "  fleetbook check runbooks/*.rhai\n",
    "  fleetbook check --ddl-dir ./ddl my-runbook.rhai\n\n",
    "Exit codes:\n  0  every runbook compiles and passes the lints\n  1  a runbook does not compile or fails a lint\n  2  usage error (a file that cannot be read)\n\n",
    "Environment:\n",
    "  FLEETBOOK_LIB              extra import directories, colon separated, as --lib"
);

/// `sim --help`.
pub(crate) const SIM: &str = concat!(
    "Examples:\n",
    "  fleetbook sim --nodes 1000 --server nats://127.0.0.1:4222\n",
    "  fleetbook sim --nodes 50 --sim-fail-rate 0.05    # an embedded broker; its URL is printed\n\n",
    "Runs until Ctrl-C, which exits 0.\n\n",
    exit_codes!(),
    "\n\nEnvironment:\n",
    "  FLEETBOOK_SERVER           broker URL, as --server\n",
    "  FLEETBOOK_NATS_SERVER      the nats-server binary started when no --server is given\n",
    "  FLEETBOOK_SIM_TOKEN        the provisioning token the fleet expects, as --sim-token"
);

/// `completions --help`.
pub(crate) const COMPLETIONS: &str = "Examples:
  fleetbook completions bash > ~/.local/share/bash-completion/completions/fleetbook
  fleetbook completions zsh > ~/.zfunc/_fleetbook      # with fpath+=(~/.zfunc) in .zshrc
  fleetbook completions fish > ~/.config/fish/completions/fleetbook.fish

Exit codes: 0 success, 2 usage error.";

/// `man --help`.
pub(crate) const MAN: &str = "Examples:
  fleetbook man | man -l -
  fleetbook man --dir /usr/local/share/man/man1      # fleetbook.1 and one page per command

Exit codes: 0 success, 2 usage error or a directory that cannot be written.";

/// The help of a nested command: its examples, then the exit codes; the environment is the
/// parent command's (see its --help).
macro_rules! nested {
    ($($example:literal),+ $(,)?) => {
        concat!("Examples:\n", $("  ", $example, "\n",)+ "\n", exit_codes!())
    };
}

/// `runs show --help`.
pub(crate) const RUNS_SHOW: &str = nested!(
    "fleetbook --server nats://broker:4222 --insecure runs show RUN_ID",
    "fleetbook --server nats://broker:4222 --insecure runs show RUN_ID --json",
);

/// `election view --help`.
pub(crate) const ELECTION_VIEW: &str = nested!(
    "fleetbook --server nats://broker:4222 --insecure election view",
    "fleetbook --server nats://broker:4222 --insecure election view '^provisioner$'",
    "fleetbook --sim 3 election view          # waits for the first campaign",
);

/// `election evict --help`.
pub(crate) const ELECTION_EVICT: &str = nested!(
    "fleetbook --server nats://broker:4222 --insecure election evict provisioner",
    "fleetbook --server nats://broker:4222 --insecure election evict provisioner --force --expect-leader p1.example.net",
);

/// `governor add --help`.
pub(crate) const GOVERNOR_ADD: &str = nested!(
    "fleetbook --server nats://broker:4222 --insecure governor add PUPPET 10 1h",
    "fleetbook --server nats://broker:4222 --insecure governor add PUPPET 20 30m 3 --force",
);

/// `governor list --help`.
pub(crate) const GOVERNOR_LIST: &str = nested!(
    "fleetbook --server nats://broker:4222 --insecure governor list",
    "fleetbook --server nats://broker:4222 --insecure governor list --json",
);

/// `governor view --help`.
pub(crate) const GOVERNOR_VIEW: &str = nested!(
    "fleetbook --server nats://broker:4222 --insecure governor view PUPPET",
    "fleetbook gov v PUPPET --server nats://broker:4222 --insecure   # aliases; options after the command",
);

/// `governor evict --help`.
pub(crate) const GOVERNOR_EVICT: &str = nested!(
    "fleetbook --server nats://broker:4222 --insecure governor evict PUPPET 42",
    "fleetbook --server nats://broker:4222 --insecure governor evict PUPPET 42 --force",
);

/// `governor delete --help`.
pub(crate) const GOVERNOR_DELETE: &str = nested!(
    "fleetbook --server nats://broker:4222 --insecure governor delete PUPPET          # asks first",
    "fleetbook --server nats://broker:4222 --insecure governor delete PUPPET --force",
);

/// `governor run --help`.
pub(crate) const GOVERNOR_RUN: &str = nested!(
    "fleetbook --server nats://broker:4222 --insecure governor run PUPPET \"puppet agent -t\"",
    "fleetbook --server nats://broker:4222 --insecure governor run PUPPET --max-wait 10m -- puppet agent -t",
);

/// `governor reset --help`.
pub(crate) const GOVERNOR_RESET: &str = nested!(
    "fleetbook --server nats://broker:4222 --insecure governor reset PUPPET           # asks first",
    "fleetbook --server nats://broker:4222 --insecure governor reset PUPPET --force",
);
