//! The Choria client configuration file (`client.conf`, `~/.choriarc`): `key = value` lines
//! with `#` comments, as go-choria reads them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("configuration {path}: {reason}")]
pub struct ConfError {
    pub path: String,
    pub reason: String,
}

/// A parsed client configuration.
#[derive(Debug, Clone, Default)]
pub struct ChoriaConfig {
    pub path: PathBuf,
    values: BTreeMap<String, String>,
}

impl ChoriaConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<ChoriaConfig, ConfError> {
        let err = |reason: String| ConfError { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        Self::parse(path, &text)
    }

    /// Parses configuration text.
    pub fn parse(path: &Path, text: &str) -> Result<ChoriaConfig, ConfError> {
        let mut values = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| ConfError {
                path: path.display().to_string(),
                reason: format!("line {}: expected key = value, got {line:?}", i + 1),
            })?;
            values.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(ChoriaConfig { path: path.to_path_buf(), values })
    }

    /// The default file when `--config` is not given: `~/.choriarc`, then
    /// `/etc/choria/client.conf`, whichever exists.
    pub fn default_path() -> Option<PathBuf> {
        let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".choriarc"));
        home.into_iter().chain([PathBuf::from("/etc/choria/client.conf")]).find(|p| p.is_file())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }

    /// `plugin.choria.middleware_hosts` as NATS URLs (`host:port` gets `nats://`).
    pub fn middleware_hosts(&self) -> Vec<String> {
        self.list("plugin.choria.middleware_hosts")
            .into_iter()
            .map(|h| if h.contains("://") { h } else { format!("nats://{h}") })
            .collect()
    }

    pub fn collectives(&self) -> Vec<String> {
        self.list("collectives")
    }

    /// `main_collective`, else the first collective.
    pub fn main_collective(&self) -> Option<String> {
        self.get("main_collective").map(str::to_string).or_else(|| self.collectives().into_iter().next())
    }

    pub fn identity(&self) -> Option<String> {
        self.get("identity").map(str::to_string)
    }

    /// `plugin.security.provider` (file, choria, puppet, pkcs11, certmanager).
    pub fn security_provider(&self) -> Option<String> {
        self.get("plugin.security.provider").map(str::to_string)
    }

    /// Certificate, key and CA paths of the `file` provider.
    pub fn x509_paths(&self) -> (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>) {
        let p = |k: &str| self.get(k).map(|v| self.resolve(v));
        (p("plugin.security.file.certificate"), p("plugin.security.file.key"), p("plugin.security.file.ca"))
    }

    /// A path setting (such as `plugin.choria.ssldir`), resolved like the file provider's.
    pub fn path_setting(&self, key: &str) -> Option<PathBuf> {
        self.get(key).map(|v| self.resolve(v))
    }

    /// The JWT and seed files of the `choria` (ed25519) provider.
    pub fn ed25519_paths(&self) -> (Option<PathBuf>, Option<PathBuf>) {
        let p = |k: &str| self.get(k).map(|v| self.resolve(v));
        (p("plugin.security.choria.token_file"), p("plugin.security.choria.seed_file"))
    }

    /// `default_discovery_method`, `default_discovery_options` and
    /// `plugin.choria.discovery.inventory.source` (a path, resolved like the others).
    pub fn discovery_defaults(&self) -> crate::fleet::discovery::method::DiscoveryDefaults {
        crate::fleet::discovery::method::DiscoveryDefaults {
            method: self.get("default_discovery_method").map(str::to_string),
            options: self.list("default_discovery_options"),
            inventory: self.path_setting("plugin.choria.discovery.inventory.source").map(|p| p.display().to_string()),
        }
    }

    /// `rpclimitmethod`: `first` or `random` (go-choria validates the same enum).
    pub fn limit_method(&self) -> Result<Option<crate::fleet::discovery::limit::LimitMethod>, ConfError> {
        let bad = |reason: String| ConfError { path: self.path.display().to_string(), reason };
        self.get("rpclimitmethod")
            .map(|v| {
                crate::fleet::discovery::limit::LimitMethod::parse(v).map_err(|e| bad(format!("rpclimitmethod: {e}")))
            })
            .transpose()
    }

    /// `discovery_timeout` in seconds.
    pub fn discovery_timeout(&self) -> Result<Option<Duration>, ConfError> {
        match self.get("discovery_timeout") {
            None => Ok(None),
            Some(v) => {
                let bad = |why: String| ConfError {
                    path: self.path.display().to_string(),
                    reason: format!("discovery_timeout {v:?} {why}"),
                };
                match v.parse::<f64>() {
                    Ok(s) if s > 0.0 => {
                        crate::config::parse_seconds(s).map(Some).map_err(|e| bad(format!("is out of range: {e}")))
                    }
                    _ => Err(bad("is not a positive number of seconds".into())),
                }
            }
        }
    }

    /// Paths are taken relative to the configuration file's directory; `~/` is the home.
    fn resolve(&self, v: &str) -> PathBuf {
        if let (Some(rest), Some(home)) = (v.strip_prefix("~/"), std::env::var_os("HOME")) {
            return PathBuf::from(home).join(rest);
        }
        let p = PathBuf::from(v);
        if p.is_absolute() {
            p
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_client_conf() {
        let text = "# comment\nplugin.choria.middleware_hosts = broker1:4222, nats://broker2:4222\ncollectives = mcollective,ops\nidentity = me.example.net\nplugin.security.provider = file\nplugin.security.file.certificate = certs/me.pem\ndiscovery_timeout = 3\n";
        let c = ChoriaConfig::parse(Path::new("/etc/choria/client.conf"), text).unwrap();
        assert_eq!(c.middleware_hosts(), vec!["nats://broker1:4222", "nats://broker2:4222"]);
        assert_eq!(c.main_collective().as_deref(), Some("mcollective"));
        assert_eq!(c.identity().as_deref(), Some("me.example.net"));
        assert_eq!(c.x509_paths().0, Some(PathBuf::from("/etc/choria/certs/me.pem")));
        assert_eq!(c.discovery_timeout().unwrap(), Some(Duration::from_secs(3)));
        let bad = ChoriaConfig::parse(Path::new("x.conf"), "no equals sign here\n").unwrap_err();
        assert!(bad.to_string().contains("line 1"), "{bad}");
        assert!(ChoriaConfig::parse(Path::new("x"), "discovery_timeout = soon\n")
            .unwrap()
            .discovery_timeout()
            .is_err());
        for big in ["inf", "1e300", "1e19"] {
            let e = ChoriaConfig::parse(Path::new("x"), &format!("discovery_timeout = {big}\n"))
                .unwrap()
                .discovery_timeout()
                .unwrap_err();
            assert!(e.to_string().contains("out of range"), "{big}: {e}");
        }
    }
}
