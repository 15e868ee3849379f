//! Where `req`'s result goes: stdout, or the file of `-o/--output-file` (go-choria's flag). A
//! file gets what stdout would have got: the report, the `--json` object, the `--senders`
//! list or the `--jsonl` lines, each line flushed as it is written, so an interrupted run
//! leaves what had arrived.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::lock;
use crate::progress::{RunEvent, Sink};

/// A cheap-clone handle on `req`'s output.
#[derive(Clone, Default)]
pub(crate) struct ReqOutput {
    /// `None`: stdout.
    file: Option<Arc<Mutex<File>>>,
}

impl ReqOutput {
    /// Creates (or truncates) `path`; `None` writes to stdout. A file that cannot be created
    /// is a usage error naming the flag, found before anything is sent.
    pub(crate) fn open(path: Option<&Path>) -> Result<ReqOutput, Error> {
        let Some(path) = path else { return Ok(ReqOutput::default()) };
        let f = File::create(path)
            .map_err(|e| Error::Usage { message: format!("--output-file {}: {e}", path.display()) })?;
        Ok(ReqOutput { file: Some(Arc::new(Mutex::new(f))) })
    }

    /// Runs `f` on the output, then flushes it.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut dyn Write) -> R) -> R {
        match &self.file {
            Some(file) => {
                let mut g = lock(file);
                let r = f(&mut *g);
                let _ = g.flush();
                r
            }
            None => {
                let mut out = std::io::stdout().lock();
                let r = f(&mut out);
                let _ = out.flush();
                r
            }
        }
    }

    /// Writes one line.
    pub(crate) fn line(&self, text: &str) -> std::io::Result<()> {
        self.with(|w| writeln!(w, "{text}"))
    }

    /// The JSONL sink over this output, for `--jsonl`.
    pub(crate) fn jsonl_sink(&self) -> Arc<dyn Sink> {
        Arc::new(JsonlOut(self.clone()))
    }
}

/// `--jsonl` events, a line each, flushed as they come.
struct JsonlOut(ReqOutput);

impl Sink for JsonlOut {
    fn event(&self, e: &RunEvent) {
        if let Some((_, line)) = crate::progress::jsonl::line(e) {
            let _ = self.0.line(&line);
        }
    }
}
