//! The discovery source and limit flags (`--dm`, `--do`, `--nodes`, `--limit*`) as a
//! validated [`Source`] and [`Limit`]: files are read and checked here, before connecting,
//! so a bad line is a usage error (exit 2) naming the file and the line.
//!
//! Stdin is read as a node list when `--nodes -` says so, or, as `choria req` does, when it
//! is piped in and nothing else says where the nodes come from: stdin is a pipe or a file
//! (never a terminal, never `/dev/null` or a closed stdin), and no `--dm`, `--do`,
//! `--nodes` or filter flag is given. Then an empty stdin (a producer that printed nothing)
//! is refused rather than read as "every node", whatever is piped in must be a node list,
//! and a pipe that stays silent for [`PIPE_WAIT`] is an error, not a hang (a CI runner may
//! leave stdin an open pipe nobody writes to). go-choria only takes piped `req --json`
//! output (`{...}`), otherwise discovers as usual, and waits for stdin without end; we take
//! every node list format and fail closed.
//!
//! With no `--dm`, `--nodes` or piped list, the client configuration's
//! `default_discovery_method` (with `default_discovery_options` unless `--do` is given)
//! chooses, as in go-choria.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;

use crate::cli::FilterArgs;
use crate::error::Error;
use crate::fleet::discovery::limit::Limit;
use crate::fleet::discovery::method::{check_options, read_inventory, read_list, read_stdin, Method};
use crate::fleet::discovery::nodelist;
use crate::fleet::discovery::Source;
use crate::fleet::filter::Filter;

/// How long a piped stdin may stay silent before auto-detection gives up on it.
const PIPE_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

fn usage(message: impl Into<String>) -> Error {
    Error::Usage { message: message.into() }
}

/// True when stdin is a pipe or a non-empty regular file (not a terminal, `/dev/null`, a
/// socket or closed).
fn stdin_is_piped() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return false;
    }
    let Ok(fd) = stdin.as_fd().try_clone_to_owned() else { return false };
    let Ok(meta) = std::fs::File::from(fd).metadata() else { return false };
    meta.file_type().is_fifo() || (meta.file_type().is_file() && meta.len() > 0)
}

/// True once stdin has data or is at its end, within `wait`.
fn stdin_ready(wait: std::time::Duration) -> bool {
    let mut fds = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
    let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd, for the duration of the call.
    let n = crate::blocking::blocking(|| unsafe { libc::poll(&mut fds, 1, ms) });
    n > 0
}

/// The source the flags name; `filter` is the filter they built (a piped list is only
/// taken when it is empty). Flags come first, then a piped stdin, then the client
/// configuration's `default_discovery_method` and its options, then broadcast.
pub(crate) fn source(f: &FilterArgs, filter: &Filter) -> Result<Source, Error> {
    let mut opts = BTreeMap::new();
    for kv in &f.discovery_options {
        let (k, v) = kv.split_once('=').ok_or_else(|| usage(format!("--do {kv}: expected K=V")))?;
        opts.insert(k.trim().to_string(), v.trim().to_string());
    }
    let flag = f.dm.as_deref().map(Method::parse).transpose().map_err(|e| usage(format!("--dm: {e}")))?;
    if let (Some(path), Some(m)) = (&f.nodes, flag) {
        if m != Method::FlatFile {
            return Err(usage(format!(
                "--nodes {path} is a node list (the flatfile method); it cannot be used with --dm {}",
                m.name()
            )));
        }
    }
    let defaults = &f.config_defaults;
    let (method, opts) = match flag.or(f.nodes.as_ref().map(|_| Method::FlatFile)) {
        Some(m) => {
            check_options(m, &opts, "--do").map_err(usage)?;
            (m, opts)
        }
        // One broadcast request reaches every node the filter matches: a piped list would be
        // silently ignored, so it is refused, and the configured method does not apply.
        None if f.broadcast_request => {
            if opts.is_empty() && filter.is_empty() && stdin_is_piped() {
                return Err(usage(
                    "req --broadcast reaches every matching node and takes no node list, but stdin is piped; \
                     drop --broadcast to act on the piped nodes, or run with </dev/null",
                ));
            }
            return Ok(Source::Broadcast);
        }
        None if opts.is_empty() && filter.is_empty() && stdin_is_piped() => return piped(),
        None => match defaults.method_and_options(&opts).map_err(|e| usage(format!("the client config's {e}")))? {
            Some(found) => found,
            None if opts.is_empty() => return Ok(Source::Broadcast),
            None => return Err(usage("--do needs --dm METHOD")),
        },
    };
    let list = |path: &str| {
        read_list(path, opts.get("format").map(String::as_str), opts.get("filter").map(String::as_str))
            .map(|nodes| Source::List(Arc::new(nodes)))
            .map_err(|e| usage(format!("node list {e}")))
    };
    match method {
        Method::FlatFile => match (f.nodes.as_deref(), opts.get("file")) {
            (Some(_), Some(_)) => Err(usage("give the node list once: --nodes FILE or --do file=FILE")),
            (Some(path), None) => list(path),
            (None, Some(path)) => list(path),
            (None, None) => Err(usage("--dm flatfile needs a node list: --nodes FILE or --do file=FILE")),
        },
        Method::Inventory => match defaults.inventory_file(&opts) {
            Some(path) => read_inventory(path).map(|i| Source::Inventory(Arc::new(i))).map_err(usage),
            None => Err(usage(
                "--dm inventory needs the inventory file: --do file=FILE (or plugin.choria.discovery.inventory.source)",
            )),
        },
        Method::Broadcast => Ok(Source::Broadcast),
    }
}

/// The node list piped into stdin (see the module's doc for when it is read).
fn piped() -> Result<Source, Error> {
    if !stdin_ready(PIPE_WAIT) {
        return Err(usage(format!(
            "stdin is a pipe, so it is read as a node list, but nothing came in {}s; \
             give --nodes - to wait for it, or run with </dev/null to discover every node",
            PIPE_WAIT.as_secs()
        )));
    }
    let text = read_stdin().map_err(usage)?;
    if text.trim().is_empty() {
        return Err(usage(
            "stdin is a pipe but empty: no node list came (did the command before the | fail?); \
             to discover every node instead, run with </dev/null",
        ));
    }
    let nodes = nodelist::parse("stdin", &text, None).map_err(|e| {
        usage(format!("stdin is piped in, so it is read as a node list, but: {e}; run with </dev/null to ignore it"))
    })?;
    eprintln!("read {} node(s) from stdin", nodes.len());
    Ok(Source::List(Arc::new(nodes)))
}

/// The limit the flags ask for; `--limit-seed` alone means a random limit.
pub(crate) fn limit(f: &FilterArgs) -> Result<Option<Limit>, Error> {
    let Some(size) = &f.limit else { return Ok(None) };
    Limit::from_parts(size, f.limit_method.as_deref(), f.limit_seed)
        .map(Some)
        .map_err(|e| usage(format!("--limit: {e}")))
}

/// `run --nodes FILE|-`: the runbook's node list, read and checked before the run starts.
pub(crate) fn run_nodes(path: Option<&str>) -> Result<Option<Arc<Vec<String>>>, Error> {
    path.map(|p| read_list(p, None, None).map(Arc::new).map_err(|e| usage(format!("--nodes: node list {e}"))))
        .transpose()
}
