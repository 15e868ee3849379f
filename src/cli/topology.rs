//! `req`'s topology flags (clap only): the same plan as `rpc_batch`'s options of the same
//! names (`spread_by`, `max_per_group`, ...).

use clap::Args;

/// How `req --batch` lays its batches over the fleet's topology.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Topology")]
pub struct TopologyArgs {
    /// Mix each batch across this fact's values (e.g. rack, site, a dotted path); the facts
    /// come from one read-only rpcutil get_facts request before planning.
    #[arg(long = "spread-by", value_name = "FACT")]
    pub spread_by: Option<String>,
    /// With --spread-by: at most N (or P% of one value's nodes) per value in a batch.
    #[arg(long = "max-per-group", value_name = "N|P%", requires = "spread_by")]
    pub max_per_group: Option<String>,
    /// Finish one group (this fact's value, e.g. a site) before starting the next.
    #[arg(long = "group-by", value_name = "FACT")]
    pub group_by: Option<String>,
    /// With --group-by: the groups to do first, in this order (comma-separated).
    #[arg(long = "group-order", value_name = "A,B", value_delimiter = ',', requires = "group_by")]
    pub group_order: Vec<String>,
    /// With --group-by: failures tolerated within one group (N or P%); past it req stops (exit 3).
    #[arg(long = "max-group-failures", value_name = "N|P%", requires = "group_by")]
    pub max_group_failures: Option<String>,
    /// Identities to call in a final batch of their own (comma-separated).
    #[arg(long, value_name = "ID,...", value_delimiter = ',')]
    pub last: Vec<String>,
    /// The current leaders of every election go in the final batch.
    #[arg(long = "leaders-last")]
    pub leaders_last: bool,
}
