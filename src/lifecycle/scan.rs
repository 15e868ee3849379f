//! The fast path of [`Fields::read`]: one pass over the bytes for the plain events nearly
//! every server sends (no escapes in strings, integers only in the fields we read).
//!
//! serde's derived map visitor spent ~500 ns per CloudEvent matching keys and re-checking
//! strings, more than a validating skip of the whole message costs; `watch_events` decodes
//! every event on the subject, so that was most of its cost (issue 15). This reader gives up
//! (`None`) on anything it does not take on itself (an escape, a float or overflowing number
//! where it reads one, a duplicate key it reads, deep nesting, bytes after the object), and the
//! caller then goes the serde way, which is the reference: when this returns `Some`, it is
//! what the serde reader returns (a unit test compares them on mutated events).

use std::borrow::Cow;

use super::fields::{Data, Fields, Loose};

/// Deeper than this goes the serde way (its own limit is 128).
const MAX_DEPTH: usize = 64;

/// The fields of the JSON object in `bytes`, or `None` to let the serde reader decide.
pub(super) fn read(bytes: &[u8]) -> Option<Fields<'_>> {
    // Checked once for the whole message: every string below is cut at ASCII quotes, so each
    // slice is valid UTF-8 too.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut s = Scan { text, b: bytes, i: 0 };
    s.ws();
    // Filled in place: a `Fields` is some 400 bytes, and moving it out of each call showed.
    let mut f = Fields::default();
    s.object(&mut f, 0)?;
    s.ws();
    (s.i == s.b.len()).then_some(f)
}

/// Where the first quote, backslash or control character of `rest` is: eight bytes at a time
/// (a string's end is found without looking at each byte on its own).
fn special(rest: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    let mut at = 0;
    for chunk in rest.chunks_exact(8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // The classic "has a zero byte" test, on the word xor'ed with each byte sought, and
        // "has a byte below 0x20". Flags above the lowest one may be false; the lowest is not.
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let flags = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w);
        let flags = flags & HIGH;
        if flags != 0 {
            return Some(at + (flags.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    rest[at..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).map(|p| at + p)
}

struct Scan<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end) == Some(word)).then(|| self.i = end)
    }

    /// A string without escapes or control characters; the opening quote is next.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let rest = self.b.get(start..)?;
        let len = special(rest)?;
        if rest[len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        Some(&self.text[start..start + len])
    }

    /// An integer as serde_json reports it: `Uint` when not negative, `Int` when negative;
    /// `None` for a fraction, an exponent, `-0` or an overflow (serde_json makes those floats).
    fn integer(&mut self) -> Option<Loose<'a>> {
        let negative = self.eat(b'-').is_some();
        let digits = self.digits()?;
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let n: u64 = digits.parse().ok()?;
        if !negative {
            return Some(Loose::Uint(n));
        }
        if n == 0 {
            return None;
        }
        // i64::MIN's magnitude fits no i64; the rest negate.
        i64::try_from(n).ok().map(|n| Loose::Int(-n)).or((n == 1 << 63).then_some(Loose::Int(i64::MIN)))
    }

    /// JSON's integer part: `0` or a digit 1-9 followed by digits.
    fn digits(&mut self) -> Option<&'a str> {
        let start = self.i;
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                while let Some(b'0'..=b'9') = self.peek() {
                    self.i += 1;
                }
            }
            _ => return None,
        }
        if let Some(b'0'..=b'9') = self.peek() {
            return None;
        }
        Some(&self.text[start..self.i])
    }

    /// Any JSON number, checked and skipped.
    fn skip_number(&mut self) -> Option<()> {
        self.eat(b'-');
        self.digits()?;
        if self.eat(b'.').is_some() {
            self.more_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.more_digits()?;
        }
        Some(())
    }

    fn more_digits(&mut self) -> Option<()> {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        (self.i > start).then_some(())
    }

    /// Any JSON value, checked and skipped.
    fn skip(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.skip_object(depth + 1),
            b'[' => self.skip_array(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.skip_number(),
            _ => None,
        }
    }

    /// The items of an object or an array, the opening bracket next: `item` reads each one;
    /// the commas, the closing bracket and the depth are checked here.
    fn items(
        &mut self,
        open: u8,
        close: u8,
        depth: usize,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(open)?;
        self.ws();
        if self.eat(close).is_some() {
            return Some(());
        }
        loop {
            self.ws();
            item(self)?;
            self.ws();
            if self.eat(close).is_some() {
                return Some(());
            }
            self.eat(b',')?;
        }
    }

    /// An object member's key and the colon after it.
    fn key(&mut self) -> Option<&'a str> {
        let key = self.string()?;
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(key)
    }

    fn skip_object(&mut self, depth: usize) -> Option<()> {
        self.items(b'{', b'}', depth, |s| {
            s.key()?;
            s.skip(depth)
        })
    }

    fn skip_array(&mut self, depth: usize) -> Option<()> {
        self.items(b'[', b']', depth, |s| s.skip(depth))
    }

    /// A field's value as [`Loose`] takes it.
    fn loose(&mut self, depth: usize) -> Option<Loose<'a>> {
        match self.peek()? {
            b'"' => self.string().map(|s| Loose::Str(Cow::Borrowed(s))),
            b'-' | b'0'..=b'9' => self.integer(),
            _ => self.skip(depth).map(|()| Loose::Other),
        }
    }

    /// A CloudEvent's `data`: an object's fields, or any other value (`null` too) as no object.
    fn data(&mut self, depth: usize) -> Option<Data<'a>> {
        if self.peek()? == b'{' {
            let mut f = Box::default();
            self.object(&mut f, depth + 1)?;
            return Some(Data::Fields(f));
        }
        self.skip(depth).map(|()| Data::NotObject)
    }

    /// An object's fields into `f` (all defaults); the opening brace is next.
    fn object(&mut self, f: &mut Fields<'a>, depth: usize) -> Option<()> {
        // serde refuses a field given twice; so does this reader (and the caller decides).
        let mut seen = 0u16;
        self.items(b'{', b'}', depth, |s| {
            let Some(n) = slot(s.key()?) else { return s.skip(depth) };
            if seen & (1 << n) != 0 {
                return None;
            }
            seen |= 1 << n;
            match field(f, n) {
                Some(place) => *place = s.loose(depth)?,
                None => f.data = s.data(depth)?,
            }
            Some(())
        })
    }
}

/// The number of a key [`Fields`] reads (`data` is 12), or `None` for one it skips.
fn slot(key: &str) -> Option<usize> {
    Some(match key {
        "protocol" => 0,
        "id" => 1,
        "identity" => 2,
        "component" => 3,
        "timestamp" => 4,
        "version" => 5,
        "new_version" => 6,
        "governor" => 7,
        "sequence" => 8,
        "event_type" => 9,
        "specversion" => 10,
        "source" => 11,
        "data" => 12,
        _ => return None,
    })
}

/// The place of key number `n`; `None` for `data`.
fn field<'f, 'a>(f: &'f mut Fields<'a>, n: usize) -> Option<&'f mut Loose<'a>> {
    Some(match n {
        0 => &mut f.protocol,
        1 => &mut f.id,
        2 => &mut f.identity,
        3 => &mut f.component,
        4 => &mut f.timestamp,
        5 => &mut f.version,
        6 => &mut f.new_version,
        7 => &mut f.governor,
        8 => &mut f.sequence,
        9 => &mut f.event_type,
        10 => &mut f.specversion,
        11 => &mut f.source,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Events as servers send them, and the odd shapes the serde reader must still decide.
    fn seeds() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = [
            r#"{"protocol":"io.choria.lifecycle.v1.startup","identity":"n\u0031","component":"c","timestamp":-1,"version":"1"}"#,
            r#"{"specversion":"1.0","source":"io.choria.lifecycle","data":{"protocol":"io.choria.lifecycle.v1.alive","identity":"n","timestamp":1.5}}"#,
            r#"{"specversion":"1.0","source":"io.choria.lifecycle","data":null}"#,
            r#"{"specversion":"1.0","source":"io.choria.lifecycle","data":[1,"x",{"a":null}]}"#,
            r#"{"protocol":"choria:lifecycle:shutdown:1","identity":"n","component":7,"timestamp":18446744073709551615}"#,
            r#"{"protocol":"io.choria.lifecycle.v1.governor","identity":"g","governor":"G","sequence":-3,"extra":{"a":[1,{},-0.5e+3,true,false]}}"#,
            r#"{"protocol":"io.choria.lifecycle.v1.startup","identity":"a","identity":"b"}"#,
            r#" { "protocol" : "io.choria.lifecycle.v1.upgraded" , "identity":"n","new_version":"2","timestamp":-9223372036854775808 } "#,
            r#"{"timestamp":9223372036854775808,"sequence":-0,"id":0,"version":10}"#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/choria/lifecycle");
        for sub in ["samples", "testdata"] {
            for e in std::fs::read_dir(format!("{dir}/{sub}")).expect("the shared lifecycle files") {
                v.push(std::fs::read(e.expect("entry").path()).expect("readable"));
            }
        }
        v.push(
            crate::lifecycle::cloud_event(crate::lifecycle::choria_event(
                "startup",
                "n001.example.net",
                "server",
                Some("0.29.4"),
                chrono::Utc::now(),
            ))
            .to_string()
            .into_bytes(),
        );
        v
    }

    /// Whenever the fast path answers, it answers as serde does; and it answers for the
    /// events servers really send (else it would be no fast path).
    #[test]
    fn agrees_with_serde_on_mutated_events() {
        let seeds = seeds();
        for (n, s) in seeds.iter().enumerate() {
            let f = read(s);
            // The four odd ones with an escape, a float, a duplicate key and -0 go the serde way;
            // every real event (the shared files and ours) the fast way.
            assert_eq!(f.is_none(), [0, 1, 6, 8].contains(&n), "{}", String::from_utf8_lossy(s));
            if let Some(f) = f {
                assert_eq!(Some(f), Fields::read_serde(s), "{}", String::from_utf8_lossy(s));
            }
        }
        // Mutations towards the edges of the grammar: each a byte replaced, inserted or removed.
        let alphabet = b"{}[]\":,\\ \t\n-+.0123456789eEtrufalsn\x01\xc3\xa9";
        let mut rng = SmallRng::seed_from_u64(15);
        let (mut fast, mut total) = (0, 0);
        for _ in 0..200_000 {
            let mut b = seeds[rng.gen_range(0..seeds.len())].clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..=b.len());
                let c = alphabet[rng.gen_range(0..alphabet.len())];
                match rng.gen_range(0..3) {
                    0 if at < b.len() => b[at] = c,
                    1 if at < b.len() => {
                        b.remove(at);
                    }
                    _ => b.insert(at, c),
                }
            }
            total += 1;
            if let Some(f) = read(&b) {
                fast += 1;
                assert_eq!(Some(f), Fields::read_serde(&b), "{}", String::from_utf8_lossy(&b));
            }
        }
        // Most mutations break the JSON; enough of them must not, or this compared little.
        assert!(fast > total / 20, "only {fast} of {total} mutations took the fast path");
    }

    #[test]
    fn gives_up_on_what_it_does_not_take() {
        for s in [
            r#"{"identity":"n\u0031"}"#,
            r#"{"timestamp":1.5}"#,
            r#"{"timestamp":-0}"#,
            r#"{"identity":"a","identity":"b"}"#,
            r#"{"identity":"a"} x"#,
            r#"[1]"#,
        ] {
            assert!(read(s.as_bytes()).is_none(), "{s}");
        }
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(read(deep.as_bytes()).is_none());
        assert!(Fields::read_serde(deep.as_bytes()).is_some(), "serde takes what is too deep for the fast path");
    }
}
