//! The fields of a lifecycle event read straight from the message bytes, borrowing where
//! nothing is escaped: `watch_events` decodes every event on the subject, and building a
//! `serde_json::Value` tree per event cost three times the subscription itself.
//!
//! Each field takes any JSON value, as the `Value` path's `as_str`/`as_i64` do; anything
//! this reader refuses (duplicate keys, a non-object) goes the `Value` way, so both paths
//! give the same answer.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// One field's value: a string, an integer, or anything else (ignored, as `as_str` does).
#[derive(Debug, Default, PartialEq)]
pub(super) enum Loose<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Uint(u64),
    #[default]
    Other,
}

impl Loose<'_> {
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Loose::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn as_i64(&self) -> Option<i64> {
        match *self {
            Loose::Int(i) => Some(i),
            Loose::Uint(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    pub(super) fn as_u64(&self) -> Option<u64> {
        match *self {
            Loose::Uint(u) => Some(u),
            Loose::Int(i) => u64::try_from(i).ok(),
            _ => None,
        }
    }
}

struct LooseVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for LooseVisitor<'a> {
    type Value = Loose<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Loose::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Loose::Uint(v))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor(PhantomData))
    }
}

/// A CloudEvent's `data`: absent, an object of event fields, or some other value.
#[derive(Debug, Default, PartialEq)]
pub(super) enum Data<'a> {
    #[default]
    Missing,
    Fields(Box<Fields<'a>>),
    NotObject,
}

struct DataVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for DataVisitor<'a> {
    type Value = Data<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Fields::deserialize(de::value::MapAccessDeserializer::new(map)).map(|f| Data::Fields(Box::new(f)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Data::NotObject)
    }
    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Self::Value, E> {
        Ok(Data::NotObject)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Data::NotObject)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Data::NotObject)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Data::NotObject)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Data::NotObject)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Data::NotObject)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Data::NotObject)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Data<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DataVisitor(PhantomData))
    }
}

/// The keys an event (or its CloudEvent envelope) is read by; other keys are skipped.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub(super) struct Fields<'a> {
    #[serde(borrow, default)]
    pub(super) protocol: Loose<'a>,
    #[serde(borrow, default)]
    pub(super) id: Loose<'a>,
    #[serde(borrow, default)]
    pub(super) identity: Loose<'a>,
    #[serde(borrow, default)]
    pub(super) component: Loose<'a>,
    #[serde(borrow, default)]
    pub(super) timestamp: Loose<'a>,
    #[serde(borrow, default)]
    pub(super) version: Loose<'a>,
    #[serde(borrow, default)]
    pub(super) new_version: Loose<'a>,
    #[serde(borrow, default)]
    pub(super) governor: Loose<'a>,
    #[serde(borrow, default)]
    pub(super) sequence: Loose<'a>,
    #[serde(borrow, default)]
    pub(super) event_type: Loose<'a>,
    #[serde(borrow, default)]
    pub(super) specversion: Loose<'a>,
    #[serde(borrow, default)]
    pub(super) source: Loose<'a>,
    #[serde(borrow, default)]
    pub(super) data: Data<'a>,
}

impl<'a> Fields<'a> {
    /// The fields of a JSON object; `None` when the bytes are not one this reader takes.
    pub(super) fn read(bytes: &'a [u8]) -> Option<Fields<'a>> {
        super::scan::read(bytes).or_else(|| Fields::read_serde(bytes))
    }

    /// [`Fields::read`] by serde alone: the reference the fast path is held to.
    pub(super) fn read_serde(bytes: &'a [u8]) -> Option<Fields<'a>> {
        // A struct also deserializes from an array; only objects are events.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }
}
