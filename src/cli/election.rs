//! `fleetbook election` arguments (clap only).

use clap::Subcommand;

use super::help;

/// `election view|evict`.
#[derive(Debug, Subcommand)]
pub enum ElectionCommand {
    /// Show the election bucket and its leaders (NAME: a regular expression).
    #[command(alias = "info", after_help = help::ELECTION_VIEW)]
    View {
        /// Show only the elections whose name matches this regular expression.
        #[arg(value_name = "NAME")]
        name: Option<String>,
        /// The election bucket (Choria Streams KV).
        #[arg(long, default_value = "CHORIA_LEADER_ELECTION", value_name = "BUCKET")]
        bucket: String,
    },
    /// Evict the leader of an election (a KV delete); asks unless --force. Declining the
    /// question evicts nothing and exits 3, as does running off a terminal without --force.
    #[command(after_help = help::ELECTION_EVICT)]
    Evict {
        /// The election whose leader to evict, e.g. provisioner.
        #[arg(value_name = "NAME")]
        name: String,
        /// The election bucket (Choria Streams KV).
        #[arg(long, default_value = "CHORIA_LEADER_ELECTION", value_name = "BUCKET")]
        bucket: String,
        /// Do not ask (required off a terminal).
        #[arg(long)]
        force: bool,
        /// Only evict if this identity leads (revision-checked delete).
        #[arg(long = "expect-leader", value_name = "IDENTITY")]
        expect_leader: Option<String>,
    },
}
