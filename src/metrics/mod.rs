//! Prometheus metrics: a strict text-format parser (prometheus/common `expfmt` rules) and an
//! HTTP scrape.

pub mod http;
pub mod parse;

use std::collections::BTreeMap;

use serde::Serialize;

pub use parse::{parse, ParseError};

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            "summary" => Kind::Summary,
            "untyped" => Kind::Untyped,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
            Kind::Untyped => "untyped",
        }
    }
}

/// One sample line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// The series name as written (`x_sum`, `x_bucket`, ...).
    pub name: String,
    /// The family it belongs to (`x` for a summary's `x_sum`).
    pub family: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub labels: BTreeMap<String, String>,
    #[serde(serialize_with = "float_json")]
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
}

/// NaN and infinities are not JSON numbers: write them as Prometheus spells them.
fn float_json<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if v.is_infinite() {
        s.serialize_str(if *v > 0.0 { "+Inf" } else { "-Inf" })
    } else {
        s.serialize_f64(*v)
    }
}

/// A metric family: its name, type, help and samples' names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Family {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub help: Option<String>,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scrape {
    /// Families in the order they first appeared.
    pub families: Vec<Family>,
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// The family named `name`.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// Samples whose name (or family) is `name` and whose labels include all of `labels`.
    pub fn select<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            (s.name == name || s.family == name) && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
        })
    }
}
