//! What a run shows: indicatif bars on stderr when it is a terminal, plain timestamped lines
//! otherwise, and JSONL events on stdout with `--output json`. Secrets are masked where they
//! are made (`crate::redact`), never here; human lines have their control characters escaped,
//! because they can carry text from the network.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

/// A cheap-clone handle on the run's display.
#[derive(Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

struct Inner {
    json: bool,
    multi: Option<MultiProgress>,
    bars: Mutex<Bars>,
}

#[derive(Default)]
struct Bars {
    spinner: Option<ProgressBar>,
    overall: Option<ProgressBar>,
    batch: Option<ProgressBar>,
    failures: usize,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

use crate::lock;

impl Reporter {
    /// `json`: write JSONL events on stdout. `bars`: draw progress bars on stderr (only
    /// sensible when stderr is a terminal).
    pub fn new(json: bool, bars: bool) -> Reporter {
        let multi = bars.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Reporter { inner: Arc::new(Inner { json, multi, bars: Mutex::new(Bars::default()) }) }
    }

    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn for_terminal(json: bool) -> Reporter {
        use std::io::IsTerminal;
        Reporter::new(json, std::io::stderr().is_terminal())
    }

    /// Whether JSONL events are written.
    pub fn json(&self) -> bool {
        self.inner.json
    }

    /// Writes one JSONL event (when enabled): `{"event": kind, "time": ..., ...fields}`.
    pub fn emit(&self, kind: &str, fields: Value) {
        if !self.inner.json {
            return;
        }
        let mut obj =
            json!({"event": kind, "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
        if let (Some(o), Value::Object(f)) = (obj.as_object_mut(), fields) {
            o.extend(f);
        }
        // serde_json escapes every control character, so a line stays one line.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{obj}");
        let _ = out.flush();
    }

    /// A human line on stderr; above the bars when they are shown. Control characters other
    /// than line breaks are escaped (node names and messages come from the network).
    pub fn say(&self, msg: &str) {
        let msg = crate::redact::printable_lines(msg);
        let active = {
            let b = lock(&self.inner.bars);
            b.spinner.is_some() || b.overall.is_some() || b.batch.is_some()
        };
        match &self.inner.multi {
            // Above the bars while they are drawn; indicatif prints nothing when none is.
            Some(m) if active => {
                let _ = m.println(msg.as_ref());
            }
            Some(_) => eprintln!("{msg}"),
            None => eprintln!("{} {msg}", chrono::Local::now().format("%H:%M:%S")),
        }
    }

    /// Runs `f` (a prompt) with the bars out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.inner.multi {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }

    /// A spinner while discovering.
    pub fn discovering(&self, what: &str) {
        if let Some(m) = &self.inner.multi {
            let sp = m.add(ProgressBar::new_spinner());
            sp.set_style(style("{spinner} {msg} {elapsed}"));
            sp.set_message(format!("discovering {}", crate::redact::printable(what)));
            sp.enable_steady_tick(Duration::from_millis(100));
            lock(&self.inner.bars).spinner = Some(sp);
        }
    }

    /// Ends the spinner.
    pub fn discovered(&self, count: usize) {
        self.discovery_ended();
        self.say(&format!("discovered {count} node(s)"));
    }

    /// Ends the spinner of a discovery that failed: no count is claimed.
    pub fn discovery_ended(&self) {
        let spinner = lock(&self.inner.bars).spinner.take();
        if let Some(sp) = spinner {
            sp.finish_and_clear();
        }
    }

    /// Starts the overall bar for a rollout.
    pub fn rollout_start(&self, label: &str, total: usize) {
        if let Some(m) = &self.inner.multi {
            let pb = m.add(ProgressBar::new(total as u64));
            pb.set_style(style("{prefix:.bold} [{bar:30}] {pos}/{len} nodes, {msg} {elapsed}").progress_chars("=> "));
            pb.set_prefix(crate::redact::printable(label).into_owned());
            pb.set_message("0 failed");
            let mut bars = lock(&self.inner.bars);
            bars.overall = Some(pb);
            bars.failures = 0;
        }
    }

    /// Starts the bar of one batch.
    pub fn batch_start(&self, index: usize, batches: usize, size: usize) {
        if let Some(m) = &self.inner.multi {
            let pb = m.add(ProgressBar::new(size as u64));
            pb.set_style(style("  batch {prefix} [{bar:20}] {pos}/{len}").progress_chars("=> "));
            pb.set_prefix(format!("{index}/{batches}"));
            lock(&self.inner.bars).batch = Some(pb);
        }
    }

    /// Counts nodes done in the current batch.
    pub fn nodes_done(&self, ok: usize, failed: usize) {
        let mut bars = lock(&self.inner.bars);
        bars.failures += failed;
        let failures = bars.failures;
        if let Some(b) = &bars.batch {
            b.inc((ok + failed) as u64);
        }
        if let Some(o) = &bars.overall {
            o.inc((ok + failed) as u64);
            o.set_message(format!("{failures} failed"));
        }
    }

    /// Ends the batch bar.
    pub fn batch_end(&self) {
        if let Some(b) = lock(&self.inner.bars).batch.take() {
            b.finish_and_clear();
        }
    }

    /// Ends the overall bar.
    pub fn rollout_end(&self) {
        let mut bars = lock(&self.inner.bars);
        if let Some(b) = bars.batch.take() {
            b.finish_and_clear();
        }
        // Left as it stands: a stopped rollout must not look complete.
        if let Some(o) = bars.overall.take() {
            o.abandon();
        }
    }
}
