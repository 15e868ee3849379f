//! `fleetbook governor` arguments (clap only), as `choria governor` spells them.

use clap::Subcommand;

/// `governor add|list|view|evict|reset`.
#[derive(Debug, Subcommand)]
pub enum GovernorCommand {
    /// Add or update a Governor (asks before changing an existing one unless --force).
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
    #[command(alias = "ls")]
    List {
        /// Produce JSON output.
        #[arg(long, short = 'j')]
        json: bool,
    },
    /// View the status of a Governor and its leases.
    #[command(aliases = ["info", "show", "v", "s"])]
    View {
        /// The name of the Governor.
        name: String,
    },
    /// Evict a specific lease (asks unless --force).
    Evict {
        /// The name of the Governor.
        name: String,
        /// The lease ID to remove (as `governor view` lists it).
        lease: u64,
        /// Evict without prompting.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Evict all leases (asks unless --force).
    Reset {
        /// The name of the Governor.
        name: String,
        /// Reset without prompting.
        #[arg(long, short = 'f')]
        force: bool,
    },
}
