//! `fleetbook metrics URL`: scrape and parse a Prometheus endpoint.

use std::io::Write;
use std::time::Duration;

use crate::error::Error;
use crate::metrics::http::scrape;

/// What `metrics` was asked for, validated.
pub(crate) struct MetricsOptions {
    url: String,
    /// Print the samples as a JSON array.
    json: bool,
    /// How long to wait for the endpoint.
    timeout: Duration,
}

impl MetricsOptions {
    /// Checks `--timeout`; the URL is checked when it is scraped.
    pub(crate) fn from_cli(url: String, json: bool, timeout: &str) -> Result<MetricsOptions, Error> {
        Ok(MetricsOptions { url, json, timeout: super::options::duration("--timeout", timeout)? })
    }
}

/// Prints the families and samples, or the samples as a JSON array.
pub(crate) async fn run(a: MetricsOptions) -> Result<(), Error> {
    let MetricsOptions { url, json, timeout } = a;
    let s = scrape(&url, timeout).await?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&s.samples).unwrap_or_default())?;
        return Ok(());
    }
    for f in &s.families {
        match &f.help {
            Some(h) => writeln!(out, "{} ({}): {h}", f.name, f.kind.as_str())?,
            None => writeln!(out, "{} ({})", f.name, f.kind.as_str())?,
        }
        for x in s.samples.iter().filter(|x| x.family == f.name) {
            let labels: Vec<String> = x.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            let ts = x.timestamp_ms.map(|t| format!(" @{t}")).unwrap_or_default();
            writeln!(out, "  {}{{{}}} {}{ts}", x.name, labels.join(","), x.value)?;
        }
    }
    Ok(())
}
