//! `req`'s options: the command line checked, the inputs typed by the DDL, the report's style.

use std::time::Duration;

use serde_json::{Map, Value};

use super::req_output::ReqOutput;
use super::req_report::{Display, ReportStyle};
use crate::cli::ReqArgs;
use crate::error::Error;
use crate::fleet::ddl::DdlRegistry;
use crate::fleet::discovery::DiscoveryOptions;
use crate::journal::JournalOptions;
use crate::progress::Reporter;

/// What `req` was asked to do, validated.
pub(crate) struct ReqOptions {
    pub(super) agent: String,
    pub(super) action: String,
    /// The inputs, typed by the agent's DDL.
    pub(super) inputs: Map<String, Value>,
    /// The filter and discovery flags; only nodes with the agent.
    pub(super) discovery: DiscoveryOptions,
    /// Nodes per batch, at least 1; `None`: all at once.
    pub(super) batch: Option<usize>,
    /// The pause between batches.
    pub(super) batch_sleep: Duration,
    pub(super) broadcast: bool,
    pub(super) json: bool,
    /// JSONL events on stdout as they happen.
    pub(super) jsonl: bool,
    /// Confirms the Big Red Button (shutdown) without a prompt.
    pub(super) yes: bool,
    /// Discover and show the batches; send nothing.
    pub(super) dry_run: bool,
    /// The run journal; `None` with `--no-journal`.
    pub(super) journal: Option<JournalOptions>,
    /// `--resume ID`: continue that run.
    pub(super) resume: Option<super::resume::ResumeOptions>,
    /// `--spread-by`, `--group-by`, `--leaders-last`, ...: how the batches lie over the fleet.
    pub(super) topology: crate::rollout::topology::Topology,
    /// `--sim`: its journal dies with the process, so a stop has no resume hint.
    pub(super) sim: bool,
    /// How the result is written, and where.
    pub(super) style: ReportStyle,
    pub(super) output: ReqOutput,
    /// A progress bar when stderr is a terminal.
    pub(super) progress: bool,
}

impl ReqOptions {
    /// Checks the batch flags, types the inputs by the agent's DDL and checks the filter, in
    /// that order. `default_token` is the provisioning token when no `token=` input is given
    /// (file, environment, simulator).
    pub(super) fn from_cli(
        a: &ReqArgs,
        default_token: Option<String>,
        ddl: &DdlRegistry,
        sim: bool,
        output: ReqOutput,
    ) -> Result<ReqOptions, Error> {
        let batch_sleep = batch_sleep(a)?;
        let resume = super::options::resume(&a.journal, a.dry_run, sim)?;
        if resume.is_some() && a.broadcast {
            return Err(Error::Usage { message: "--resume: a --broadcast request has no journal to resume".into() });
        }
        let inputs = typed_inputs(a, default_token, ddl)?;
        let style = report_style(a, ddl)?;
        let mut discovery = super::options::discovery(&a.filter)?;
        discovery.rpc_agent = Some(a.agent.clone());
        Ok(ReqOptions {
            agent: a.agent.clone(),
            action: a.action.clone(),
            inputs,
            discovery,
            batch: a.batch,
            batch_sleep,
            broadcast: a.broadcast,
            json: a.json,
            jsonl: a.jsonl,
            yes: a.yes,
            dry_run: a.dry_run,
            journal: super::options::journal(&a.journal)?,
            resume,
            topology: super::options::topology(&a.topology)?,
            sim,
            style,
            output,
            // go-choria draws no bar when the output is for a machine.
            progress: !(a.output.no_progress || a.json || a.jsonl || a.output.senders),
        })
    }

    /// Bars on a terminal unless `--np`, plain lines otherwise; `--jsonl` lines to the output.
    pub(super) fn reporter(&self) -> Reporter {
        use std::io::IsTerminal;
        let human: std::sync::Arc<dyn crate::progress::Sink> = if self.progress && std::io::stderr().is_terminal() {
            std::sync::Arc::new(crate::progress::bars::Bars::new())
        } else {
            std::sync::Arc::new(crate::progress::text::Lines::new())
        };
        let mut sinks = vec![human];
        if self.jsonl {
            sinks.push(self.output.jsonl_sink());
        }
        Reporter::with_sinks(self.jsonl, sinks)
    }
}

/// The report's style: `--display` over the action's DDL `display`.
fn report_style(a: &ReqArgs, ddl: &DdlRegistry) -> Result<ReportStyle, Error> {
    use crate::cli::DisplayArg;
    let display = match a.output.display {
        Some(DisplayArg::Ok) => Display::Ok,
        Some(DisplayArg::Failed) => Display::Failed,
        Some(DisplayArg::All) => Display::All,
        Some(DisplayArg::None) => Display::None,
        None => Display::from_ddl(&ddl.agent(&a.agent)?.action(&a.action)?.display),
    };
    Ok(ReportStyle { json: a.json, senders: a.output.senders, display, verbose: a.output.verbose })
}

/// Rejects batch settings that make no sense, before anything else happens.
fn batch_sleep(a: &ReqArgs) -> Result<Duration, Error> {
    if a.batch == Some(0) {
        return Err(Error::Usage { message: "--batch must be at least 1".into() });
    }
    match a.batch_sleep {
        Some(s) => crate::config::parse_seconds(s).map_err(|e| Error::Usage { message: format!("--batch-sleep: {e}") }),
        // go-choria sleeps 1 s between batches when no sleep is given.
        None => Ok(Duration::from_secs(1)),
    }
    .map(|d| if d.is_zero() { Duration::from_secs(1) } else { d })
}

/// Types the inputs by the agent's DDL, adding `default_token` when the action takes a token
/// and none is given: unknown agents, actions and bad inputs are refused before connecting or
/// sending anything.
fn typed_inputs(a: &ReqArgs, default_token: Option<String>, ddl: &DdlRegistry) -> Result<Map<String, Value>, Error> {
    let mut pairs = a.inputs.to_vec();
    let takes_token = ddl.agent(&a.agent)?.action(&a.action)?.input.contains_key("token");
    let given = pairs.iter().any(|p| p.starts_with("token="));
    match (&default_token, takes_token && !given) {
        (Some(t), true) => pairs.push(format!("token={t}")),
        // A dry run sends nothing that needs the token: the plan says so instead.
        (None, true) if a.dry_run => {
            eprintln!("dry-run: no provisioning token is set; fine for a plan, the real run needs one");
            pairs.push("token=not-set-dry-run".into());
        }
        _ => {}
    }
    ddl.parse_cli(&a.agent, &a.action, &pairs).map_err(|e| match e {
        crate::fleet::FleetError::BadInput { ref input, ref reason, .. }
            if input == "token" && reason.contains("required") =>
        {
            Error::Usage {
                message: format!("{e}; give token=..., --token-file FILE or ${}", super::options::PROVISION_TOKEN_ENV),
            }
        }
        e => e.into(),
    })
}
