//! Secrets: values that must never reach output, logs, JSON or errors in clear.

use std::sync::{Arc, RwLock};

/// The text shown wherever a secret would appear.
pub const MASK: &str = "[secret]";

/// Every secret value seen in this process, so any text can be scrubbed before it is shown.
#[derive(Clone, Default)]
pub struct Redactor {
    values: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    /// Remembers a value to scrub (empty values are ignored: they would match everywhere).
    pub fn add(&self, value: &str) {
        if value.is_empty() {
            return;
        }
        if let Ok(mut v) = self.values.write() {
            if !v.iter().any(|x| x == value) {
                v.push(value.to_string());
                // Longest first, so a secret containing another is masked whole.
                v.sort_by_key(|s| std::cmp::Reverse(s.len()));
            }
        }
    }

    /// `text` with every known secret replaced by the mask.
    pub fn scrub(&self, text: &str) -> String {
        let Ok(values) = self.values.read() else { return text.to_string() };
        let mut out = text.to_string();
        for v in values.iter() {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        out
    }
}

/// A secret value in a runbook: prints, debugs and serialises as the mask; only the wire
/// encoder of an RPC sees the clear value.
#[derive(Clone)]
pub struct Secret {
    pub(crate) name: String,
    pub(crate) value: Arc<str>,
}

impl Secret {
    pub fn new(name: &str, value: &str) -> Self {
        Secret { name: name.to_string(), value: Arc::from(value) }
    }

    /// The clear value, for the wire only.
    pub(crate) fn reveal(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "secret({})", self.name)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_longest_first() {
        let r = Redactor::default();
        r.add("abc");
        r.add("abcdef");
        r.add("");
        assert_eq!(r.scrub("x abcdef y abc"), format!("x {MASK} y {MASK}"));
        assert_eq!(format!("{}", Secret::new("T", "hunter2")), MASK);
        assert!(!format!("{:?}", Secret::new("T", "hunter2")).contains("hunter2"));
    }
}
