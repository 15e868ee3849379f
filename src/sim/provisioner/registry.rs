//! The simulated Provisioner's Prometheus registry: the names, types, help texts and labels of
//! choria-ops.md §3.2 and the election series of §1.8, exposed in the text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// (type, help) of every family, sorted by name as client_golang writes them.
const FAMILIES: [(&str, &str, &str); 17] = [
    ("choria_election_campaigns", "counter", "The number of campaigns a specific candidate voted in"),
    ("choria_election_leader", "gauge", "Indicates if a specific instance is the current leader"),
    ("choria_provisioner_busy_workers", "gauge", "How many workers are busy provisioning nodes"),
    ("choria_provisioner_discover_cycles", "counter", "How many discovery cycles were ran"),
    ("choria_provisioner_discovered", "counter", "How many nodes were found through discovery"),
    ("choria_provisioner_discovery_errors", "counter", "How many discovery related errors were encountered"),
    (
        "choria_provisioner_event_discovered",
        "counter",
        "How many nodes were found through receiving an event about them",
    ),
    ("choria_provisioner_helper_errors", "counter", "How many helper related errors were encountered"),
    (
        "choria_provisioner_helper_shutdown_requests",
        "counter",
        "Host many times the helper asked for a node to be shutdown and it succeeded",
    ),
    ("choria_provisioner_helper_time", "summary", "How long it took to run the helper"),
    ("choria_provisioner_paused", "gauge", "Indicates if the provisioner is paused"),
    ("choria_provisioner_provision_errors", "counter", "How many provision related errors were encountered"),
    ("choria_provisioner_provisioned", "counter", "How many nodes were successfully provisioned"),
    ("choria_provisioner_rpc_errors", "counter", "How many rpc related errors were encountered"),
    ("choria_provisioner_rpc_time", "summary", "How long it took to perform RPC requests"),
    ("choria_provisioner_waiting_nodes", "gauge", "The number of nodes currently waiting to be provisioned"),
    ("choria_provisioner_work_queue_entries", "gauge", "Number of nodes on the work queue waiting to be provisioned"),
];

type Labels = Vec<(&'static str, String)>;

/// One candidate's metrics. Series appear on first use, except those go-choria creates at
/// start (discovered, provisioned, waiting_nodes, work_queue_entries, paused).
#[derive(Default)]
pub struct Registry {
    values: Mutex<BTreeMap<(String, Labels), f64>>,
}

use crate::lock;

impl Registry {
    /// A registry with the series that exist from start-up.
    pub(crate) fn new(site: &str, identity: &str) -> Registry {
        let r = Registry::default();
        for name in ["discovered", "provisioned", "waiting_nodes", "work_queue_entries", "paused"] {
            r.set(&format!("choria_provisioner_{name}"), site_label(site), 0.0);
        }
        r.set("choria_election_leader", election_labels(identity), 0.0);
        r
    }

    /// Adds `v` to a counter (or a summary's part).
    pub(crate) fn add(&self, name: &str, labels: Labels, v: f64) {
        *lock(&self.values).entry((name.to_string(), labels)).or_default() += v;
    }

    /// Sets a gauge.
    pub(crate) fn set(&self, name: &str, labels: Labels, v: f64) {
        lock(&self.values).insert((name.to_string(), labels), v);
    }

    /// Observes a summary without objectives: only `_sum` and `_count`.
    pub(crate) fn observe(&self, name: &str, labels: Labels, v: f64) {
        self.add(&format!("{name}_sum"), labels.clone(), v);
        self.add(&format!("{name}_count"), labels, 1.0);
    }

    /// The value of one series (tests and stats).
    pub fn get(&self, name: &str, labels: &Labels) -> Option<f64> {
        lock(&self.values).get(&(name.to_string(), labels.clone())).copied()
    }

    /// The text exposition, families sorted by name and labels by name.
    pub(crate) fn render(&self) -> String {
        let values = lock(&self.values);
        let mut out = String::new();
        for (family, kind, help) in FAMILIES {
            let series: Vec<(&(String, Labels), &f64)> = values
                .iter()
                .filter(|((n, _), _)| {
                    n == family
                        || (kind == "summary" && (n == &format!("{family}_sum") || n == &format!("{family}_count")))
                })
                .collect();
            if series.is_empty() {
                continue;
            }
            let _ = writeln!(out, "# HELP {family} {help}");
            let _ = writeln!(out, "# TYPE {family} {kind}");
            for ((name, labels), v) in series {
                let mut sorted = labels.clone();
                sorted.sort();
                let l: Vec<String> = sorted
                    .iter()
                    .map(|(k, v)| {
                        format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
                    })
                    .collect();
                let _ = writeln!(out, "{name}{{{}}} {v}", l.join(","));
            }
        }
        out
    }
}

/// `{site}`.
pub(crate) fn site_label(site: &str) -> Labels {
    vec![("site", site.to_string())]
}

/// `{election, identity}`.
pub(crate) fn election_labels(identity: &str) -> Labels {
    vec![("election", "provisioner".to_string()), ("identity", identity.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_valid_sorted_text() {
        let r = Registry::new("lon", "p1");
        r.observe(
            "choria_provisioner_rpc_time",
            vec![("site", "lon".into()), ("rpc", "rpcutil#inventory".into())],
            0.5,
        );
        r.add("choria_provisioner_provisioned", site_label("lon"), 2.0);
        let text = r.render();
        let parsed = crate::metrics::parse(&text).unwrap();
        assert_eq!(parsed.family("choria_provisioner_rpc_time").unwrap().kind, crate::metrics::Kind::Summary);
        assert!(
            text.contains("choria_provisioner_rpc_time_count{rpc=\"rpcutil#inventory\",site=\"lon\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("choria_provisioner_provisioned{site=\"lon\"} 2\n"), "{text}");
        assert!(!text.contains("choria_provisioner_busy_workers"), "lazy series absent until used");
    }
}
