//! `req`'s output flags (clap only), named as `choria req` names them.

use std::path::PathBuf;

use clap::Args;

/// `--display`: which replies the text report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DisplayArg {
    /// Only the replies that succeeded.
    Ok,
    /// Only the replies that failed.
    Failed,
    /// Every reply.
    All,
    /// No reply; only the summary.
    None,
}

/// How `req` reports.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Output")]
pub struct ReqOutputArgs {
    /// Which replies to show: ok, failed, all or none. Default: the action's DDL `display`
    /// (restart and shutdown show only failures, ping every reply).
    #[arg(long, value_enum, value_name = "WHAT")]
    pub display: Option<DisplayArg>,
    /// Only list the identities that answered OK, one a line (a JSON array with --json).
    #[arg(long, conflicts_with = "jsonl")]
    pub senders: bool,
    /// List every unanswered node (past 200 only the first 200 are listed otherwise).
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// No progress bar. There is none when stderr is not a terminal, nor with --json,
    /// --jsonl or --senders.
    #[arg(long = "np", alias = "no-progress")]
    pub no_progress: bool,
    /// Write the result (the report, the --json object, the --senders list or the --jsonl
    /// lines) to FILE instead of stdout; lines are flushed as they come.
    #[arg(long = "output-file", short = 'o', value_name = "FILE")]
    pub output_file: Option<PathBuf>,
}
