//! `fleetbook metrics URL`: scrape and parse a Prometheus endpoint; `--sim N metrics`
//! without a URL scrapes the simulated Provisioner.

use std::io::Write;
use std::time::Duration;

use crate::config::Settings;
use crate::env::FleetEnv;
use crate::error::Error;
use crate::metrics::http::scrape;

/// What `metrics` was asked for, validated.
pub(crate) struct MetricsOptions {
    /// `None`: the simulated Provisioner's (with `--sim`).
    url: Option<String>,
    /// Print the samples as a JSON array.
    json: bool,
    /// How long to wait for the endpoint.
    timeout: Duration,
}

impl MetricsOptions {
    /// Checks `--timeout`, and that there is something to scrape: a URL, or `--sim`; the URL
    /// itself is checked when it is scraped.
    pub(crate) fn from_cli(url: Option<String>, json: bool, timeout: &str, sim: bool) -> Result<MetricsOptions, Error> {
        if url.is_none() && !sim {
            return Err(Error::Usage {
                message: "metrics needs the URL of a Prometheus endpoint (http://host:port/metrics), or --sim N to scrape the simulated Provisioner".into(),
            });
        }
        Ok(MetricsOptions { url, json, timeout: super::options::duration("--timeout", timeout)? })
    }

    /// Whether the simulated fleet must be started to know what to scrape.
    pub(crate) fn needs_sim(&self) -> bool {
        self.url.is_none()
    }
}

/// Prints the families and samples, or the samples as a JSON array. `settings` (given when
/// [`MetricsOptions::needs_sim`]) start the simulated fleet whose Provisioner is scraped.
pub(crate) async fn run(a: MetricsOptions, settings: Option<Settings>) -> Result<(), Error> {
    let MetricsOptions { url, json, timeout } = a;
    // Kept until the scrape is done: dropping it stops the simulated Provisioner.
    let mut _env = None;
    let url = match (url, settings) {
        (Some(url), _) => url,
        (None, Some(settings)) => {
            let env = FleetEnv::open(settings).await?;
            let url = env.sim.as_ref().and_then(|s| s.metrics_url()).ok_or_else(|| Error::Usage {
                message: "the simulated fleet has no Provisioner (--sim-provisioners 0): give a URL".into(),
            })?;
            _env = Some(env);
            url
        }
        (None, None) => return Err(Error::Usage { message: "metrics needs a URL or --sim N".into() }),
    };
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
