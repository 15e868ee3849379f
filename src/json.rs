//! Hand-written JSON for the hot paths: a one-pass reader ([`Scan`]) and string escaping
//! ([`escape_into`]).
//!
//! serde_json stays the reference everywhere. Readers built on [`Scan`] give up (`None`) on
//! anything they do not take on themselves and the caller then goes the serde way, which
//! decides; each reader has a unit test comparing both on mutated input. Used by lifecycle
//! events (`watch_events` decodes every event on the subject) and by the reply layers the
//! client opens per node (issue 15: serde's map visitors and its byte-at-a-time unescaping of
//! v1's JSON inside JSON were most of the client's CPU per reply).

use std::borrow::Cow;

mod unescape;

/// Deeper than this goes the serde way (its own limit is 128).
pub(crate) const MAX_DEPTH: usize = 64;

/// An object with more keys than this is not taken as [`Scan::canonical`] (its check for a
/// key given twice compares each key with those before it).
pub(crate) const CANONICAL_KEYS: usize = 64;

/// Where the first quote, backslash or control character of `rest` is. These are exactly
/// the bytes a JSON string cannot hold unescaped. A string's end is found without looking at
/// each byte on its own: 16 bytes per step with SSE2 (most strings, keys above all, end in the
/// first step: issue 15), the last few bytes eight at a time.
pub(crate) fn special(rest: &[u8]) -> Option<usize> {
    let (at, found) = special_wide(rest);
    match found {
        Some(p) => Some(at + p),
        None => special_words(&rest[at..]).map(|p| at + p),
    }
}

/// Sixteen bytes of JSON text in an SSE2 register, and which of them a string cannot hold
/// unescaped: all ones in each byte that is one. [`special`] and the unescaper's block masks
/// both read text this way.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
struct Lane {
    v: std::arch::x86_64::__m128i,
    quote: std::arch::x86_64::__m128i,
    backslash: std::arch::x86_64::__m128i,
    /// Below 0x20.
    control: std::arch::x86_64::__m128i,
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
impl Lane {
    /// The first 16 bytes of `bytes` (panics on fewer).
    fn of(bytes: &[u8]) -> Lane {
        use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_set1_epi8};
        let bytes: &[u8; 16] = bytes[..16].try_into().expect("sixteen bytes");
        // SAFETY: `bytes` is 16 readable bytes (an unaligned load is allowed) and SSE2 is
        // enabled for this target (the cfg above); the rest only computes on registers.
        unsafe {
            let v = _mm_loadu_si128(bytes.as_ptr().cast::<__m128i>());
            Lane {
                v,
                quote: _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
                backslash: _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
                // v <= 0x1f exactly where min(v, 0x1f) is v.
                control: _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v),
            }
        }
    }

    /// One bit per byte of a comparison's result.
    fn bits(m: std::arch::x86_64::__m128i) -> u16 {
        // SAFETY: SSE2 is enabled for this target (the cfg above); registers only.
        unsafe { std::arch::x86_64::_mm_movemask_epi8(m) as u16 }
    }
}

/// The first special byte in `rest`'s whole 16-byte lanes: how far the lanes went, and the
/// byte's place from there if one holds it. [`special_words`] reads the rest.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn special_wide(rest: &[u8]) -> (usize, Option<usize>) {
    use std::arch::x86_64::_mm_or_si128;
    let mut at = 0;
    while at + 16 <= rest.len() {
        let l = Lane::of(&rest[at..]);
        // SAFETY: SSE2 is enabled for this target (the cfg above); registers only.
        let bits = Lane::bits(unsafe { _mm_or_si128(_mm_or_si128(l.quote, l.backslash), l.control) });
        if bits != 0 {
            return (at, Some(bits.trailing_zeros() as usize));
        }
        at += 16;
    }
    (at, None)
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn special_wide(_: &[u8]) -> (usize, Option<usize>) {
    (0, None)
}

/// [`special`] eight bytes at a time: other processors, the last bytes, and the reference the
/// SSE2 steps are tested against.
fn special_words(rest: &[u8]) -> Option<usize> {
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

/// Appends `s` to `out` as the inside of a JSON string, escaped exactly as serde_json
/// escapes it (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other control characters as
/// `\u00XX`): runs without such characters are copied whole.
pub(crate) fn escape_into(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(at) = special(rest.as_bytes()) {
        out.push_str(&rest[..at]);
        escape_byte(out, rest.as_bytes()[at]);
        // Every byte `special` finds is ASCII, so the next one starts a character.
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// Appends the escape of one byte [`special`] found, as serde_json writes it.
pub(crate) fn escape_byte(out: &mut String, c: u8) {
    match c {
        b'"' => out.push_str("\\\""),
        b'\\' => out.push_str("\\\\"),
        b'\n' => out.push_str("\\n"),
        b'\r' => out.push_str("\\r"),
        b'\t' => out.push_str("\\t"),
        0x08 => out.push_str("\\b"),
        0x0c => out.push_str("\\f"),
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 0xf)]));
        }
    }
}

/// Appends `s` to `out` as a JSON string, quotes included.
pub(crate) fn string_into(out: &mut String, s: &str) {
    out.push('"');
    escape_into(out, s);
    out.push('"');
}

/// An integer as serde_json reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Int {
    /// Not negative.
    U(u64),
    /// Negative.
    I(i64),
}

/// `bytes` as text, or `None` when they are not UTF-8. ASCII, which is what servers send, is
/// recognised by the quicker ASCII test (each reply's layers are checked: issue 15).
pub(crate) fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII text is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

/// A cursor over JSON text, checked once as UTF-8: every string is cut at ASCII quotes, so
/// each slice taken from it is valid UTF-8 too.
pub(crate) struct Scan<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    /// A cursor at the start of `bytes`, or `None` when they are not UTF-8.
    pub(crate) fn new(bytes: &'a [u8]) -> Option<Self> {
        utf8(bytes).map(Self::of)
    }

    /// A cursor at the start of `text`.
    pub(crate) fn of(text: &'a str) -> Self {
        Scan { text, b: text.as_bytes(), i: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// True when only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    pub(crate) fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    pub(crate) fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end) == Some(word)).then(|| self.i = end)
    }

    /// A string without escapes or control characters; the opening quote is next.
    pub(crate) fn string(&mut self) -> Option<&'a str> {
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

    /// A string's text up to the next quote, escapes and control characters left as they
    /// are; the opening quote is next. Only for a value that something refusing quotes,
    /// backslashes and control characters decodes next (base64): a string holding any of
    /// them, an escaped quote included, then fails there, and one without them is its own
    /// text. Found with `memchr` (a v1 transport's `data`, some 600 bytes in every reply).
    pub(crate) fn raw_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let len = memchr::memchr(b'"', self.b.get(start..)?)?;
        self.i = start + len + 1;
        // Cut at an ASCII quote: whole characters.
        Some(&self.text[start..start + len])
    }

    /// A string with its escapes undone, borrowed when it has none; the opening quote is
    /// next. `\u` escapes of UTF-16 surrogates (pairs and lone ones alike) give up: serde
    /// decides those.
    pub(crate) fn unescaped(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        let at = start + special(self.b.get(start..)?)?;
        if self.b[at] == b'"' {
            self.i = at + 1;
            return Some(Cow::Borrowed(&self.text[start..at]));
        }
        let mut out = Vec::new();
        self.unescape_rest(start, at, &mut out)?;
        // A short string in a long text gives the excess room back.
        if out.capacity() > 2 * out.len() + 64 {
            out.shrink_to_fit();
        }
        // Whole characters of the text and the encodings of escapes: valid UTF-8, checked
        // anyway (a failure goes the serde way).
        utf8(&out)?;
        // SAFETY: checked just above.
        Some(Cow::Owned(unsafe { String::from_utf8_unchecked(out) }))
    }

    /// [`Scan::unescaped`] into `out`, cleared first, escapes or not: for buffers reused from
    /// one text to the next (each layer of each reply, issue 15).
    pub(crate) fn unescaped_into<'o>(&mut self, out: &'o mut Vec<u8>) -> Option<&'o str> {
        self.eat(b'"')?;
        let start = self.i;
        let at = start + special(self.b.get(start..)?)?;
        out.clear();
        if self.b[at] == b'"' {
            out.extend_from_slice(&self.b[start..at]);
            self.i = at + 1;
        } else {
            self.unescape_rest(start, at, out)?;
        }
        // Whole characters of the text and the encodings of escapes: valid UTF-8, checked
        // anyway (a failure goes the serde way).
        utf8(out)
    }

    /// The string from `start` whose first escape is at `at`, unescaped onto `out`; the
    /// cursor goes past its closing quote. `out` is given room for the rest of the text
    /// (v1's secure message, the common case, is nearly all of it; a no-op for a buffer that
    /// has grown to the size of the texts it is used for).
    fn unescape_rest(&mut self, start: usize, at: usize, out: &mut Vec<u8>) -> Option<()> {
        out.reserve(self.b.len() - start + unescape::SLACK);
        out.extend_from_slice(&self.b[start..at]);
        self.i = unescape::unescape_from(self.b, at, out)? + 1;
        Some(())
    }

    /// An integer as serde_json reports it; `None` for a fraction, an exponent, `-0` or an
    /// overflow (serde_json makes those floats).
    pub(crate) fn integer(&mut self) -> Option<Int> {
        let negative = self.eat(b'-').is_some();
        let digits = self.digits()?;
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let n: u64 = digits.parse().ok()?;
        if !negative {
            return Some(Int::U(n));
        }
        if n == 0 {
            return None;
        }
        // i64::MIN's magnitude fits no i64; the rest negate.
        i64::try_from(n).ok().map(|n| Int::I(-n)).or((n == 1 << 63).then_some(Int::I(i64::MIN)))
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

    /// A JSON value as serde_json's `Value` reader builds it; gives up on floats and on
    /// integers it would make floats, on a key given twice (serde keeps the last) and on keys
    /// with escapes.
    pub(crate) fn value(&mut self, depth: usize) -> Option<serde_json::Value> {
        use serde_json::Value;
        Some(match self.peek()? {
            b'"' => Value::String(self.unescaped()?.into_owned()),
            b'{' => {
                let mut map = serde_json::Map::new();
                self.object(depth + 1, |s, key| {
                    let v = s.value(depth + 1)?;
                    map.insert(key.to_string(), v).is_none().then_some(())
                })?;
                Value::Object(map)
            }
            b'[' => {
                let mut items = Vec::new();
                self.items(b'[', b']', depth + 1, |s| {
                    items.push(s.value(depth + 1)?);
                    Some(())
                })?;
                Value::Array(items)
            }
            b't' => self.literal(b"true").map(|()| Value::Bool(true))?,
            b'f' => self.literal(b"false").map(|()| Value::Bool(false))?,
            b'n' => self.literal(b"null").map(|()| Value::Null)?,
            _ => match self.integer()? {
                Int::U(n) => Value::from(n),
                Int::I(n) => Value::from(n),
            },
        })
    }

    /// The text of the value at the cursor, when it is exactly what serde_json writes for the
    /// `Value` it reads as (compact; strings without escapes or control characters; integers
    /// only, `-0` aside; no key twice in an object, at most [`CANONICAL_KEYS`] keys), and the
    /// cursor past it. `None` for anything else, the cursor where it was: the caller builds the
    /// `Value`. Such a text can be kept as it is and written out later unchanged (issue 15:
    /// building each reply's `data` as a `Value` the caller may never read was the largest
    /// single cost left per reply).
    pub(crate) fn canonical(&mut self, depth: usize) -> Option<&'a str> {
        let start = self.i;
        match self.canonical_value(depth) {
            Some(()) => Some(&self.text[start..self.i]),
            None => {
                self.i = start;
                None
            }
        }
    }

    fn canonical_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => {
                let mut keys: Vec<&str> = Vec::new();
                self.canonical_items(b'}', depth, |s| {
                    let key = s.string()?;
                    if keys.len() == CANONICAL_KEYS || keys.contains(&key) {
                        return None;
                    }
                    keys.push(key);
                    s.eat(b':')?;
                    s.canonical_value(depth + 1)
                })
            }
            b'[' => self.canonical_items(b']', depth, |s| s.canonical_value(depth + 1)),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            // What `integer` takes serde_json writes back digit for digit.
            _ => self.integer().map(drop),
        }
    }

    /// The items of an array or object, compact, the opening bracket next: `item` reads each.
    fn canonical_items(
        &mut self,
        close: u8,
        depth: usize,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.i += 1;
        if self.eat(close).is_some() {
            return Some(());
        }
        loop {
            item(self)?;
            if self.eat(close).is_some() {
                return Some(());
            }
            self.eat(b',')?;
        }
    }

    /// Any JSON value, checked and skipped. Strings with escapes give up.
    pub(crate) fn skip(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.items(b'{', b'}', depth + 1, |s| {
                s.key()?;
                s.skip(depth + 1)
            }),
            b'[' => self.items(b'[', b']', depth + 1, |s| s.skip(depth + 1)),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.skip_number(),
            _ => None,
        }
    }

    /// The items of an object or an array, the opening bracket next: `item` reads each one;
    /// the commas, the closing bracket and the depth are checked here.
    pub(crate) fn items(
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

    /// An object member's key (without escapes) and the colon after it.
    pub(crate) fn key(&mut self) -> Option<&'a str> {
        let key = self.string()?;
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(key)
    }

    /// The members of an object, the opening brace next: `member` gets each key with the
    /// cursor on its value, and must read or skip that value.
    pub(crate) fn object(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.items(b'{', b'}', depth, |s| {
            let k = s.key()?;
            member(s, k)
        })
    }
}

impl<'a> Scan<'a> {
    /// The object at the cursor, its members named in `keys` read as strings (escapes undone),
    /// each in its place in the result (`None` when absent): what a serde struct of string
    /// fields takes. A key given twice gives up, as serde refuses it; a member not named goes
    /// to `other`, which reads or skips its value.
    pub(crate) fn strings<const N: usize>(
        &mut self,
        depth: usize,
        keys: [&str; N],
        mut other: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<[Option<Cow<'a, str>>; N]> {
        if self.peek()? != b'{' {
            return None;
        }
        let mut got: [Option<Cow<'a, str>>; N] = std::array::from_fn(|_| None);
        self.object(depth, |s, key| match keys.iter().position(|k| *k == key) {
            Some(n) if got[n].is_none() => {
                got[n] = Some(s.unescaped()?);
                Some(())
            }
            Some(_) => None,
            None => other(s, key),
        })?;
        Some(got)
    }

    /// [`Scan::strings`] over the whole text: nothing but whitespace around the object.
    pub(crate) fn whole_strings<const N: usize>(
        mut self,
        keys: [&str; N],
        other: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<[Option<Cow<'a, str>>; N]> {
        self.ws();
        let got = self.strings(0, keys, other)?;
        self.at_end().then_some(got)
    }
}

/// Marks a field read once; `None` (give up) the second time, as serde refuses a struct's
/// field given twice.
pub(crate) fn once(seen: &mut u32, n: u32) -> Option<()> {
    if *seen & (1 << n) != 0 {
        return None;
    }
    *seen |= 1 << n;
    Some(())
}

/// For the fast readers' tests, which compare them with serde on mutated input: one to three
/// bytes of `b` replaced, inserted or removed, taken from the edges of JSON's grammar.
#[cfg(test)]
pub(crate) fn mutate(rng: &mut rand::rngs::SmallRng, b: &mut Vec<u8>) {
    use rand::Rng;
    const ALPHABET: &[u8] = b"{}[]\":,\\/ \t\n-+.0123456789eEtrufalsnu\x01\xc3\xa9";
    for _ in 0..rng.gen_range(1..4) {
        let at = rng.gen_range(0..=b.len());
        let c = ALPHABET[rng.gen_range(0..ALPHABET.len())];
        match rng.gen_range(0..3) {
            0 if at < b.len() => b[at] = c,
            1 if at < b.len() => {
                b.remove(at);
            }
            _ => b.insert(at, c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_finds_the_first_byte_a_string_cannot_hold() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(20);
        for _ in 0..200_000 {
            // Past several 16-byte steps, so every SSE2 step and the tail after it are reached.
            let len = rng.gen_range(0..120);
            // Mostly bytes a string holds (UTF-8 bytes above 0x7f too), a few that it cannot:
            // dense or sparse, so the first one lands in every step, or there is none.
            let rare = [8, 40, 400][rng.gen_range(0..3)];
            let b: Vec<u8> = (0..len)
                .map(|_| match rng.gen_range(0..rare) {
                    0 => b'"',
                    1 => b'\\',
                    2 => rng.gen_range(0..0x20),
                    _ => rng.gen_range(0x20..=0xff),
                })
                .collect();
            let first = b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            assert_eq!(special(&b), first, "{b:?}");
            assert_eq!(special_words(&b), first, "{b:?}");
        }
    }

    #[test]
    fn escaping_is_serde_jsons() {
        let mut all = String::new();
        for c in (0u8..0x80).map(char::from).chain(['é', '€', '😀', '\u{2028}']) {
            all.push(c);
        }
        for s in [all.as_str(), "", "plain", "\"", "a\\b", "{\"a\":\"b\\\"c\"}", "\u{7f}\u{1f}"] {
            let mut ours = String::new();
            string_into(&mut ours, s);
            assert_eq!(ours, serde_json::to_string(s).expect("a string"), "{s:?}");
        }
    }

    #[test]
    fn unescaping_is_serde_jsons_or_gives_up() {
        let cases = [
            r#""""#,
            r#""plain""#,
            r#""a\"b\\c\/d\b\f\n\r\t""#,
            r#""\u0041\u00e9\u20ac\uFFFF\u0000x""#,
            r#""é€ and more after an escape \" é""#,
            r#""\ud83d\ude00""#,
            r#""\ud83d""#,
            r#""\x""#,
            r#""\u12""#,
            r#""\u12g4""#,
            "\"raw\ncontrol\"",
            r#""unterminated"#,
            r#""ends in an escape\"#,
        ];
        // Reused from case to case, as the reply decoder reuses it: what one left behind never
        // shows in the next.
        let mut reused = b"left over from before".to_vec();
        for c in cases {
            let ours = Scan::of(c).unescaped();
            let mut s = Scan::of(c);
            let into = s.unescaped_into(&mut reused).map(str::to_string);
            assert_eq!(into.as_deref(), ours.as_deref(), "{c}");
            if into.is_some() {
                assert!(s.at_end(), "after the closing quote: {c}");
            }
            let serde: Option<String> = serde_json::from_str(c).ok();
            match ours {
                Some(s) => assert_eq!(Some(s.into_owned()), serde, "{c}"),
                // Only surrogates are left to serde when it takes them.
                None => assert!(serde.is_none() || c.contains("\\ud8"), "{c}"),
            }
        }
        let mut s = Scan::of(r#""a\"b" , 1"#);
        assert_eq!(s.unescaped().as_deref(), Some("a\"b"));
        // A short string in a long text keeps no more room than it needs.
        let long = format!(r#""a\nb" {}"#, " ".repeat(100_000));
        assert!(Scan::of(&long).unescaped().expect("a string").into_owned().capacity() < 1000);
        assert!(Scan::of(r#""\ud83d\ude00""#).unescaped().is_none(), "surrogates are serde's");
        s.ws();
        assert_eq!(s.eat(b','), Some(()));
    }

    /// Strings of every length around the 64-byte blocks, dense with escapes (runs of
    /// backslashes across a block's edge included), valid and not: ours is serde's whenever
    /// ours answers, and ours answers for every valid string but surrogates.
    #[test]
    fn unescaping_long_and_dense_strings_is_serde_jsons() {
        use rand::{Rng, SeedableRng};
        #[rustfmt::skip]
        const PIECES: &[&str] = &[
            r#"\""#, r#"\\"#, r#"\/"#, r#"\n"#, r#"\t"#, r#"\r"#, r#"\b"#, r#"\f"#, r#"\u0041"#, r#"\u00e9"#,
            r#"\u20AC"#, r#"\ud83d\ude00"#, r#"\x"#, r#"\u12"#, "\\", "\"", "a", "bcdefghijklmnopqrstuvwxyz0123",
            "é", "€", "😀", "\u{1}", "\u{7f}", "/", " ",
        ];
        let mut rng = rand::rngs::SmallRng::seed_from_u64(64);
        let mut reused = Vec::new();
        for _ in 0..100_000 {
            let mut s = String::from("\"");
            for _ in 0..rng.gen_range(0..120) {
                s.push_str(PIECES[rng.gen_range(0..PIECES.len())]);
            }
            if rng.gen_bool(0.9) {
                s.push('"');
            }
            let whole = format!("{s} ,1");
            let mut scan = Scan::of(&whole);
            let ours = scan.unescaped();
            let mut again = Scan::of(&whole);
            assert_eq!(again.unescaped_into(&mut reused), ours.as_deref(), "{s}: into a reused buffer");
            if ours.is_some() {
                assert_eq!(again.i, scan.i, "{s}: the cursor");
            }
            let serde: Option<String> = serde_json::from_str(&s).ok();
            match (ours, &serde) {
                (Some(ours), Some(serde)) => {
                    assert_eq!(&*ours, serde, "{s}");
                    // (Serde takes whitespace after the string.)
                    assert!(s[scan.i..].trim().is_empty() && s[..scan.i].ends_with('"'), "{s:?}: the cursor");
                }
                // A quote inside the text closed the string early (serde refuses what follows):
                // ours is serde's reading of the text up to that quote.
                (Some(ours), None) => {
                    let head: Option<String> = serde_json::from_str(&whole[..scan.i]).ok();
                    assert_eq!(head.as_deref(), Some(&*ours), "{s}");
                }
                (None, Some(_)) => assert!(s.contains(r#"\ud8"#), "{s}: only surrogates are serde's"),
                (None, None) => {}
            }
        }
    }

    /// A random JSON value of the kinds replies carry, some of them not canonical (floats,
    /// escapes, a key twice), written compact or with spaces.
    fn random_json(rng: &mut rand::rngs::SmallRng, depth: usize, out: &mut String) {
        use rand::Rng;
        let leaf = depth > 3 || rng.gen_bool(0.4);
        match rng.gen_range(0..if leaf { 7 } else { 9 }) {
            0 => out.push_str(["true", "false", "null"][rng.gen_range(0..3)]),
            1 => out.push_str(&rng.gen::<u64>().to_string()),
            2 => out.push_str(&rng.gen_range(-1000i64..1000).to_string()),
            3 => out.push_str(
                ["-0", "1.5", "2e3", "1E400", "18446744073709551616", "-9223372036854775809", "0.0"]
                    [rng.gen_range(0..7)],
            ),
            4 => out.push_str(["\"plain\"", "\"é € 😀\"", "\"\"", "\"a b\""][rng.gen_range(0..4)]),
            5 => out.push_str(["\"a\\\"b\"", "\"\\u0041\"", "\"\\/\"", "\"tab\\t\""][rng.gen_range(0..4)]),
            6 => out.push_str(&rng.gen_range(0u32..100).to_string()),
            7 => {
                out.push('[');
                for k in 0..rng.gen_range(0..4) {
                    if k > 0 {
                        out.push_str(if rng.gen_bool(0.9) { "," } else { " , " });
                    }
                    random_json(rng, depth + 1, out);
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                let n = rng.gen_range(0..5);
                for k in 0..n {
                    if k > 0 {
                        out.push(',');
                    }
                    // Few names, so some objects name a key twice.
                    out.push_str(&format!("\"k{}\"", rng.gen_range(0..6)));
                    out.push_str(if rng.gen_bool(0.9) { ":" } else { ": " });
                    random_json(rng, depth + 1, out);
                }
                out.push('}');
            }
        }
    }

    /// What `canonical` takes is exactly what serde_json writes back for the `Value` it reads
    /// as, byte for byte, and the cursor ends right after it; everything else leaves the
    /// cursor where it was. Plain compact values (what Go writes for a ping) are taken.
    #[test]
    fn canonical_text_is_what_serde_json_writes_back() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(2026);
        let mut taken = 0;
        for round in 0..200_000 {
            let mut text = String::new();
            random_json(&mut rng, 0, &mut text);
            let mut bytes = text.clone().into_bytes();
            if round % 3 == 0 {
                mutate(&mut rng, &mut bytes);
            }
            let Ok(text) = String::from_utf8(bytes) else { continue };
            let whole = format!("{text},\"next\":1");
            let mut s = Scan::of(&whole);
            match s.canonical(0) {
                Some(t) => {
                    taken += 1;
                    assert_eq!(s.i, t.len(), "{whole}");
                    let v: serde_json::Value = serde_json::from_str(t).unwrap_or_else(|e| panic!("{t}: {e}"));
                    assert_eq!(serde_json::to_string(&v).unwrap(), t, "written back the same");
                }
                None => assert_eq!(s.i, 0, "{whole}: the cursor stays"),
            }
        }
        assert!(taken > 50_000, "only {taken} taken");
        for plain in [r#"{"pong":1732200001}"#, r#"{"a":[1,-2,true,null,"x y"],"b":{}}"#, "[]", r#""é""#] {
            assert_eq!(Scan::of(plain).canonical(0), Some(plain));
        }
        for not in [r#"{"a": 1}"#, r#"{"a":1,"a":2}"#, "1.0", "-0", r#""a\/b""#, "[1 ]", "01"] {
            let mut s = Scan::of(not);
            assert!(s.canonical(0).is_none_or(|_| !s.at_end()), "{not}");
        }
        let many: String = (0..=CANONICAL_KEYS).map(|k| format!("\"k{k}\":{k}")).collect::<Vec<_>>().join(",");
        assert_eq!(Scan::of(&format!("{{{many}}}")).canonical(0), None, "too many keys to check");
    }
}
