//! `fleetbook governor` arguments (clap only), as `choria governor` spells them.

use clap::Subcommand;

use super::help;

/// `governor add|list|view|evict|delete|run|reset`.
#[derive(Debug, Subcommand)]
pub enum GovernorCommand {
    /// Add or update a Governor (asks before changing an existing one unless --force).
    #[command(after_help = help::GOVERNOR_ADD)]
    Add {
        /// The name for the Governor to manage.
        name: String,
        /// How many concurrent lease entries to allow.
        capacity: i64,
        /// Expire entries from the Governor after a period (e.g. 1h, 10m, 1h30m).
        expire: String,
        /// Create a replicated Governor with this many replicas.
        #[arg(default_value_t = 1)]
        replicas: usize,
        /// Force operations requiring confirmation.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// List Governors.
    #[command(alias = "ls", after_help = help::GOVERNOR_LIST)]
    List {
        /// Produce JSON output.
        #[arg(long, short = 'j')]
        json: bool,
    },
    /// View the status of a Governor and its leases.
    #[command(aliases = ["info", "show", "v", "s"], after_help = help::GOVERNOR_VIEW)]
    View {
        /// The name of the Governor.
        name: String,
    },
    /// Evict a specific lease (asks unless --force).
    #[command(after_help = help::GOVERNOR_EVICT)]
    Evict {
        /// The name of the Governor.
        name: String,
        /// The lease ID to remove (as `governor view` lists it).
        lease: u64,
        /// Evict without prompting.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Delete a Governor and its leases (asks unless --force).
    #[command(alias = "rm", after_help = help::GOVERNOR_DELETE)]
    Delete {
        /// The name of the Governor.
        name: String,
        /// Delete without prompting.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Run a command while holding a lease on a Governor: wait for a free slot (up to
    /// --max-wait), run it, give the slot back, and exit with the command's status.
    /// Publishes go-choria's governor lifecycle events (enter, exit, timeouts).
    #[command(after_help = help::GOVERNOR_RUN)]
    Run {
        /// The name of the Governor.
        name: String,
        /// The command and its arguments (one quoted argument is split as a shell would,
        /// as `choria governor run` does).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
        command: Vec<String>,
        /// Maximum time to wait for a lease (Go syntax: 30s, 5m, 1h).
        #[arg(long = "max-wait", default_value = "5m")]
        max_wait: String,
        /// How often to try for a lease while the Governor is full (at least 1s).
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Evict all leases (asks unless --force).
    #[command(after_help = help::GOVERNOR_RESET)]
    Reset {
        /// The name of the Governor.
        name: String,
        /// Reset without prompting.
        #[arg(long, short = 'f')]
        force: bool,
    },
}
