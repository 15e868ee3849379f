//! The fast path of [`Fields::read`]: one pass over the bytes for the plain events nearly
//! every server sends (no escapes in strings, integers only in the fields we read).
//!
//! serde's derived map visitor spent ~500 ns per CloudEvent matching keys and re-checking
//! strings, more than a validating skip of the whole message costs; `watch_events` decodes
//! every event on the subject, so that was most of its cost (issue 15). This reader gives up
//! (`None`) on anything it does not take on itself (an escape, a float or overflowing number
//! where it reads one, a duplicate key it reads, deep nesting, bytes after the object), and the
//! caller then goes the serde way, which is the reference: when this returns `Some`, it is
//! what the serde reader returns (a unit test compares them on mutated events). The cursor
//! is the crate's shared [`crate::json::Scan`].

use std::borrow::Cow;

use super::fields::{Data, Fields, Loose};
use crate::json::{once, Int, Scan};

/// The fields of the JSON object in `bytes`, or `None` to let the serde reader decide.
pub(super) fn read(bytes: &[u8]) -> Option<Fields<'_>> {
    let mut s = Scan::new(bytes)?;
    s.ws();
    // Filled in place: a `Fields` is some 400 bytes, and moving it out of each call showed.
    let mut f = Fields::default();
    object(&mut s, &mut f, 0)?;
    s.at_end().then_some(f)
}

/// A field's value as [`Loose`] takes it.
fn loose<'a>(s: &mut Scan<'a>, depth: usize) -> Option<Loose<'a>> {
    match s.peek()? {
        b'"' => s.string().map(|v| Loose::Str(Cow::Borrowed(v))),
        b'-' | b'0'..=b'9' => s.integer().map(|n| match n {
            Int::U(n) => Loose::Uint(n),
            Int::I(n) => Loose::Int(n),
        }),
        _ => s.skip(depth).map(|()| Loose::Other),
    }
}

/// A CloudEvent's `data`: an object's fields, or any other value (`null` too) as no object.
fn data<'a>(s: &mut Scan<'a>, depth: usize) -> Option<Data<'a>> {
    if s.peek()? == b'{' {
        let mut f = Box::default();
        object(s, &mut f, depth + 1)?;
        return Some(Data::Fields(f));
    }
    s.skip(depth).map(|()| Data::NotObject)
}

/// An object's fields into `f` (all defaults); the opening brace is next.
fn object<'a>(s: &mut Scan<'a>, f: &mut Fields<'a>, depth: usize) -> Option<()> {
    // serde refuses a field given twice; so does this reader (and the caller decides).
    let mut seen = 0;
    s.object(depth, |s, key| {
        let Some(n) = slot(key) else { return s.skip(depth) };
        once(&mut seen, n as u32)?;
        match field(f, n) {
            Some(place) => *place = loose(s, depth)?,
            None => f.data = data(s, depth)?,
        }
        Some(())
    })
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
        let mut rng = SmallRng::seed_from_u64(15);
        let (mut fast, mut total) = (0, 0);
        for _ in 0..200_000 {
            let mut b = seeds[rng.gen_range(0..seeds.len())].clone();
            crate::json::mutate(&mut rng, &mut b);
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
