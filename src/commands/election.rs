//! `fleetbook election view|evict`, with `choria election`'s output.

use std::io::Write;
use std::time::Duration;

use crate::config::Settings;
use crate::env::FleetEnv;
use crate::error::Error;
use crate::fleet::election::BucketInfo;

/// Go's `time.Duration` `String()`: `0s`, `10s`, `1m0s`, `1m30s`, `1h0m0s`, `500ms`.
pub(crate) fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        return match ns {
            n if n < 1_000 => format!("{n}ns"),
            n if n < 1_000_000 => format!("{}µs", trim(n as f64 / 1e3)),
            n => format!("{}ms", trim(n as f64 / 1e6)),
        };
    }
    let total = d.as_secs();
    let (h, m) = (total / 3600, (total % 3600) / 60);
    let s = trim((total % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Removes the longest common dotted suffix of host names (never the first label).
fn compact(names: &[String]) -> Vec<String> {
    let split: Vec<Vec<&str>> = names.iter().map(|n| n.split('.').collect()).collect();
    let min = split.iter().map(Vec::len).min().unwrap_or(0);
    let mut common = 0;
    while common + 1 < min {
        let label = split[0][split[0].len() - 1 - common];
        if split.iter().all(|p| p[p.len() - 1 - common] == label) {
            common += 1;
        } else {
            break;
        }
    }
    split.iter().map(|p| p[..p.len() - common].join(".")).collect()
}

/// The header, warnings and table of `choria election info`.
pub(crate) fn render(b: &BucketInfo, filter: &regex::Regex) -> String {
    let mut out = String::new();
    let name = &b.bucket;
    if b.history != 1 {
        out.push_str(&format!("WARNING: {name} is not a valid election bucket, historic entries are retained\n\n"));
    }
    // go-choria's cmd/election_info.go, word for word.
    if b.max_age < Duration::from_secs(5) {
        let age = go_duration(b.max_age);
        out.push_str(&format!("WARNING: {name} is not a valid election bucket, maximum age {age} is too low\n\n"));
    } else if b.max_age > Duration::from_secs(3600) {
        let age = go_duration(b.max_age);
        out.push_str(&format!("WARNING: {name} is not a valid election bucket, maximum age {age} is too high\n\n"));
    } else if b.max_age > Duration::from_secs(60) {
        out.push_str(&format!(
            "WARNING: {name} has a very high maximum age of {}, recovery time will be slow\n\n",
            go_duration(b.max_age)
        ));
    }
    // As go-choria: any stream with cluster information and no leader, whatever its replicas.
    if b.clustered && !b.has_cluster_leader {
        out.push_str(&format!("WARNING: {name} does not have a cluster leader\n\n"));
    }
    for (peer, _, current, offline, lag) in &b.peers {
        if *offline {
            out.push_str(&format!("WARNING: Replica peer {peer} is offline\n\n"));
        } else if !current || *lag > 100 {
            out.push_str(&format!("WARNING: Replica peer {peer} is not current with {lag} replication lag\n\n"));
        }
    }
    let created = chrono::DateTime::from_timestamp(b.created, 0)
        .map(|t| t.format("%d %b %y %H:%M %z").to_string())
        .unwrap_or_default();
    out.push_str(&format!("Election bucket information for {name}\n\n"));
    out.push_str(&format!("{:>14}: {created}\n", "Created"));
    out.push_str(&format!("{:>14}: {}\n", "Storage", if b.file_storage { "File" } else { "Memory" }));
    out.push_str(&format!("{:>14}: {}\n", "Maximum Time", go_duration(b.max_age)));
    if b.replicas <= 1 || b.peers.is_empty() {
        out.push_str(&format!("{:>14}: {}\n", "Replicas", b.replicas.max(1)));
    } else {
        let names: Vec<String> = b.peers.iter().map(|p| p.0.clone()).collect();
        let hosts: Vec<String> =
            compact(&names).into_iter().zip(&b.peers).map(|(n, p)| if p.1 { format!("{n}*") } else { n }).collect();
        out.push_str(&format!("{:>14}: {} on hosts {}\n", "Replicas", b.replicas, hosts.join(", ")));
    }
    out.push_str(&format!("{:>14}: {}\n", "Elections", b.messages));
    // Election names and leaders come from the broker: control characters are shown escaped.
    let clean = |s: &str| crate::redact::printable(s).into_owned();
    let shown: Vec<(String, String)> =
        b.elections.iter().filter(|(e, _)| filter.is_match(e)).map(|(e, l)| (clean(e), clean(l))).collect();
    let rows: Vec<&(String, String)> = shown.iter().collect();
    if b.messages > 0 {
        out.push('\n');
        out.push_str(&table("Active Elections", ["Election", "Leader"], &rows));
        out.push('\n');
    }
    out
}

/// A rounded UTF-8 box table like xlab/tablewriter's `UTF8Box` style.
fn table(title: &str, headers: [&str; 2], rows: &[&(String, String)]) -> String {
    let w0 = rows.iter().map(|r| r.0.chars().count()).chain([headers[0].len()]).max().unwrap_or(0) + 2;
    let w1 = rows.iter().map(|r| r.1.chars().count()).chain([headers[1].len()]).max().unwrap_or(0) + 2;
    let inner = w0 + 1 + w1;
    let left = (inner.saturating_sub(title.chars().count())) / 2;
    let right = inner.saturating_sub(title.chars().count() + left);
    let cell = |s: &str, w: usize| format!(" {s}{}", " ".repeat(w - 1 - s.chars().count()));
    let mut t = String::new();
    t.push_str(&format!("╭{}╮\n", "─".repeat(inner)));
    t.push_str(&format!("│{}{title}{}│\n", " ".repeat(left), " ".repeat(right)));
    t.push_str(&format!("├{}┬{}┤\n", "─".repeat(w0), "─".repeat(w1)));
    t.push_str(&format!("│{}│{}│\n", cell(headers[0], w0), cell(headers[1], w1)));
    t.push_str(&format!("├{}┼{}┤\n", "─".repeat(w0), "─".repeat(w1)));
    for (e, l) in rows {
        t.push_str(&format!("│{}│{}│\n", cell(e, w0), cell(l, w1)));
    }
    t.push_str(&format!("╰{}┴{}╯\n", "─".repeat(w0), "─".repeat(w1)));
    t
}

/// What `election view` was asked for, validated.
pub(crate) struct ViewOptions {
    /// Election names to show.
    filter: regex::Regex,
    bucket: String,
}

impl ViewOptions {
    /// NAME is a regular expression over election names; none shows them all.
    pub(crate) fn from_cli(name: Option<&str>, bucket: String) -> Result<ViewOptions, Error> {
        let filter = regex::Regex::new(name.unwrap_or("."))
            .map_err(|e| Error::Usage { message: format!("election name pattern: {e}") })?;
        Ok(ViewOptions { filter, bucket })
    }
}

/// Whether a simulated fleet is asked for whose Provisioners campaign.
fn sim_campaigns(settings: &Settings) -> bool {
    settings.sim.as_ref().is_some_and(|s| s.provisioners > 0 && s.leader_election)
}

/// How long `--sim N election view` waits for the simulated Provisioners' first campaign:
/// they campaign within a second of starting, but a loaded machine may take longer.
const FIRST_CAMPAIGN: Duration = Duration::from_secs(5);

/// `election view [NAME]`: the bucket and the leaders of the matching elections. Against a
/// simulated fleet just started, whose Provisioners campaign, it first waits (bounded) for
/// the first campaign, so that `--sim N election view` shows a leader rather than no bucket.
pub(crate) async fn view(settings: Settings, a: ViewOptions) -> Result<(), Error> {
    let campaigns = sim_campaigns(&settings);
    let env = FleetEnv::open(settings).await?;
    let info =
        if campaigns { first_campaign(&env, &a.bucket).await? } else { env.fleet.bucket_info(&a.bucket).await? };
    if info.elections.is_empty() {
        eprintln!("no election has happened yet in bucket {}: no candidate has campaigned", a.bucket);
    }
    let mut out = std::io::stdout().lock();
    write!(out, "{}", render(&info, &a.filter))?;
    Ok(())
}

/// Reads the bucket until it holds an election, or [`FIRST_CAMPAIGN`] has passed; a bucket
/// that does not exist yet is waited for too (the first candidate creates it).
async fn first_campaign(env: &FleetEnv, bucket: &str) -> Result<BucketInfo, Error> {
    let deadline = tokio::time::Instant::now() + FIRST_CAMPAIGN;
    let mut told = false;
    loop {
        let last = tokio::time::Instant::now() >= deadline;
        match env.fleet.bucket_info(bucket).await {
            Ok(info) if !info.elections.is_empty() || last => return Ok(info),
            Err(e) if last || !matches!(e, crate::fleet::FleetError::NoBucket { .. }) => return Err(e.into()),
            _ => {}
        }
        if !told {
            eprintln!("waiting up to {}s for the simulated Provisioners' first campaign...", FIRST_CAMPAIGN.as_secs());
            told = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What `election evict` was asked for, validated.
pub(crate) struct EvictOptions {
    name: String,
    bucket: String,
    /// Do not ask.
    force: bool,
    /// Only evict if this identity leads.
    expect_leader: Option<String>,
}

impl EvictOptions {
    /// Checks the election name.
    pub(crate) fn from_cli(
        name: String,
        bucket: String,
        force: bool,
        expect_leader: Option<String>,
    ) -> Result<EvictOptions, Error> {
        crate::fleet::election::check_name(&name)?;
        Ok(EvictOptions { name, bucket, force, expect_leader })
    }
}

/// `election evict NAME`: asks first unless `--force`; off a terminal without `--force` it refuses.
pub(crate) async fn evict(
    settings: Settings,
    a: EvictOptions,
    interrupt: &crate::interrupt::Interrupt,
) -> Result<(), Error> {
    use crate::engine::Answer;
    let EvictOptions { name, bucket, force, expect_leader } = a;
    if !force {
        let q = format!("Evict the current leader from election {name} in bucket {bucket}?");
        match crate::engine::ask_yes_no(&q, interrupt) {
            Answer::Yes => {}
            Answer::No => {
                return Err(Error::Guardrail { reason: "eviction not confirmed; nothing was evicted".into() })
            }
            Answer::Interrupted => return Err(Error::Interrupted),
            Answer::NoTerminal => {
                return Err(Error::Guardrail { reason: "no terminal to confirm the eviction on; pass --force".into() })
            }
        }
    }
    let env = FleetEnv::open(settings).await?;
    match env.fleet.evict(&name, &bucket, expect_leader.as_deref()).await? {
        Some(_) => println!("Evicted the leader from election {name} in bucket {bucket}"),
        None => println!("Election {name} in bucket {bucket} has no leader: nothing was evicted"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn host_names_compact() {
        let n: Vec<String> = ["broker1.example.net", "broker2.example.net", "broker3.example.net"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(compact(&n), vec!["broker1", "broker2", "broker3"]);
    }
}
