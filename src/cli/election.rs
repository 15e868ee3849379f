//! `fleetbook election` arguments (clap only).

use clap::Subcommand;

/// `election view|evict`.
#[derive(Debug, Subcommand)]
pub enum ElectionCommand {
    /// Show the election bucket and its leaders (NAME: a regular expression).
    #[command(alias = "info")]
    View {
        name: Option<String>,
        #[arg(long, default_value = "CHORIA_LEADER_ELECTION")]
        bucket: String,
    },
    /// Evict the leader of an election (a KV delete); asks unless --force. Declining the
    /// question evicts nothing and exits 3, as does running off a terminal without --force.
    Evict {
        name: String,
        #[arg(long, default_value = "CHORIA_LEADER_ELECTION")]
        bucket: String,
        /// Do not ask (required off a terminal).
        #[arg(long)]
        force: bool,
        /// Only evict if this identity leads (revision-checked delete).
        #[arg(long = "expect-leader")]
        expect_leader: Option<String>,
    },
}
