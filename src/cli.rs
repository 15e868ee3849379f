//! Command-line types, clap only. Only `commands` sees these: each command turns its part
//! into its own validated options (see `commands::options`).

use std::path::PathBuf;

use clap::builder::ArgPredicate;
use clap::{Args, Parser, Subcommand};

mod election;
pub mod governor;
mod help;
mod misleading;
mod names;
mod req_output;
mod scope;
mod topology;

pub use election::ElectionCommand;
pub use req_output::{DisplayArg, ReqOutputArgs};
pub use topology::TopologyArgs;

/// Fleet runbooks for Choria over NATS.
#[derive(Debug, Parser)]
#[command(name = "fleetbook", version, about, propagate_version = true, after_help = help::TOP)]
pub struct Cli {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub sim: SimArgs,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's command line; on bad flags clap prints the error and exits 2.
    pub fn from_args() -> Cli {
        Cli::try_parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (the first is the program name) as the binary does.
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::FromArgMatches;
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let mut cmd = Cli::clap();
        let matches = cmd.try_get_matches_from_mut(args.clone()).map_err(|e| misleading::hint(e, &mut cmd, &args))?;
        Cli::from_arg_matches(&matches)
    }

    /// The command-line definition with each command showing only the global options it
    /// uses: what parses, `--help`, completions and the man page are all built from it.
    pub fn clap() -> clap::Command {
        use clap::CommandFactory;
        scope::scoped(Cli::command())
    }

    /// The definition shell completion is generated from: what `clap` parses, less the
    /// options a command does not use (completion scripts list hidden options too).
    pub fn clap_for_completion() -> clap::Command {
        use clap::CommandFactory;
        scope::for_completion(Cli::command())
    }
}

/// `--output`: what a run writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Bars on a terminal, timestamped lines otherwise, on stderr.
    Text,
    /// JSONL run events on stdout.
    Json,
}

/// `--protocol`: the Choria protocol generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolArg {
    /// x509 certificates, signed requests over mutual TLS.
    V1,
    /// ed25519 seeds and JWTs.
    V2,
}

/// How to reach the fleet; valid on every command.
#[derive(Debug, Args, Clone, Default)]
pub struct ConnectArgs {
    /// Broker URL (nats://host:4222); may repeat.
    #[arg(
        long = "server",
        short = 's',
        env = "FLEETBOOK_SERVER",
        value_delimiter = ',',
        global = true,
        value_name = "URL"
    )]
    pub servers: Vec<String>,
    /// The main collective.
    #[arg(long, global = true, value_name = "NAME")]
    pub collective: Option<String>,
    /// Protocol generation of the fleet: v1 (x509) or v2 (ed25519/JWT).
    #[arg(long, global = true, value_enum)]
    pub protocol: Option<ProtocolArg>,
    /// fleetbook's own identity (the senderid of its requests; the client config's
    /// `identity`); defaults to the host name. To select nodes use -I/--wi.
    #[arg(long = "client-identity", global = true, value_name = "IDENTITY")]
    pub client_identity: Option<String>,
    /// Our caller id, e.g. choria=ops.mcollective.
    #[arg(long = "caller-id", global = true, value_name = "ID")]
    pub caller_id: Option<String>,
    /// A Choria client configuration file (else ~/.choriarc or /etc/choria/client.conf).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// CA certificate (PEM) that signs the broker's and the fleet's certificates.
    #[arg(long = "tls-ca", global = true, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM): mutual TLS and protocol v1 request signing.
    #[arg(long = "tls-cert", global = true, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(long = "tls-key", global = true, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Client JWT (protocol v2, the choria security provider).
    #[arg(long, global = true, value_name = "FILE")]
    pub jwt: Option<PathBuf>,
    /// ed25519 seed file (64 hex characters) whose public key the JWT names.
    #[arg(long = "seed", id = "ed25519_seed", global = true, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// NATS credentials file.
    #[arg(long, global = true, value_name = "FILE")]
    pub creds: Option<PathBuf>,
    /// NATS user name.
    #[arg(long, global = true, value_name = "USER")]
    pub user: Option<String>,
    /// NATS password (prefer the environment variable).
    #[arg(long, env = "FLEETBOOK_PASSWORD", hide_env_values = true, global = true, value_name = "PASSWORD")]
    pub password: Option<String>,
    /// Send unsigned requests (what provisioning-mode and test fleets accept).
    #[arg(long, global = true)]
    pub insecure: bool,
    /// FIPS 140 mode, as a go-choria built for FIPS: reply subjects carry the sha256 of the
    /// caller id (what a FIPS broker allows) instead of its md5.
    #[arg(long, env = "FLEETBOOK_FIPS", global = true, value_parser = clap::builder::BoolishValueParser::new())]
    pub fips: bool,
    /// Reconnect attempts after the broker connection breaks (about 2 s apart) before
    /// giving up with exit 4; waits in progress end at their own deadline either way.
    #[arg(long = "max-reconnects", value_name = "N", global = true, default_value_t = 60)]
    pub max_reconnects: usize,
    /// Directory of extra agent DDLs (JSON); may repeat.
    #[arg(long = "ddl-dir", global = true, value_name = "DIR")]
    pub ddl_dirs: Vec<PathBuf>,
    /// Start an embedded broker and a simulated fleet of N nodes and run against them.
    #[arg(long, value_name = "N", global = true)]
    pub sim: Option<usize>,
    /// Like --sim, with a twin of the fleet an inventory file describes (as `inventory --all
    /// --out` or `choria tool inventory` write it): its identities, facts, classes, agents
    /// and collectives.
    #[arg(long = "sim-from", value_name = "FILE", global = true, conflicts_with = "sim")]
    pub sim_from: Option<PathBuf>,
}

/// Behaviour of the simulated fleet (with `--sim N` or `sim`).
#[derive(Debug, Args, Clone, Default)]
pub struct SimArgs {
    /// Run the simulated servers in secure mode: they accept only requests signed by a
    /// certificate from this CA (PEM), and stay silent to the rest.
    #[arg(long = "sim-ca", global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Secure mode for protocol v2: the trusted issuer's ed25519 public key (hex); servers
    /// accept only requests from client JWTs it signed.
    #[arg(long = "sim-issuer", global = true, value_name = "HEX")]
    pub issuer: Option<String>,
    /// Seed for facts and faults.
    #[arg(long = "sim-seed", global = true, value_name = "SEED")]
    pub seed: Option<u64>,
    /// Provisioning token the simulated servers expect ("" accepts any).
    #[arg(
        long = "sim-token",
        global = true,
        value_name = "TOKEN",
        hide_env_values = true,
        env = "FLEETBOOK_SIM_TOKEN"
    )]
    pub token: Option<String>,
    /// Real seconds per simulated second of splay (0.01 = 100x faster).
    #[arg(long = "sim-time-scale", global = true, value_name = "SCALE")]
    pub time_scale: Option<f64>,
    /// Fraction of nodes that fail mutating actions (status 1 or 5).
    #[arg(long = "sim-fail-rate", global = true, value_name = "RATE")]
    pub fail_rate: Option<f64>,
    /// Fraction of nodes that answer discovery but never RPC.
    #[arg(long = "sim-silent-rate", global = true, value_name = "RATE")]
    pub silent_rate: Option<f64>,
    /// Fraction of nodes that answer RPC late.
    #[arg(long = "sim-slow-rate", global = true, value_name = "RATE")]
    pub slow_rate: Option<f64>,
    /// How late slow nodes answer, e.g. 3s.
    #[arg(long = "sim-slow-delay", global = true, value_name = "DURATION")]
    pub slow_delay: Option<String>,
    /// Nodes that fail (identities or short names, comma separated).
    #[arg(long = "sim-fail", global = true, value_name = "NODES", value_delimiter = ',')]
    pub fail_nodes: Vec<String>,
    /// Nodes that stay silent to RPC.
    #[arg(long = "sim-silent", global = true, value_name = "NODES", value_delimiter = ',')]
    pub silent_nodes: Vec<String>,
    /// Nodes that answer late.
    #[arg(long = "sim-slow", global = true, value_name = "NODES", value_delimiter = ',')]
    pub slow_nodes: Vec<String>,
    /// Nodes that go down on restart or reprovision and never come back.
    #[arg(long = "sim-stuck", global = true, value_name = "NODES", value_delimiter = ',')]
    pub stuck_nodes: Vec<String>,
    /// Simulated Provisioner candidates campaigning for leadership (default 3; 0: none).
    #[arg(long = "sim-provisioners", global = true, value_name = "N")]
    pub provisioners: Option<usize>,
    /// Run the simulated Provisioner as its default configuration does, without
    /// `leader_election`: one instance provisions and nobody campaigns.
    #[arg(long = "sim-no-leader-election", global = true)]
    pub no_leader_election: bool,
    /// The site label of the simulated Provisioner's metrics.
    #[arg(long = "sim-site", global = true, value_name = "SITE")]
    pub site: Option<String>,
    /// Return reprovisioned nodes to service after this long, e.g. 5s.
    #[arg(long = "sim-auto-provision", global = true, value_name = "DURATION")]
    pub auto_provision: Option<String>,
}

/// Node selection, as `choria` spells it.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Node selection")]
pub struct FilterArgs {
    /// Fact filter: name=value, name>=4, name=/regex/.
    #[arg(short = 'F', long = "wf", id = "wf", value_name = "FACT", visible_alias = "with-fact")]
    pub fact: Vec<String>,
    /// Class filter: exact or /regex/.
    #[arg(short = 'C', long = "wc", id = "wc", value_name = "CLASS", visible_alias = "with-class")]
    pub class: Vec<String>,
    /// Agent filter: exact or /regex/.
    #[arg(short = 'A', long = "wa", id = "wa", value_name = "AGENT", visible_alias = "with-agent")]
    pub agent: Vec<String>,
    /// Identity filter: exact or /regex/ (with --dm inventory also group:NAME).
    #[arg(short = 'I', long = "wi", id = "wi", value_name = "IDENTITY", visible_alias = "with-identity")]
    pub identity: Vec<String>,
    /// Combined class and fact filter, as choria's -W: words split on spaces; a word with
    /// an operator (country=mt, cpus>=4) is a fact filter, any other a class filter.
    #[arg(short = 'W', long = "with", value_name = "FILTER")]
    pub with: Vec<String>,
    /// Compound filter expression.
    #[arg(short = 'S', long = "select", value_name = "EXPR")]
    pub compound: Vec<String>,
    /// Collective to target.
    #[arg(short = 'T', long = "target", value_name = "COLLECTIVE")]
    pub target: Option<String>,
    /// Discovery timeout in seconds (default 2).
    #[arg(long = "discovery-timeout", value_name = "SECONDS")]
    pub discovery_timeout: Option<f64>,
    /// End discovery once replies pause for 300 ms.
    #[arg(long = "discovery-window")]
    pub discovery_window: bool,
    /// Discovery method: broadcast (alias mc), flatfile (alias file: a node list) or
    /// inventory (an inventory file, filters applied locally); default: the client config's
    /// default_discovery_method, else broadcast.
    #[arg(long = "dm", value_name = "METHOD")]
    pub dm: Option<String>,
    /// Options of the discovery method, K=V; may repeat: file=FILE (flatfile, inventory),
    /// format=text|json|yaml|results and filter=PATH (flatfile: a gjson path such as
    /// replies.#.sender that picks the identities out of JSON or YAML data).
    #[arg(long = "do", value_name = "K=V")]
    pub discovery_options: Vec<String>,
    /// Act on the nodes listed in FILE (- reads stdin): one identity per line, a JSON or YAML
    /// array, or the JSON of `discover --json` or `req --json`. Nodes not in the fleet end up
    /// without a reply. Without --nodes, a node list piped into stdin is read when no other
    /// source or filter is given.
    #[arg(long = "nodes", value_name = "FILE")]
    pub nodes: Option<String>,
    /// Keep only N or N% of the discovered nodes.
    #[arg(long = "limit", value_name = "N|N%")]
    pub limit: Option<String>,
    /// Seed of a random limit: the same seed picks the same nodes on every run (implies
    /// --limit-method random).
    #[arg(long = "limit-seed", value_name = "SEED", requires = "limit")]
    pub limit_seed: Option<u64>,
    /// Which nodes a limit keeps: first or random; default: the Choria client config's
    /// rpclimitmethod, else first (as choria).
    #[arg(long = "limit-method", value_name = "METHOD", requires = "limit", value_parser = ["first", "random"])]
    pub limit_method: Option<String>,
    /// The client configuration's discovery defaults, filled in by `commands` (not a flag).
    #[arg(skip)]
    pub config_defaults: crate::fleet::discovery::method::DiscoveryDefaults,
    /// Set by `commands` for `req --broadcast`, which discovers nothing (not a flag).
    #[arg(skip)]
    pub broadcast_request: bool,
}

/// Script engine settings.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Script engine")]
pub struct EngineArgs {
    /// Stop a runbook after this many script operations (guards against endless loops).
    #[arg(long = "max-operations", value_name = "N")]
    pub max_operations: Option<u64>,
    /// Extra directory for `import`; may repeat (also FLEETBOOK_LIB, colon-separated).
    #[arg(long = "lib", value_name = "DIR")]
    pub lib: Vec<PathBuf>,
}

/// The commands. Each has its own `after_help` (examples, exit codes, environment) in
/// `help`; which global options each shows is decided in `scope`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the nodes that match a filter, like `choria discover`.
    #[command(after_help = help::DISCOVER)]
    Discover {
        /// Print a JSON array of identities.
        #[arg(long, short = 'j')]
        json: bool,
        #[command(flatten)]
        filter: Box<FilterArgs>,
    },
    /// Call one agent action on the matching nodes, optionally in batches, like `choria req`.
    #[command(after_help = help::REQ, visible_alias = "rpc")]
    Req(Box<ReqArgs>),
    /// List the runs in the run journal, or show one run's timeline.
    #[command(after_help = help::RUNS)]
    Runs {
        #[command(subcommand)]
        show: Option<RunsCommand>,
        /// Print JSON.
        #[arg(long, short = 'j')]
        json: bool,
        /// How many of the most recent runs to list.
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: usize,
    },
    /// Show one node's inventory and server statistics, like `choria inventory`; or, with
    /// --all --out FILE, write the inventory of every matching node to FILE.
    #[command(after_help = help::INVENTORY)]
    Inventory {
        /// The node's identity (exactly as it answers discovery, e.g. n001.example.net).
        #[arg(required_unless_present = "all", conflicts_with = "all", value_name = "IDENTITY")]
        identity: Option<String>,
        /// Print one JSON object.
        #[arg(long, short = 'j')]
        json: bool,
        /// Leave the facts out.
        #[arg(long = "no-facts")]
        no_facts: bool,
        /// Ask every node the filters select (in batches) and write Choria's inventory file
        /// format, as `choria tool inventory` does.
        #[arg(long, requires = "out", conflicts_with_all = ["json", "no_facts"])]
        all: bool,
        /// The inventory file to write (with --all): YAML for .yaml/.yml, JSON for .json.
        #[arg(long, value_name = "FILE", requires = "all")]
        out: Option<PathBuf>,
        /// Nodes asked at a time (with --all).
        #[arg(long, value_name = "N", requires = "all")]
        batch: Option<usize>,
        #[command(flatten)]
        filter: Box<FilterArgs>,
    },
    /// Show live lifecycle events, like `choria tool event`.
    #[command(after_help = help::EVENTS)]
    Events {
        /// Only events of this component.
        #[arg(long, value_name = "COMPONENT")]
        component: Option<String>,
        /// Only events of this type.
        #[arg(long = "type", value_name = "TYPE", value_parser = ["alive", "governor", "provisioned", "shutdown", "startup", "upgraded"])]
        kind: Option<String>,
        /// Print each raw event as received.
        #[arg(long, short = 'j')]
        json: bool,
        /// Stop after this many events.
        #[arg(long, value_name = "N")]
        count: Option<usize>,
        /// Stop after this long (e.g. 30s).
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
    },
    /// Scrape and parse a Prometheus endpoint (e.g. the Provisioner's /metrics).
    #[command(after_help = help::METRICS)]
    Metrics {
        /// The endpoint, http://host:port/metrics; with --sim and no URL, the simulated
        /// Provisioner's.
        #[arg(value_name = "URL")]
        url: Option<String>,
        /// Print the samples as one JSON array.
        #[arg(long, short = 'j')]
        json: bool,
        /// How long to wait for the endpoint (e.g. 5s).
        #[arg(long, default_value = "5s", value_name = "DURATION")]
        timeout: String,
    },
    /// See and evict election leaders, like `choria election`.
    #[command(subcommand, alias = "elect", after_help = help::ELECTION)]
    Election(ElectionCommand),
    /// Distributed concurrency control, like `choria governor`.
    #[command(subcommand, alias = "gov", after_help = help::GOVERNOR)]
    Governor(governor::GovernorCommand),
    /// Run a runbook.
    #[command(after_help = help::RUN)]
    Run(RunArgs),
    /// Explore and operate the fleet one line at a time.
    #[command(after_help = help::REPL)]
    Repl {
        /// Answer yes to confirmations of mutating calls (shutdown still asks).
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Compile and lint runbooks without touching a fleet.
    #[command(after_help = help::CHECK)]
    Check {
        /// The runbooks (.rhai) to check.
        #[arg(required = true, value_name = "FILES")]
        files: Vec<PathBuf>,
        /// `--arg` values the runbooks will be run with: a name a runbook never reads is an error
        /// (as `run` refuses it).
        #[arg(long = "arg", value_name = "NAME=VALUE")]
        args: Vec<String>,
        /// Print the problems as one JSON object ({"files": [{"file", "ok", "problems":
        /// [{"line", "column", "message"}]}]}), for editors and CI.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Run a simulated fleet against a broker until stopped.
    #[command(after_help = help::SIM)]
    Sim {
        /// Number of simulated servers.
        #[arg(long, default_value_t = 50, value_name = "N")]
        nodes: usize,
        /// Simulate a twin of the fleet this inventory file describes instead.
        #[arg(long = "from-inventory", value_name = "FILE", conflicts_with = "nodes")]
        from_inventory: Option<PathBuf>,
        /// Runtime threads. Every request is answered on one task; a second thread only moves
        /// the connection's reading and writing beside it, at the price of more, smaller
        /// writes (more CPU for the broker and the simulator alike).
        #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: u16,
    },
    /// Print a shell completion script (bash, zsh or fish) for fleetbook.
    #[command(after_help = help::COMPLETIONS)]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum, value_name = "SHELL")]
        shell: Shell,
    },
    /// Print the manual page (roff), or write one page per command into a directory.
    #[command(after_help = help::MAN)]
    Man {
        /// Write fleetbook.1 and fleetbook-COMMAND.1 into DIR instead of printing fleetbook.1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `completions SHELL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// `req AGENT ACTION [INPUT...]`.
#[derive(Debug, Args)]
pub struct ReqArgs {
    /// The agent to call (built in: rpcutil, choria_provision, choria_util, ...; more with
    /// --ddl-dir).
    #[arg(value_name = "AGENT", value_parser = names::agents(), hide_possible_values = true)]
    pub agent: String,
    /// The action to call, e.g. ping, inventory, restart.
    #[arg(value_name = "ACTION", value_parser = names::actions(), hide_possible_values = true)]
    pub action: String,
    /// Inputs as key=value, typed by the agent DDL.
    #[arg(value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// Nodes per batch.
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// Seconds between batches (default 1 when batching).
    #[arg(long = "batch-sleep", value_name = "SECONDS")]
    pub batch_sleep: Option<f64>,
    /// Publish one broadcast instead of discovering and sending direct requests.
    #[arg(long, conflicts_with_all = ["batch", "nodes", "limit", "dm", "discovery_options"])]
    pub broadcast: bool,
    /// Print one JSON object.
    #[arg(long, short = 'j')]
    pub json: bool,
    /// Print one JSON line per event as it happens (run_start, discovered, each node_result,
    /// ..., run_end), the shapes of `run --output json`; an interrupted req keeps what came.
    #[arg(long, conflicts_with = "json")]
    pub jsonl: bool,
    /// Confirm the Big Red Button (choria_provision shutdown) without a prompt. Without it,
    /// shutdown asks on a terminal and, off a terminal, sends nothing and exits 3.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Discover and show the batches that would be sent; send nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Read the provisioning token (the `token` input) from this file instead of the
    /// command line. Without it and without token=, $FLEETBOOK_PROVISION_TOKEN is used.
    #[arg(long = "token-file", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    // The flattened groups come last: each sets the help heading of what follows it.
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub output: ReqOutputArgs,
    #[command(flatten)]
    pub topology: TopologyArgs,
    #[command(flatten)]
    pub journal: JournalArgs,
}

/// `fleetbook runs show ID`.
#[derive(Debug, Clone, Subcommand)]
pub enum RunsCommand {
    /// One run's timeline: its calls and batches, and the failed and unanswered nodes.
    #[command(after_help = help::RUNS_SHOW)]
    Show {
        /// The run id (as `fleetbook runs` lists it).
        #[arg(value_name = "ID")]
        id: String,
        /// Print the run's events as JSON lines.
        #[arg(long, short = 'j')]
        json: bool,
    },
}

/// The run journal (JetStream).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Run journal")]
pub struct JournalArgs {
    /// Run without the run journal (the journal needs JetStream on the broker).
    #[arg(long = "no-journal")]
    pub no_journal: bool,
    /// Replicas of the journal stream when it is created.
    #[arg(long = "journal-replicas", value_name = "N", default_value_t = 1)]
    pub journal_replicas: usize,
    /// Continue run ID (interrupted or stopped; see `fleetbook runs`): the same command runs
    /// again with the journaled discoveries, confirmations and results replayed; nodes that
    /// already succeeded are not called again. Needs the broker that holds the journal.
    #[arg(long, value_name = "ID", conflicts_with = "no_journal")]
    pub resume: Option<String>,
    /// With --resume: call the nodes that failed or did not answer again.
    #[arg(long = "retry-failed", requires = "resume")]
    pub retry_failed: bool,
    /// With --resume: send a mutating action again to nodes whose result is unknown (sent,
    /// never answered); without it the run stops before them and lists them.
    #[arg(long = "resend-unknown", requires = "resume")]
    pub resend_unknown: bool,
    /// With --resume: resume although the runbook or its --arg values changed.
    #[arg(long, requires = "resume")]
    pub force: bool,
}

/// `run FILE`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The runbook (.rhai).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Runbook argument as name=value, read with arg(name, default); may repeat.
    #[arg(long = "arg", value_name = "NAME=VALUE")]
    pub args: Vec<String>,
    /// A node list (FILE, or - for stdin) the runbook's discovery uses instead of asking
    /// the fleet, unless a discover map names its own dm. Formats as `req --nodes`.
    #[arg(long = "nodes", value_name = "FILE")]
    pub nodes: Option<String>,
    /// Run discovery and read-only actions; plan every other RPC without sending it.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Answer yes to confirmations (required for shutdown without a terminal).
    #[arg(long)]
    pub yes: bool,
    /// text (bars or lines on stderr) or json (JSONL events on stdout).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Text,
          default_value_if("json", ArgPredicate::IsPresent, "json"))]
    pub output: OutputFormat,
    /// Same as --output json (the spelling of the other commands).
    #[arg(long, short = 'j', conflicts_with = "output")]
    pub json: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub journal: JournalArgs,
}

#[cfg(test)]
mod tests {
    use super::{Cli, Command, OutputFormat};

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_args(std::iter::once("fleetbook").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn connection_options_go_before_or_after_the_command() {
        let before = parse(&["--server", "nats://a:4222", "--client-identity", "me", "req", "rpcutil", "ping"]);
        let after = parse(&["req", "rpcutil", "ping", "--server", "nats://a:4222", "--client-identity", "me"]);
        for c in [before, after] {
            assert_eq!(c.connect.servers, ["nats://a:4222"]);
            assert_eq!(c.connect.client_identity.as_deref(), Some("me"));
        }
        // Nested commands too, and the simulator's options.
        let c = parse(&["election", "view", "--sim", "3", "--sim-seed", "7"]);
        assert_eq!((c.connect.sim, c.sim.seed), (Some(3), Some(7)));
    }

    #[test]
    fn run_json_is_output_json() {
        for args in
            [&["run", "x.rhai", "--json"][..], &["run", "x.rhai", "--output", "json"][..], &["run", "x.rhai", "-j"][..]]
        {
            let Command::Run(r) = parse(args).command else { panic!("not run") };
            assert_eq!(r.output, OutputFormat::Json, "{args:?}");
        }
        let Command::Run(r) = parse(&["run", "x.rhai"]).command else { panic!("not run") };
        assert_eq!(r.output, OutputFormat::Text);
    }

    #[test]
    fn identity_is_refused_with_the_node_filter_it_looks_like() {
        for args in [&["req", "rpcutil", "ping", "--identity", "n001"][..], &["--identity=n001", "discover"][..]] {
            let e = Cli::try_parse_args(std::iter::once("fleetbook").chain(args.iter().copied())).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            let text = e.to_string();
            assert!(text.contains("did you mean -I n001?") && text.contains("--client-identity"), "{text}");
        }
        let e = Cli::try_parse_args(["fleetbook", "discover", "--fact", "country=mt"]).unwrap_err();
        assert!(e.to_string().contains("did you mean -F country=mt?"), "{e}");
        // The filters, as choria and mcollective spell them.
        for flag in ["-I", "--wi", "--with-identity"] {
            let Command::Req(r) = parse(&["req", "rpcutil", "ping", flag, "n001"]).command else { panic!("not req") };
            assert_eq!(r.filter.identity, ["n001"]);
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        super::Cli::clap().debug_assert();
        super::Cli::clap_for_completion().debug_assert();
    }
}
