//! `fleetbook events`: live lifecycle events, printed like `choria tool event`.

use std::io::Write;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::env::FleetEnv;
use crate::error::Error;
use crate::fleet::events::{EventFilter, SUBJECT};
use crate::redact::printable;

/// What to watch and for how long, validated.
pub(crate) struct EventsOptions {
    filter: EventFilter,
    /// Print the raw message instead of the formatted line.
    json: bool,
    /// Stop after this many printed events.
    count: Option<usize>,
    /// Stop after this long.
    timeout: Option<Duration>,
}

impl EventsOptions {
    /// Checks `--timeout` and the filter.
    pub(crate) fn from_cli(
        component: Option<String>,
        kind: Option<String>,
        json: bool,
        count: Option<usize>,
        timeout: Option<&str>,
    ) -> Result<EventsOptions, Error> {
        let timeout = timeout.map(|t| super::options::duration("--timeout", t)).transpose()?;
        let filter = EventFilter::new(kind.into_iter().collect(), component, Vec::new())?;
        Ok(EventsOptions { filter, json, count, timeout })
    }
}

/// Prints matching events until Ctrl-C, `count` or `timeout`.
pub(crate) async fn run(settings: Settings, a: EventsOptions, cancel: &CancellationToken) -> Result<(), Error> {
    let env = FleetEnv::open(settings).await?;
    let mut events = env.fleet.lifecycle_events().await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Waiting for events from topic {SUBJECT} on {}", env.fleet.connected_url())?;
    out.flush()?;
    let deadline = a.timeout.map(|t| Instant::now() + t);
    let mut printed = 0;
    while a.count.is_none_or(|c| printed < c) {
        let received = match events.next_matching(&a.filter, deadline, cancel).await {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(crate::fleet::FleetError::Cancelled) => break,
            Err(e) => return Err(e.into()),
        };
        // Like go-choria's viewer: what does not parse is skipped silently.
        let Ok(event) = received.event else { continue };
        if !a.filter.matches(&event) {
            continue;
        }
        // Identities and components come from the network: escape control characters so an
        // event cannot drive the terminal or forge lines.
        if a.json {
            writeln!(out, "{}", one_line(&received.raw))?;
        } else {
            writeln!(out, "{} {}", chrono::Local::now().format("%H:%M:%S"), printable(&event.display()))?;
        }
        out.flush()?;
        printed += 1;
    }
    Ok(())
}

/// The raw event as one line of JSON: re-serialised compactly (serde escapes every control
/// character), or escaped text when it is not JSON.
fn one_line(raw: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(raw) {
        Ok(v) => v.to_string(),
        Err(_) => printable(&String::from_utf8_lossy(raw)).into_owned(),
    }
}
