//! Run ids: sortable by start time, unique without coordination. The layout is a KSUID's
//! (segment.io): a 4-byte big-endian timestamp in seconds since 2014-05-13 16:53:20 UTC and
//! 16 random bytes, written as 27 base62 characters, so ids sort as text in start order.

use std::fmt;

use rand::RngCore;

/// KSUID's epoch: 1,400,000,000 seconds after the Unix epoch.
const EPOCH: i64 = 1_400_000_000;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 20 bytes in base62 take at most 27 characters.
const LEN: usize = 27;

/// A run's id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(String);

impl RunId {
    /// A new id for a run starting now.
    pub fn new() -> RunId {
        let mut payload = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut payload);
        RunId::at(chrono::Utc::now().timestamp(), payload)
    }

    fn at(unix_secs: i64, payload: [u8; 16]) -> RunId {
        let secs = u32::try_from(unix_secs - EPOCH).unwrap_or(0);
        let mut bytes = [0u8; 20];
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        bytes[4..].copy_from_slice(&payload);
        RunId(base62(&bytes))
    }

    /// Checks an id given on the command line: 27 base62 characters.
    pub fn parse(s: &str) -> Result<RunId, String> {
        if s.len() == LEN && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(RunId(s.to_string()))
        } else {
            Err(format!("{s:?} is not a run id (27 letters and digits, as `fleetbook runs` lists them)"))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RunId {
    fn default() -> Self {
        RunId::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Big-endian base62, left-padded with '0' to 27 characters.
fn base62(bytes: &[u8; 20]) -> String {
    let mut n: Vec<u32> = bytes.iter().map(|b| u32::from(*b)).collect();
    let mut out = Vec::with_capacity(LEN);
    while n.iter().any(|d| *d != 0) {
        // Long division of the base-256 number by 62.
        let mut rem = 0u32;
        for d in n.iter_mut() {
            let cur = rem * 256 + *d;
            *d = cur / 62;
            rem = cur % 62;
        }
        out.push(ALPHABET[rem as usize]);
    }
    while out.len() < LEN {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_27_base62_characters_sorted_by_time() {
        // segment.io's documented maximum KSUID.
        assert_eq!(base62(&[0xff; 20]), "aWgEPTl1tmebfsQzFP4bxwgy80V");
        assert_eq!(base62(&[0; 20]), "0".repeat(27));
        let a = RunId::at(1_700_000_000, [0xff; 16]);
        let b = RunId::at(1_700_000_001, [0; 16]);
        assert!(a < b, "{a} sorts before {b}");
        let id = RunId::new();
        assert_eq!(RunId::parse(id.as_str()), Ok(id.clone()));
        assert!(RunId::parse("not-an-id").is_err());
        assert_ne!(RunId::new(), RunId::new());
    }
}
