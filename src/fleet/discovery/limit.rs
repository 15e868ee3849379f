//! `--limit N|N%`: act on a subset of the discovered nodes, as go-choria's RPC client does
//! (`providers/agent/mcorpc/client/options.go`, `limitTargets`): a count or a whole
//! percentage (rounded down), taken from the front of the list (`first`, the default of
//! go-choria's `rpclimitmethod`) or at random.
//!
//! A random limit with a seed picks the same nodes on every run and in every process: the
//! nodes are sorted first, then shuffled by a PRNG of our own (splitmix64) whose output is
//! fixed by the seed. std's hasher and `rand`'s small RNGs are not (they may change between
//! releases), and go-choria's `math/rand` sequence is not reproduced either: the same seed
//! picks different nodes here than in `choria req`.

use std::fmt;

/// How much of the list to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSize {
    Count(usize),
    Percent(u32),
}

/// Which nodes a limit keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimitMethod {
    /// The first nodes of the list (in its order: sorted for broadcast, as listed for files).
    #[default]
    First,
    /// Nodes picked at random from the sorted list; the same ones for the same seed.
    Random,
}

/// A limit on the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub size: LimitSize,
    /// `None`: the client configuration's `rpclimitmethod` (go-choria's way to choose it),
    /// else `first`.
    pub method: Option<LimitMethod>,
    /// The seed of a random limit; `None`: a different pick each time.
    pub seed: Option<u64>,
}

impl LimitSize {
    /// Parses `10` or `10%` (whole numbers, as go-choria's `^(\d+)%$` / `^(\d+)$`).
    pub fn parse(s: &str) -> Result<LimitSize, String> {
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%').filter(|p| digits(p)) {
            let p: u32 = p.parse().map_err(|_| format!("{s:?}: the percentage is too large"))?;
            if p == 0 || p > 100 {
                return Err(format!("{s:?}: a percentage must be 1% to 100%"));
            }
            return Ok(LimitSize::Percent(p));
        }
        if digits(t) {
            return match t.parse::<usize>() {
                Ok(0) => Err(format!("{s:?}: a limit must be at least 1")),
                Ok(n) => Ok(LimitSize::Count(n)),
                Err(_) => Err(format!("{s:?}: the number is too large")),
            };
        }
        Err(format!("{s:?} is neither a number nor a percentage like 10%"))
    }

    /// How many of `total` nodes to keep (go-choria rounds a percentage down).
    pub fn of(self, total: usize) -> usize {
        match self {
            LimitSize::Count(n) => n.min(total),
            LimitSize::Percent(p) => total * p as usize / 100,
        }
    }
}

impl fmt::Display for LimitSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitSize::Count(n) => write!(f, "{n}"),
            LimitSize::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl LimitMethod {
    /// `first` or `random`.
    pub fn parse(s: &str) -> Result<LimitMethod, String> {
        match s {
            "first" => Ok(LimitMethod::First),
            "random" => Ok(LimitMethod::Random),
            other => Err(format!("limit method {other:?} is not valid, only 'random' or 'first' supported")),
        }
    }
}

impl Limit {
    /// A limit from its parts as flags and runbook options give them: a size, a method
    /// (the configured one unless given) and a seed, which alone means `random`.
    pub fn from_parts(size: &str, method: Option<&str>, seed: Option<u64>) -> Result<Limit, String> {
        let size = LimitSize::parse(size)?;
        let method = match (method, seed) {
            (Some(m), seed) => {
                let m = LimitMethod::parse(m)?;
                if m == LimitMethod::First && seed.is_some() {
                    return Err("a limit seed picks nodes at random: it needs the random method".into());
                }
                Some(m)
            }
            (None, Some(_)) => Some(LimitMethod::Random),
            (None, None) => None,
        };
        Ok(Limit { size, method, seed })
    }

    /// The nodes `nodes` keeps under this limit, `configured` being the method when the
    /// limit names none; `Err` with the count when none would be left (go-choria: "no
    /// targets left after applying target limits").
    pub fn apply(&self, nodes: &[String], configured: LimitMethod) -> Result<Vec<String>, usize> {
        let keep = self.size.of(nodes.len());
        if keep == 0 {
            return Err(nodes.len());
        }
        Ok(match self.method.unwrap_or(configured) {
            LimitMethod::First => nodes[..keep].to_vec(),
            LimitMethod::Random => {
                let mut sorted = nodes.to_vec();
                sorted.sort();
                let seed = self.seed.unwrap_or_else(time_seed);
                shuffle(&mut sorted, seed);
                sorted.truncate(keep);
                sorted.sort();
                sorted
            }
        })
    }
}

/// A seed for an unseeded random limit.
fn time_seed() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.as_nanos() as u64 ^ u64::from(std::process::id())
}

/// splitmix64: tiny, well mixed, and fixed forever by its definition.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (> 0), without modulo bias.
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next();
            if x < zone {
                return x % n;
            }
        }
    }
}

/// Fisher-Yates with [`SplitMix64`].
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SplitMix64(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i:03}.example.net")).collect()
    }

    #[test]
    fn sizes_parse_as_go_choria_reads_them() {
        assert_eq!(LimitSize::parse("10"), Ok(LimitSize::Count(10)));
        assert_eq!(LimitSize::parse("25%"), Ok(LimitSize::Percent(25)));
        for bad in ["", "-1", "1.5", "10 %", "x", "0", "0%", "101%"] {
            assert!(LimitSize::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(LimitSize::Percent(25).of(10), 2, "rounded down");
        assert_eq!(LimitSize::Count(50).of(10), 10, "never more than there are");
    }

    #[test]
    fn first_keeps_the_order_and_random_is_fixed_by_its_seed() {
        let all = nodes(20);
        let first = Limit { size: LimitSize::Count(3), method: None, seed: None };
        assert_eq!(first.apply(&all, LimitMethod::First).unwrap(), all[..3].to_vec());
        let configured = first.apply(&all, LimitMethod::Random).unwrap();
        assert_eq!(configured.len(), 3);
        let random = |seed| Limit { size: LimitSize::Percent(25), method: Some(LimitMethod::Random), seed: Some(seed) };
        let a = random(7).apply(&all, LimitMethod::First).unwrap();
        assert_eq!(a.len(), 5);
        let mut reversed = all.clone();
        reversed.reverse();
        assert_eq!(random(7).apply(&reversed, LimitMethod::First).unwrap(), a, "the input order does not matter");
        assert_ne!(random(8).apply(&all, LimitMethod::First).unwrap(), a, "another seed, another pick");
        // Pinned: a change here changes which nodes operators' seeded limits pick.
        assert_eq!(
            random(1).apply(&nodes(10), LimitMethod::First).unwrap(),
            ["n003.example.net", "n005.example.net"].map(String::from).to_vec()
        );
        // splitmix64's published first output for seed 0.
        assert_eq!(SplitMix64(0).next(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn nothing_left_is_an_error() {
        let l = Limit { size: LimitSize::Percent(10), method: None, seed: None };
        assert_eq!(l.apply(&nodes(5), LimitMethod::First), Err(5));
    }
}
