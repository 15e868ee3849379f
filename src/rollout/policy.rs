//! Rollout policy as pure decisions: batch plans (sizes, percentages, ramps), failure
//! thresholds, which actions are read-only and which need a confirmation. No I/O here, so
//! every rule is unit-tested.

use std::fmt;

/// A count or a percentage of some total.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Count(usize),
    Percent(f64),
}

impl Amount {
    /// Parses `5`, `"5"` or `"25%"`.
    pub fn parse(s: &str) -> Result<Amount, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| format!("{s:?} is not a percentage"))?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(format!("{s:?}: a percentage must be above 0 and at most 100"));
            }
            Ok(Amount::Percent(v))
        } else {
            t.parse::<usize>().map(Amount::Count).map_err(|_| format!("{s:?} is not a whole number or a percentage"))
        }
    }

    /// A batch size out of `total` nodes: percentages round up, and a batch holds at least one.
    pub fn batch_size(self, total: usize) -> usize {
        match self {
            Amount::Count(n) => n.max(1),
            Amount::Percent(p) => ((total as f64 * p / 100.0).ceil() as usize).max(1),
        }
    }

    /// How many failures out of `total` are tolerated: percentages round down, so 10% of
    /// 5 nodes tolerates none.
    pub fn allowed(self, total: usize) -> usize {
        match self {
            Amount::Count(n) => n,
            Amount::Percent(p) => (total as f64 * p / 100.0).floor() as usize,
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Count(n) => write!(f, "{n}"),
            Amount::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Sizes of the batches for `total` nodes: each step of the ramp once, the last repeating.
/// An empty ramp means one batch of everything.
pub fn plan_sizes(total: usize, ramp: &[Amount]) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut left = total;
    let mut i = 0;
    while left > 0 {
        let size = match ramp.get(i).or(ramp.last()) {
            Some(a) => a.batch_size(total),
            None => total,
        };
        let n = size.min(left);
        sizes.push(n);
        left -= n;
        i += 1;
    }
    sizes
}

/// Removes repeated identities, keeping the first of each in order: a node named twice is
/// called once.
pub fn dedup_keep_order(nodes: Vec<String>) -> Vec<String> {
    // Discovery hands its nodes over sorted and unique: nothing to remove, nothing to hash
    // (hashing and copying 10,000 names was ~2% of `req`'s CPU, issue 15).
    if nodes.windows(2).all(|w| w[0] < w[1]) {
        return nodes;
    }
    let mut seen = foldhash::HashSet::with_capacity_and_hasher(nodes.len(), Default::default());
    let first: Vec<bool> = nodes.iter().map(|n| seen.insert(n.as_str())).collect();
    drop(seen);
    nodes.into_iter().zip(first).filter_map(|(n, first)| first.then_some(n)).collect()
}

/// Splits `nodes` into batches of the given sizes; the last size repeats.
pub fn plan_batches(nodes: &[String], sizes: &[usize]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = nodes;
    let mut i = 0;
    while !rest.is_empty() {
        let size = sizes.get(i).or(sizes.last()).copied().unwrap_or(rest.len()).max(1);
        let n = size.min(rest.len());
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
        i += 1;
    }
    out
}

/// Failure budgets of a rollout. A silent or malformed node counts as a failure.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Thresholds {
    /// Across the whole run.
    pub max_failures: Option<Amount>,
    /// Within one batch.
    pub max_batch_failures: Option<Amount>,
    /// Within one `group_by` group (topology).
    pub max_group_failures: Option<Amount>,
}

/// Go on, or stop with a reason.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Continue,
    Stop(String),
}

impl Thresholds {
    /// Judges the run after a batch: `batch_failed` of `batch_size`, `run_failed` of `total`.
    pub fn judge(&self, total: usize, batch_size: usize, batch_failed: usize, run_failed: usize) -> Verdict {
        if let Some(m) = self.max_batch_failures {
            let allowed = m.allowed(batch_size);
            if batch_failed > allowed {
                return Verdict::Stop(format!(
                    "{batch_failed} of {batch_size} node(s) in this batch failed, more than max_batch_failures {m} allows ({allowed})"
                ));
            }
        }
        if let Some(m) = self.max_failures {
            let allowed = m.allowed(total);
            if run_failed > allowed {
                return Verdict::Stop(format!(
                    "{run_failed} of {total} node(s) failed so far, more than max_failures {m} allows ({allowed})"
                ));
            }
        }
        Verdict::Continue
    }
}

/// Read-only actions run even under `--dry-run`.
pub fn is_read_only(agent: &str, action: &str) -> bool {
    match agent {
        "rpcutil" => true,
        "choria_util" => matches!(action, "info" | "machine_states" | "machine_state"),
        _ => false,
    }
}

/// The Big Red Button: never without explicit confirmation.
pub fn needs_confirmation(agent: &str, action: &str) -> bool {
    agent == "choria_provision" && action == "shutdown"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_expand_and_the_last_step_repeats() {
        let ramp = [Amount::Count(1), Amount::Count(5), Amount::Percent(25.0)];
        assert_eq!(plan_sizes(50, &ramp), vec![1, 5, 13, 13, 13, 5]);
        assert_eq!(plan_sizes(3, &ramp), vec![1, 2]);
        assert_eq!(plan_sizes(10, &[]), vec![10]);
        assert_eq!(plan_sizes(0, &ramp), Vec::<usize>::new());
        assert_eq!(plan_sizes(7, &[Amount::Count(3)]), vec![3, 3, 1]);
    }

    #[test]
    fn batches_follow_sizes_and_repeat_the_last() {
        let nodes: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
        let b = plan_batches(&nodes, &[1, 3]);
        let sizes: Vec<usize> = b.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 3, 3, 3]);
        assert_eq!(b[0], vec!["n0"]);
        assert_eq!(plan_batches(&nodes, &[]).len(), 1);
        assert!(plan_batches(&[], &[2]).is_empty());
        let d = dedup_keep_order(vec!["b".into(), "a".into(), "b".into()]);
        assert_eq!(d, vec!["b".to_string(), "a".to_string()]);
        let d = dedup_keep_order(vec!["a".into(), "b".into(), "b".into(), "c".into()]);
        assert_eq!(d, vec!["a".to_string(), "b".to_string(), "c".to_string()], "sorted, with a repeat");
        let d = dedup_keep_order(vec!["a".into(), "c".into(), "d".into()]);
        assert_eq!(d, vec!["a".to_string(), "c".to_string(), "d".to_string()]);
    }

    #[test]
    fn percentages_of_small_fleets() {
        assert_eq!(Amount::Percent(10.0).batch_size(5), 1, "never a zero batch");
        assert_eq!(Amount::Percent(10.0).batch_size(50), 5);
        assert_eq!(Amount::Percent(10.0).batch_size(51), 6, "rounds up");
        assert_eq!(Amount::Percent(10.0).allowed(5), 0, "10% of 5 tolerates none");
        assert_eq!(Amount::Percent(10.0).allowed(50), 5);
        assert_eq!(Amount::Count(0).batch_size(10), 1);
        assert_eq!(Amount::parse("25%").unwrap(), Amount::Percent(25.0));
        assert_eq!(Amount::parse(" 3 ").unwrap(), Amount::Count(3));
        assert!(Amount::parse("0%").is_err());
        assert!(Amount::parse("120%").is_err());
        assert!(Amount::parse("-1").is_err());
        assert!(Amount::parse("lots").is_err());
    }

    #[test]
    fn thresholds_stop_only_when_exceeded() {
        let t = Thresholds { max_failures: Some(Amount::Count(2)), ..Default::default() };
        assert_eq!(t.judge(10, 5, 2, 2), Verdict::Continue);
        assert!(
            matches!(t.judge(10, 5, 1, 3), Verdict::Stop(r) if r.contains("3 of 10") && r.contains("max_failures 2"))
        );
        let b = Thresholds { max_batch_failures: Some(Amount::Percent(50.0)), ..Default::default() };
        assert_eq!(b.judge(10, 4, 2, 2), Verdict::Continue);
        assert!(matches!(b.judge(10, 4, 3, 3), Verdict::Stop(r) if r.contains("max_batch_failures 50%")));
        let none = Thresholds::default();
        assert_eq!(none.judge(10, 10, 10, 10), Verdict::Continue);
        let zero = Thresholds { max_failures: Some(Amount::Count(0)), ..Default::default() };
        assert!(matches!(zero.judge(10, 1, 1, 1), Verdict::Stop(_)));
    }

    #[test]
    fn read_only_and_confirmation_rules() {
        assert!(is_read_only("rpcutil", "ping"));
        assert!(!is_read_only("choria_provision", "restart"));
        assert!(needs_confirmation("choria_provision", "shutdown"));
        assert!(!needs_confirmation("choria_provision", "restart"));
    }
}
