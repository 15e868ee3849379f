//! `fleetbook governor add|list|view|evict|delete|reset` (`run` is in `governor_run`), with `choria governor`'s output
//! (go-choria `cmd/governor_*.go`).

use std::io::Write;
use std::time::Duration;

use super::election::go_duration;
use crate::cli::governor::GovernorCommand;
use crate::config::Settings;
use crate::env::FleetEnv;
use crate::error::Error;
use crate::fleet::governor::{self, GovernorError, GovernorInfo, LeaseEntry, Limits};
use crate::fleet::FleetError;
use crate::interrupt::Interrupt;
use crate::prompt::{ask_yes_no, Answer};
use crate::redact::printable;

impl From<GovernorError> for Error {
    fn from(e: GovernorError) -> Error {
        match e {
            GovernorError::Fleet(f) => Error::Fleet(f),
            GovernorError::Cancelled { .. } => Error::Interrupted,
            GovernorError::WaitExpired { .. } => Error::Guardrail { reason: e.to_string() },
            GovernorError::Refused { .. } => Error::Fleet(FleetError::Denied { reason: e.to_string() }),
            GovernorError::Unknown { .. } | GovernorError::Invalid { .. } | GovernorError::NoLease { .. } => {
                Error::Usage { message: e.to_string() }
            }
        }
    }
}

/// What `governor` was asked to do, validated.
pub(crate) enum GovernorOptions {
    Add { name: String, limits: Limits, force: bool },
    List { json: bool },
    View { name: String },
    Evict { name: String, lease: u64, force: bool },
    Reset { name: String, force: bool },
    Delete { name: String, force: bool },
    Run(super::governor_run::RunOptions),
}

impl GovernorOptions {
    /// Checks names, the capacity, the expiry (Go's duration syntax) and the replicas.
    pub(crate) fn from_cli(c: GovernorCommand) -> Result<GovernorOptions, Error> {
        let name_ok = |n: String| governor::check_name(&n).map(|()| n).map_err(Error::from);
        Ok(match c {
            GovernorCommand::Add { name, capacity, expire, replicas, force } => {
                let expire = parse_go_duration(&expire)
                    .map_err(|e| Error::Usage { message: format!("governor expire {expire:?}: {e}") })?;
                if capacity < 1 {
                    return Err(Error::Usage { message: format!("governor capacity {capacity}: must be at least 1") });
                }
                if !(1..=5).contains(&replicas) {
                    return Err(Error::Usage { message: format!("governor replicas {replicas}: must be 1 to 5") });
                }
                GovernorOptions::Add { name: name_ok(name)?, limits: Limits { capacity, expire, replicas }, force }
            }
            GovernorCommand::List { json } => GovernorOptions::List { json },
            GovernorCommand::View { name } => GovernorOptions::View { name: name_ok(name)? },
            GovernorCommand::Evict { name, lease, force } => {
                if lease == 0 {
                    return Err(Error::Usage { message: "lease 0: lease ids start at 1".into() });
                }
                GovernorOptions::Evict { name: name_ok(name)?, lease, force }
            }
            GovernorCommand::Reset { name, force } => GovernorOptions::Reset { name: name_ok(name)?, force },
            GovernorCommand::Delete { name, force } => GovernorOptions::Delete { name: name_ok(name)?, force },
            GovernorCommand::Run { name, command, max_wait, interval } => GovernorOptions::Run(
                super::governor_run::RunOptions::from_cli(name_ok(name)?, command, &max_wait, &interval)?,
            ),
        })
    }
}

/// Parses Go's `time.ParseDuration` syntax (`1h30m`, `90s`, `1.5h`, `500ms`, `0`), which
/// `choria governor add` takes; negative durations are refused.
pub(crate) fn parse_go_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() || rest.starts_with('-') {
        return Err("expected a duration like 1h, 10m or 1h30m".into());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().map_err(|_| "expected a number before each unit".to_string())?;
        rest = &rest[n..];
        let u = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err("missing unit (ns, us, ms, s, m or h)".into()),
            other => return Err(format!("unknown unit {other:?} (ns, us, ms, s, m or h)")),
        };
        total += value * scale;
        rest = &rest[u..];
    }
    Duration::try_from_secs_f64(total).map_err(|e| e.to_string())
}

/// Asks `question` unless `force`; off a terminal without `force` nothing is done (exit 3).
fn confirm(question: &str, what: &str, force: bool, interrupt: &Interrupt) -> Result<(), Error> {
    if force {
        return Ok(());
    }
    std::io::stdout().flush()?;
    match ask_yes_no(question, interrupt) {
        Answer::Yes => Ok(()),
        Answer::No => Err(Error::Guardrail { reason: format!("{what} not confirmed") }),
        Answer::Interrupted => Err(Error::Interrupted),
        Answer::NoTerminal => {
            Err(Error::Guardrail { reason: format!("no terminal to confirm the {what} on; pass --force") })
        }
    }
}

/// Runs one `governor` subcommand.
pub(crate) async fn run(settings: Settings, o: GovernorOptions, interrupt: &Interrupt) -> Result<(), Error> {
    let env = FleetEnv::open(settings).await?;
    let fleet = &env.fleet;
    let mut out = std::io::stdout().lock();
    match o {
        GovernorOptions::Add { name, limits, force } => {
            let (mut gov, _created) = governor::load_or_create(fleet, &name, limits).await?;
            if gov.limits != limits {
                write!(out, "{}", render_differs(&gov.limits, &limits))?;
                drop(out);
                confirm(&format!("Update configuration for {name}?"), "update", force, interrupt)?;
                gov = governor::update(fleet, &name, limits).await?;
                out = std::io::stdout().lock();
            }
            write!(out, "{}", render_config(&gov.limits))?;
        }
        GovernorOptions::List { json } => {
            let names = governor::list(fleet, &fleet.options().collective).await?;
            write!(out, "{}", render_list(&names, json))?;
        }
        GovernorOptions::View { name } => {
            let (gov, leases) = governor::view(fleet, &name).await?;
            write!(out, "{}", render_view(&gov, &leases))?;
        }
        GovernorOptions::Evict { name, lease, force } => {
            if governor::info(fleet, &name).await?.active == 0 {
                writeln!(out, "No lease entries to remove")?;
                return Ok(());
            }
            drop(out);
            confirm(&format!("Evict lease {lease} from {name}?"), "eviction", force, interrupt)?;
            let who = governor::evict(fleet, &name, lease).await?;
            // go-choria's `governor evict` announces the eviction, as the evicted identity.
            governor::announce(fleet, &who, "CLI", &name, lease, governor::GovernorEvent::Eviction).await;
            println!("Evicted {:?} from slot {lease}", printable(&who));
        }
        GovernorOptions::Reset { name, force } => {
            let active = governor::info(fleet, &name).await?.active;
            if active == 0 {
                writeln!(out, "No lease entries to remove")?;
                return Ok(());
            }
            drop(out);
            confirm(&format!("Reset {name} with {active} lease entries?"), "reset", force, interrupt)?;
            // go-choria prints nothing after a reset.
            governor::reset(fleet, &name).await?;
        }
        GovernorOptions::Delete { name, force } => {
            let active = governor::info(fleet, &name).await?.active;
            drop(out);
            confirm(&format!("Delete {name} with {active} active lease entries?"), "deletion", force, interrupt)?;
            governor::delete(fleet, &name).await?;
        }
        GovernorOptions::Run(o) => {
            drop(out);
            return super::governor_run::run(fleet, o, interrupt).await;
        }
    }
    Ok(())
}

/// `governor add`'s listing of a governor that differs from what was asked.
fn render_differs(have: &Limits, want: &Limits) -> String {
    format!(
        "Existing configuration:\n\n  Capacity: {} desired: {}\n   Expires: {} desired: {}\n  Replicas: {} desired: {}\n",
        have.capacity,
        want.capacity,
        go_duration(have.expire),
        go_duration(want.expire),
        have.replicas,
        want.replicas
    )
}

/// `governor add`'s closing configuration.
fn render_config(l: &Limits) -> String {
    format!(
        "Configuration:\n\n  Capacity: {}\n   Expires: {}\n  Replicas: {}\n\n",
        l.capacity,
        go_duration(l.expire),
        l.replicas
    )
}

/// `governor list`: names, or an indented JSON array.
fn render_list(names: &[String], json: bool) -> String {
    if json {
        return format!("{}\n", serde_json::to_string_pretty(names).unwrap_or_else(|_| "[]".into()));
    }
    if names.is_empty() {
        return "No Governors found\n".into();
    }
    let mut s = String::from("Known Governors:\n\n");
    for n in names {
        s.push_str(&format!("\t{}\n", printable(n)));
    }
    s
}

/// `governor view`: the configuration, then a table of the leases.
fn render_view(g: &GovernorInfo, leases: &[LeaseEntry]) -> String {
    let mut s = format!("Configuration for Governor {}\n\n", g.name);
    s.push_str(&format!("       Capacity: {}\n", g.limits.capacity));
    s.push_str(&format!("        Expires: {}\n", go_duration(g.limits.expire)));
    s.push_str(&format!("       Replicas: {}\n", g.limits.replicas));
    s.push_str(&format!("  Active Leases: {}\n\n", g.active));
    if g.active > 0 {
        let rows: Vec<[String; 3]> = leases
            .iter()
            .map(|l| {
                let age = Duration::from_millis((l.age.as_secs_f64() * 1000.0).round() as u64);
                [l.seq.to_string(), printable(&l.who).into_owned(), go_duration(age)]
            })
            .collect();
        s.push('\n');
        s.push_str(&table(["ID", "Process Name", "Age"], &rows));
        s.push('\n');
    }
    s
}

/// A table in xlab/tablewriter's `UTF8Box` style without a title, as go-choria's
/// `util.NewUTF8Table` draws it: left-aligned cells padded by one space.
fn table<const N: usize>(headers: [&str; N], rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([headers[i].chars().count()]).max().unwrap_or(0) + 2)
        .collect();
    let line = |l: &str, m: &str, r: &str| {
        let parts: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
        format!("{l}{}{r}\n", parts.join(m))
    };
    let row = |cells: Vec<&str>| {
        let parts: Vec<String> =
            cells.iter().zip(&widths).map(|(c, w)| format!(" {c}{}", " ".repeat(w - 1 - c.chars().count()))).collect();
        format!("│{}│\n", parts.join("│"))
    };
    let mut t = line("╭", "┬", "╮");
    t.push_str(&row(headers.to_vec()));
    t.push_str(&line("├", "┼", "┤"));
    for r in rows {
        t.push_str(&row(r.iter().map(String::as_str).collect()));
    }
    t.push_str(&line("╰", "┴", "╯"));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        let d = |s: &str| parse_go_duration(s);
        assert_eq!(d("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(d("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(d("0"), Ok(Duration::ZERO));
        for bad in ["", "10", "-1m", "1d", "m", "1h-"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn view_draws_go_choria_s_table() {
        let g = GovernorInfo {
            name: "PUPPET".into(),
            limits: Limits { capacity: 10, expire: Duration::from_secs(600), replicas: 1 },
            subject: "mcollective.governor.PUPPET".into(),
            active: 2,
        };
        let leases = [
            LeaseEntry { seq: 7, who: "n1.example.net".into(), age: Duration::from_millis(1500) },
            LeaseEntry { seq: 12, who: "n2".into(), age: Duration::from_secs(61) },
        ];
        let want = "Configuration for Governor PUPPET

       Capacity: 10
        Expires: 10m0s
       Replicas: 1
  Active Leases: 2


╭────┬────────────────┬──────╮
│ ID │ Process Name   │ Age  │
├────┼────────────────┼──────┤
│ 7  │ n1.example.net │ 1.5s │
│ 12 │ n2             │ 1m1s │
╰────┴────────────────┴──────╯

";
        assert_eq!(render_view(&g, &leases), want);
    }

    #[test]
    fn list_and_add_shapes() {
        assert_eq!(render_list(&[], false), "No Governors found\n");
        assert_eq!(render_list(&["A".into(), "B".into()], false), "Known Governors:\n\n\tA\n\tB\n");
        assert_eq!(render_list(&["A".into()], true), "[\n  \"A\"\n]\n");
        let l = Limits { capacity: 2, expire: Duration::from_secs(3600), replicas: 1 };
        assert_eq!(render_config(&l), "Configuration:\n\n  Capacity: 2\n   Expires: 1h0m0s\n  Replicas: 1\n\n");
    }
}
