//! A simulated server's process: its PID, start time and message counters, which
//! `rpcutil#daemon_stats` reports as go-choria's server does. A restart starts a new process:
//! a new PID, a new start time and counters from zero.

use serde_json::{json, Value};

/// One server process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    /// Its process id.
    pub pid: u32,
    /// When it started, Unix seconds.
    pub started: i64,
    /// Messages that reached it.
    pub total: u64,
    /// Messages whose filter it matched.
    pub passed: u64,
    /// Messages whose filter it did not match (or for an agent it does not run).
    pub filtered: u64,
    /// Replies it sent.
    pub replies: u64,
    /// Lifecycle events it published.
    pub events: u64,
}

impl Daemon {
    /// The process of a node that has been up for a while: the PID and uptime come from the
    /// identity, not from the simulator's random stream, so seeded fleets stay as they were.
    pub(crate) fn for_identity(identity: &str, now: i64) -> Daemon {
        // FNV-1a: stable across runs and platforms.
        let h =
            identity.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let uptime = 3600 + (h % (30 * 86_400)) as i64;
        Daemon { pid: 1000 + (h >> 32) as u32 % 60_000, started: now - uptime, ..Daemon::zero() }
    }

    fn zero() -> Daemon {
        Daemon { pid: 0, started: 0, total: 0, passed: 0, filtered: 0, replies: 0, events: 0 }
    }

    /// The process after a restart: a later PID, started `now`, about to publish `startup`.
    pub(crate) fn restarted(&self, now: i64) -> Daemon {
        let pid = if self.pid >= 65_000 { 1000 } else { self.pid + 7 };
        Daemon { pid, started: now, events: 1, ..Daemon::zero() }
    }

    /// `rpcutil#daemon_stats`, the fields of go-choria's `DaemonStatsReply`.
    pub(crate) fn stats(&self, version: &str, agents: &[String], threads: usize) -> Value {
        json!({
            "agents": agents,
            "configfile": "/etc/choria/server.conf",
            "filtered": self.filtered,
            "pid": self.pid,
            "passed": self.passed,
            "threads": [format!("Go go1.24.4 with {threads} go procs on 2 cores")],
            "replies": self.replies,
            "starttime": self.started,
            "ttlexpired": 0,
            "events": self.events,
            "times": {"cstime": 0, "cutime": 0, "stime": 0, "utime": 0},
            "total": self.total,
            "unvalidated": 0,
            "validated": self.passed,
            "version": version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_is_a_new_process() {
        let d = Daemon::for_identity("n001.example.net", 1_800_000_000);
        assert_eq!(d, Daemon::for_identity("n001.example.net", 1_800_000_000), "stable");
        assert!(d.started < 1_800_000_000 - 3599 && (1000..61_000).contains(&d.pid));
        let r = Daemon { total: 9, ..d.clone() }.restarted(1_800_000_100);
        assert_eq!((r.started, r.total, r.events), (1_800_000_100, 0, 1));
        assert_ne!(r.pid, d.pid);
    }
}
