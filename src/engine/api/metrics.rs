//! `metrics(url)` and the helpers that pick values out of a scrape.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, FuncRegistration, Map};

use super::{runtime_error, Host, Options, Res};
use crate::engine::convert::from_json;

fn labels_of(m: &Map) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Samples of `name` (a series or its family) whose labels include `want`.
fn select(samples: &Array, name: &str, want: &BTreeMap<String, String>) -> Vec<Dynamic> {
    samples
        .iter()
        .filter(|s| {
            let Some(m) = s.read_lock::<Map>() else { return false };
            let named = m.get("name").is_some_and(|n| n.to_string() == name)
                || m.get("family").is_some_and(|f| f.to_string() == name);
            let labels = m.get("labels").and_then(|l| l.read_lock::<Map>().map(|l| labels_of(&l))).unwrap_or_default();
            named && want.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .cloned()
        .collect()
}

fn value(s: &Dynamic) -> f64 {
    s.read_lock::<Map>().and_then(|m| m.get("value").and_then(|v| v.as_float().ok())).unwrap_or(f64::NAN)
}

/// The option keys of `metrics(url, opts)`.
pub(crate) const KEYS: [&str; 1] = ["timeout"];

fn scrape(host: &Host, url: &str, opts: &Map) -> Res<Array> {
    let timeout = Options::new(opts, "metrics", &KEYS)?.duration("timeout")?.unwrap_or(Duration::from_secs(5));
    let s = host.rt.block_on(crate::metrics::http::scrape(url, timeout)).map_err(|e| {
        let kind = match e {
            crate::metrics::http::ScrapeError::Timeout { .. } => "timeout",
            crate::metrics::http::ScrapeError::Connect { .. } => "connection",
            crate::metrics::http::ScrapeError::Url { .. } => "invalid",
            _ => "decode",
        };
        runtime_error(kind, e.to_string())
    })?;
    Ok(s.samples
        .iter()
        .map(|x| {
            let mut m = Map::new();
            m.insert("name".into(), x.name.clone().into());
            m.insert("family".into(), x.family.clone().into());
            m.insert("type".into(), x.kind.as_str().into());
            let help = s.family(&x.family).and_then(|f| f.help.clone());
            m.insert("help".into(), help.map(Dynamic::from).unwrap_or(Dynamic::UNIT));
            m.insert("labels".into(), from_json(&serde_json::to_value(&x.labels).unwrap_or_default()));
            m.insert("value".into(), Dynamic::from(x.value));
            m.insert("timestamp_ms".into(), x.timestamp_ms.map(Dynamic::from).unwrap_or(Dynamic::UNIT));
            Dynamic::from_map(m)
        })
        .collect())
}

/// Registers `metrics`, `metric_value`, `metric_sum` and `metric_select`.
pub(crate) fn register(engine: &mut Engine, host: &Arc<Host>) {
    let h = host.clone();
    FuncRegistration::new("metrics")
        .with_params_info(["url: &str", "Array"])
        .with_comments(["/// Scrapes a Prometheus endpoint (http://host:port/metrics) and returns its samples as\n/// #{name, family, type, help, labels, value, timestamp_ms}. Invalid exposition text is an\n/// error naming the line, never a partial result."])
        .register_into_engine(engine, move |url: &str| scrape(&h, url, &Map::new()));
    let h = host.clone();
    FuncRegistration::new("metrics")
        .with_params_info(["url: &str", "opts: Map", "Array"])
        .with_comments(["/// As metrics(url), with opts #{timeout: \"5s\"}."])
        .register_into_engine(engine, move |url: &str, opts: Map| scrape(&h, url, &opts));

    FuncRegistration::new("metric_value")
        .with_params_info(["samples: Array", "name: &str", "labels: Map", "Dynamic"])
        .with_comments(["/// The value of the one series `name` with these labels, or () when it is absent (many\n/// Choria series appear only on first use). More than one match is an error."])
        .register_into_engine(engine, |samples: Array, name: &str, labels: Map| metric_value(&samples, name, &labels));
    FuncRegistration::new("metric_value")
        .with_params_info(["samples: Array", "name: &str", "Dynamic"])
        .with_comments(["/// The value of the one series `name`, or () when absent."])
        .register_into_engine(engine, |samples: Array, name: &str| metric_value(&samples, name, &Map::new()));
    FuncRegistration::new("metric_sum")
        .with_params_info(["samples: Array", "name: &str", "labels: Map", "f64"])
        .with_comments(["/// The sum of every series of `name` (a series or a family) whose labels include these;\n/// 0.0 when there are none."])
        .register_into_engine(engine, |samples: Array, name: &str, labels: Map| select(&samples, name, &labels_of(&labels)).iter().map(value).sum::<f64>());
    FuncRegistration::new("metric_sum")
        .with_params_info(["samples: Array", "name: &str", "f64"])
        .with_comments(["/// The sum of every series of `name`; 0.0 when there are none."])
        .register_into_engine(engine, |samples: Array, name: &str| {
            select(&samples, name, &BTreeMap::new()).iter().map(value).sum::<f64>()
        });
    FuncRegistration::new("metric_select")
        .with_params_info(["samples: Array", "name: &str", "labels: Map", "Array"])
        .with_comments(["/// Every sample of `name` (a series or a family) whose labels include these."])
        .register_into_engine(engine, |samples: Array, name: &str, labels: Map| {
            select(&samples, name, &labels_of(&labels))
        });
}

fn metric_value(samples: &Array, name: &str, labels: &Map) -> Res<Dynamic> {
    let found = select(samples, name, &labels_of(labels));
    match found.len() {
        0 => Ok(Dynamic::UNIT),
        1 => Ok(Dynamic::from(value(&found[0]))),
        n => Err(runtime_error(
            "invalid",
            format!("metric_value: {n} series match {name} {labels:?}; give more labels or use metric_sum"),
        )),
    }
}
