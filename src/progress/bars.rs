//! The terminal sink: a spinner while discovering, an overall bar and a batch bar during a
//! rollout, human lines printed above them.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Context, NodeStatus, RunEvent, Sink};
use crate::lock;

/// Progress bars on stderr.
pub struct Bars {
    multi: MultiProgress,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    context: Context,
    spinner: Option<ProgressBar>,
    overall: Option<ProgressBar>,
    batch: Option<ProgressBar>,
    failures: usize,
}

impl State {
    fn drawing(&self) -> bool {
        self.spinner.is_some() || self.overall.is_some() || self.batch.is_some()
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Bars {
    /// Bars drawn on stderr.
    pub fn new() -> Bars {
        Bars { multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), state: Mutex::default() }
    }

    fn draw(&self, s: &mut State, e: &RunEvent) {
        match e {
            RunEvent::Discovering { what } => {
                let sp = self.multi.add(ProgressBar::new_spinner());
                sp.set_style(style("{spinner} {msg} {elapsed}"));
                sp.set_message(format!("discovering {}", crate::redact::printable(what)));
                sp.enable_steady_tick(Duration::from_millis(100));
                s.spinner = Some(sp);
            }
            RunEvent::Discovered { .. } | RunEvent::DiscoveryFailed => {
                if let Some(sp) = s.spinner.take() {
                    sp.finish_and_clear();
                }
            }
            RunEvent::BatchStart { batch, batches, nodes, groups, dry_run: false, .. } => {
                if s.overall.is_none() {
                    let pb = self.multi.add(ProgressBar::new(s.context.nodes as u64));
                    pb.set_style(
                        style("{prefix:.bold} [{bar:30}] {pos}/{len} nodes, {msg} {elapsed}").progress_chars("=> "),
                    );
                    pb.set_prefix(crate::redact::printable(&s.context.label).into_owned());
                    pb.set_message("0 failed");
                    s.overall = Some(pb);
                    s.failures = 0;
                }
                let pb = self.multi.add(ProgressBar::new(nodes.len() as u64));
                pb.set_style(style("  batch {prefix} [{bar:20}] {pos}/{len} {msg}").progress_chars("=> "));
                pb.set_prefix(format!("{batch}/{batches}"));
                if let Some(g) = groups {
                    pb.set_message(crate::progress::event::group_counts(g));
                }
                s.batch = Some(pb);
            }
            RunEvent::NodeResult { status, .. } => {
                // Late and no-event results were counted once already, as silent or ok.
                let failed = match status {
                    NodeStatus::Ok => false,
                    NodeStatus::Failed | NodeStatus::Malformed | NodeStatus::NoReply | NodeStatus::Unknown => true,
                    NodeStatus::NoEvent | NodeStatus::LateOk | NodeStatus::LateFailed => return,
                };
                s.failures += usize::from(failed);
                if let Some(b) = &s.batch {
                    b.inc(1);
                }
                if let Some(o) = &s.overall {
                    o.inc(1);
                    o.set_message(format!("{} failed", s.failures));
                }
            }
            RunEvent::BatchEnd { .. } => {
                if let Some(b) = s.batch.take() {
                    b.finish_and_clear();
                }
            }
            RunEvent::RolloutEnd => {
                if let Some(b) = s.batch.take() {
                    b.finish_and_clear();
                }
                // Left as it stands: a stopped rollout must not look complete.
                if let Some(o) = s.overall.take() {
                    o.abandon();
                }
            }
            _ => {}
        }
    }

    fn line(&self, s: &State, line: &str) {
        let line = crate::redact::printable_lines(line);
        if s.drawing() {
            // Above the bars while they are drawn.
            let _ = self.multi.println(line.as_ref());
        } else {
            eprintln!("{line}");
        }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Bars::new()
    }
}

impl Sink for Bars {
    /// Replies in time only count here.
    fn reads(&self) -> super::Reads {
        super::Reads::Status
    }

    fn event(&self, e: &RunEvent) {
        let mut s = lock(&self.state);
        let lines = s.context.lines(e);
        self.draw(&mut s, e);
        for l in lines {
            self.line(&s, &l);
        }
    }

    fn say(&self, line: &str) {
        let s = lock(&self.state);
        self.line(&s, line);
    }

    fn suspend(&self, f: &mut dyn FnMut()) -> bool {
        self.multi.suspend(f);
        true
    }
}
