//! Undoing a JSON string's escapes 64 bytes at a time.
//!
//! v1's JSON inside JSON has an escape every six or seven bytes (`\"` around every key of
//! the reply, `\\\"` around the body's). Taken a byte at a time, each escape was a branch the
//! processor could not predict, and unescaping was the largest single cost of a v1 reply in
//! the client (issue 15: 13% of its CPU at 50,000 nodes). Here a block's backslashes, quotes
//! and control characters become bit masks, the escapes' first backslashes follow from the
//! backslash mask with a few integer operations (no branch per byte), and the runs between
//! them are copied a whole lane at a time.

/// Bytes looked at together: one bit each in a `u64`.
const BLOCK: usize = 64;
/// Runs between escapes are copied this many bytes at a time, whatever their length.
const LANE: usize = 16;
/// What the output needs beyond the unescaped text: a block and a lane of scratch room.
pub(super) const SLACK: usize = BLOCK + LANE;

/// Undoes the escapes of a string's text from `at` (never inside an escape) up to its
/// closing quote, appending the text to `out`; the closing quote's index. `None` for a raw
/// control character, a missing closing quote, an unknown escape or a `\u` escape of a UTF-16
/// surrogate (serde decides those). Reserving room for the rest of `b` and [`SLACK`] in `out`
/// saves growing it.
pub(super) fn unescape_from(b: &[u8], mut at: usize, out: &mut Vec<u8>) -> Option<usize> {
    let mut w = out.len();
    loop {
        // Scratch room for this block; zeroed as it is needed, not for the whole rest of the
        // text (a short string early in a long text would pay for all of it).
        if out.len() < w + SLACK {
            out.resize(w + SLACK, 0);
        }
        // The block and a lane past it, read in place. Near the end of the text, a copy in
        // which bytes past the text read as NUL, a control character, so a string without its
        // closing quote fails. (Always copying cost more than the rest: the lanes read back
        // straddled the copy's stores, which the processor cannot forward.)
        let mut padded = [0u8; BLOCK + LANE];
        let blk: &[u8; BLOCK + LANE] = match b.get(at..at + BLOCK + LANE) {
            Some(whole) => whole.try_into().expect("a block and a lane"),
            None => {
                let n = b.len().checked_sub(at)?.min(BLOCK);
                padded[..n].copy_from_slice(&b[at..at + n]);
                &padded
            }
        };
        let m = Masks::of(blk[..BLOCK].try_into().expect("a block"));
        let mut starts = escape_starts(m.backslash);
        // An escape started by the block's last byte ends in the next block: it starts there.
        let len = BLOCK as u32 - (starts >> 63) as u32;
        starts &= below(len);
        let escaped = starts << 1;
        let closing = m.quote & !escaped & below(len);
        let mut upto = if closing != 0 { closing.trailing_zeros() } else { len };
        if m.control & below(upto) != 0 {
            return None;
        }
        // Escapes other than \" \\ \/ are undone one at a time, after the bytes before them.
        let other = escaped & !(m.quote | m.backslash | m.slash) & below(upto);
        if other != 0 {
            upto = other.trailing_zeros() - 1;
        }
        // The bytes before `upto` but the escapes' backslashes: runs, each copied a lane at
        // a time (what a lane copies past a run is overwritten by the next or cut off).
        let upto_at = upto as usize;
        let mut from = 0;
        let mut rest = starts & below(upto);
        loop {
            let to = if rest != 0 { rest.trailing_zeros() as usize } else { upto_at };
            let run = to - from;
            out[w..w + LANE].copy_from_slice(&blk[from..from + LANE]);
            if run > LANE {
                out[w..w + run].copy_from_slice(&blk[from..to]);
            }
            w += run;
            if rest == 0 {
                break;
            }
            from = to + 1;
            rest &= rest - 1;
        }
        at += upto_at;
        if other != 0 {
            let (c, width) = match b[at + 1] {
                b'n' => ('\n', 2),
                b't' => ('\t', 2),
                b'r' => ('\r', 2),
                b'b' => ('\u{8}', 2),
                b'f' => ('\u{c}', 2),
                _ => (unicode_escape(b, at + 1)?, 6),
            };
            w += c.encode_utf8(&mut out[w..w + 4]).len();
            at += width;
        } else if closing != 0 {
            out.truncate(w);
            return Some(at);
        }
    }
}

/// The character of a `\uXXXX` escape whose `u` is at `at`. Surrogates fail: they are no
/// `char`.
fn unicode_escape(b: &[u8], at: usize) -> Option<char> {
    if b.get(at) != Some(&b'u') {
        return None;
    }
    let hex = b.get(at + 1..at + 5)?;
    if !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let hex = std::str::from_utf8(hex).ok()?;
    char::from_u32(u32::from_str_radix(hex, 16).ok()?)
}

/// The bits below `n` (0 to 64).
fn below(n: u32) -> u64 {
    if n >= 64 {
        !0
    } else {
        (1 << n) - 1
    }
}

/// The backslashes of `backslash` that start an escape: in each run of backslashes the
/// first, third, fifth... (each escapes the byte after it). Bit 0 is outside any escape.
pub(super) fn escape_starts(backslash: u64) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    let run_starts = backslash & !(backslash << 1);
    // Adding a run's first bit clears the whole run (the carry lands on the byte after it,
    // which is no backslash): what is left are the runs that start on an odd bit.
    let odd_runs = backslash.wrapping_add(run_starts & EVEN) & backslash;
    let even_runs = backslash ^ odd_runs;
    (even_runs & EVEN) | (odd_runs & !EVEN)
}

/// One bit per byte of a block.
#[derive(Debug, PartialEq)]
pub(super) struct Masks {
    backslash: u64,
    quote: u64,
    slash: u64,
    /// Below 0x20.
    control: u64,
}

impl Masks {
    /// Sixteen bytes per instruction with SSE2, which every x86-64 processor has.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    pub(super) fn of(blk: &[u8; BLOCK]) -> Masks {
        use super::Lane;
        use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_set1_epi8};
        let mut m = Masks { backslash: 0, quote: 0, slash: 0, control: 0 };
        for (lane, bytes) in blk.chunks_exact(16).enumerate() {
            let shift = 16 * lane;
            let l = Lane::of(bytes);
            m.backslash |= u64::from(Lane::bits(l.backslash)) << shift;
            m.quote |= u64::from(Lane::bits(l.quote)) << shift;
            // SAFETY: SSE2 is enabled for this target (the cfg above); registers only.
            let slash = unsafe { _mm_cmpeq_epi8(l.v, _mm_set1_epi8(b'/' as i8)) };
            m.slash |= u64::from(Lane::bits(slash)) << shift;
            m.control |= u64::from(Lane::bits(l.control)) << shift;
        }
        m
    }

    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    pub(super) fn of(blk: &[u8; BLOCK]) -> Masks {
        Masks::bytewise(blk)
    }

    /// A byte at a time: other processors, and the reference the SSE2 version is tested against.
    #[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
    pub(super) fn bytewise(blk: &[u8; BLOCK]) -> Masks {
        let mut m = Masks { backslash: 0, quote: 0, slash: 0, control: 0 };
        for (i, &c) in blk.iter().enumerate() {
            m.backslash |= u64::from(c == b'\\') << i;
            m.quote |= u64::from(c == b'"') << i;
            m.slash |= u64::from(c == b'/') << i;
            m.control |= u64::from(c < 0x20) << i;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// The escapes' first backslashes found one at a time: each starts an escape and
    /// takes the byte after it along.
    fn starts_one_by_one(backslash: u64) -> u64 {
        let (mut starts, mut rest) = (0u64, backslash);
        while rest != 0 {
            let k = rest.trailing_zeros();
            starts |= 1 << k;
            rest &= !(3u64 << k);
        }
        starts
    }

    #[test]
    fn escape_starts_are_every_other_backslash_of_each_run() {
        // Every pattern of 16 bits, at the bottom, middle and top of the word.
        for x in 0u64..1 << 16 {
            for shift in [0, 23, 48] {
                let b = x << shift;
                assert_eq!(escape_starts(b), starts_one_by_one(b), "{b:064b}");
            }
        }
        let mut rng = SmallRng::seed_from_u64(15);
        for _ in 0..200_000 {
            // Dense and sparse backslashes alike.
            let b = match rng.gen_range(0..3) {
                0 => rng.gen::<u64>(),
                1 => rng.gen::<u64>() | rng.gen::<u64>(),
                _ => rng.gen::<u64>() & rng.gen::<u64>(),
            };
            assert_eq!(escape_starts(b), starts_one_by_one(b), "{b:064b}");
        }
        assert_eq!(escape_starts(!0), 0x5555_5555_5555_5555);
    }

    #[test]
    fn block_masks_are_the_bytes() {
        let mut rng = SmallRng::seed_from_u64(16);
        const PICK: &[u8] = b"\\\"/\x00\x1f\x20\x7f\x80\xff\xc3a0";
        for _ in 0..20_000 {
            let mut blk = [0u8; BLOCK];
            for c in &mut blk {
                *c = if rng.gen_bool(0.5) { PICK[rng.gen_range(0..PICK.len())] } else { rng.gen() };
            }
            assert_eq!(Masks::of(&blk), Masks::bytewise(&blk), "{blk:?}");
        }
    }
}
