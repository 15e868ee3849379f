//! The `puppet` security provider: no file paths in the configuration; the CA, certificate
//! and key come from the Puppet SSL directory and the client's certname, exactly as
//! go-choria derives them (`providers/security/puppetsec/option.go`, `WithChoriaConfig`;
//! `util.go`, `userSSlDir`; `puppet_security.go`, `caPath`, `publicCertPath`,
//! `privateKeyPath`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::choria_conf::ChoriaConfig;

/// What the lookup reads from the process, so tests can give it any user.
#[derive(Debug, Clone, Default)]
pub(crate) struct PuppetEnv {
    /// The effective user id: root asks Puppet for its `ssldir`.
    pub(crate) euid: u32,
    /// `$HOME`.
    pub(crate) home: Option<OsString>,
    /// `$USER`.
    pub(crate) user: Option<OsString>,
    /// `$MCOLLECTIVE_CERTNAME`.
    pub(crate) certname: Option<OsString>,
}

impl PuppetEnv {
    /// This process's user and environment.
    pub(crate) fn current() -> PuppetEnv {
        PuppetEnv {
            // SAFETY: geteuid has no preconditions and cannot fail.
            euid: unsafe { libc::geteuid() },
            home: std::env::var_os("HOME"),
            user: std::env::var_os("USER"),
            certname: std::env::var_os("MCOLLECTIVE_CERTNAME"),
        }
    }
}

/// The files the provider uses, and the certname they are named after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PuppetPaths {
    pub(crate) certname: String,
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// The client's certname: `$MCOLLECTIVE_CERTNAME` when set, else `$USER.mcollective`. As in
/// go-choria a client never uses the `identity` setting for it (that is for servers), and a
/// variable that is set counts even when empty (Go's `os.LookupEnv`).
fn certname(env: &PuppetEnv) -> Result<String, String> {
    if let Some(cn) = env.certname.as_ref().filter(|c| !c.is_empty()) {
        return Ok(cn.to_string_lossy().into_owned());
    }
    // An empty MCOLLECTIVE_CERTNAME leaves the override empty, and go-choria then uses USER.
    match &env.user {
        Some(u) => Ok(format!("{}.mcollective", u.to_string_lossy())),
        None => Err("could not determine client identity, ensure USER environment variable is set (or \
                     MCOLLECTIVE_CERTNAME)"
            .into()),
    }
}

/// The SSL directory: `plugin.choria.ssldir` when set; else root asks Puppet
/// (`puppet apply --environment production --configprint ssldir`, with
/// `/opt/puppetlabs/bin/puppet` preferred over the `PATH`), anyone else uses
/// `$HOME/.puppetlabs/etc/puppet/ssl`.
fn ssl_dir(
    conf: &ChoriaConfig,
    env: &PuppetEnv,
    ask_puppet: impl FnOnce() -> Result<PathBuf, String>,
) -> Result<PathBuf, String> {
    if let Some(dir) = conf.path_setting("plugin.choria.ssldir") {
        return Ok(dir);
    }
    if env.euid == 0 {
        return ask_puppet();
    }
    match env.home.as_ref().filter(|h| !h.is_empty()) {
        Some(home) => Ok(Path::new(home).join(".puppetlabs").join("etc").join("puppet").join("ssl")),
        None => Err("cannot determine home directory, HOME is not set (or set plugin.choria.ssldir)".into()),
    }
}

/// Runs Puppet for its `ssldir` setting, as go-choria's `puppet.Setting("ssldir")` does.
pub(crate) fn puppet_ssldir() -> Result<PathBuf, String> {
    let aio = Path::new("/opt/puppetlabs/bin/puppet");
    let cmd = if aio.is_file() { aio.to_path_buf() } else { PathBuf::from("puppet") };
    let args = ["apply", "--environment", "production", "--configprint", "ssldir"];
    let out = std::process::Command::new(&cmd).args(args).stdin(std::process::Stdio::null()).output().map_err(|e| {
        format!(
            "could not run 'puppet {}' to find the Puppet SSL directory: {e}; set plugin.choria.ssldir",
            args.join(" ")
        )
    })?;
    if !out.status.success() {
        return Err(format!(
            "could not run 'puppet {}' to find the Puppet SSL directory: {}; set plugin.choria.ssldir",
            args.join(" "),
            out.status
        ));
    }
    let dir: String = String::from_utf8_lossy(&out.stdout).chars().filter(|c| *c != '\n' && *c != '\r').collect();
    if dir.is_empty() {
        return Err("puppet printed no ssldir; set plugin.choria.ssldir".into());
    }
    Ok(PathBuf::from(dir))
}

/// The CA, certificate and key of the `puppet` provider:
/// `<ssldir>/certs/ca.pem`, `<ssldir>/certs/<certname>.pem`,
/// `<ssldir>/private_keys/<certname>.pem`.
pub(crate) fn puppet_paths(
    conf: &ChoriaConfig,
    env: &PuppetEnv,
    ask_puppet: impl FnOnce() -> Result<PathBuf, String>,
) -> Result<PuppetPaths, String> {
    let certname = certname(env)?;
    let ssl = ssl_dir(conf, env, ask_puppet)?;
    let file = format!("{certname}.pem");
    Ok(PuppetPaths {
        ca: ssl.join("certs").join("ca.pem"),
        cert: ssl.join("certs").join(&file),
        key: ssl.join("private_keys").join(&file),
        certname,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> ChoriaConfig {
        ChoriaConfig::parse(Path::new("/etc/choria/client.conf"), text).unwrap()
    }

    fn no_puppet() -> Result<PathBuf, String> {
        Err("puppet not asked".into())
    }

    #[test]
    fn non_root_uses_home_and_user() {
        let env = PuppetEnv { euid: 1000, home: Some("/home/rip".into()), user: Some("rip".into()), certname: None };
        let p = puppet_paths(&conf("identity = box.example.net\n"), &env, no_puppet).unwrap();
        assert_eq!(p.certname, "rip.mcollective", "identity is for servers");
        assert_eq!(p.ca, PathBuf::from("/home/rip/.puppetlabs/etc/puppet/ssl/certs/ca.pem"));
        assert_eq!(p.cert, PathBuf::from("/home/rip/.puppetlabs/etc/puppet/ssl/certs/rip.mcollective.pem"));
        assert_eq!(p.key, PathBuf::from("/home/rip/.puppetlabs/etc/puppet/ssl/private_keys/rip.mcollective.pem"));
        let no_home = PuppetEnv { home: None, ..env.clone() };
        assert!(puppet_paths(&conf(""), &no_home, no_puppet).unwrap_err().contains("HOME is not set"));
        let no_user = PuppetEnv { user: None, ..env.clone() };
        assert!(puppet_paths(&conf(""), &no_user, no_puppet).unwrap_err().contains("USER"));
    }

    #[test]
    fn certname_override_and_ssldir_setting() {
        let env = PuppetEnv {
            euid: 0,
            home: Some("/root".into()),
            user: Some("root".into()),
            certname: Some("ops.mcollective".into()),
        };
        let p = puppet_paths(&conf("plugin.choria.ssldir = /srv/ssl\n"), &env, no_puppet).unwrap();
        assert_eq!(p.certname, "ops.mcollective");
        assert_eq!(p.cert, PathBuf::from("/srv/ssl/certs/ops.mcollective.pem"));
        // Root without the setting asks Puppet.
        let p = puppet_paths(&conf(""), &env, || Ok(PathBuf::from("/etc/puppetlabs/puppet/ssl"))).unwrap();
        assert_eq!(p.key, PathBuf::from("/etc/puppetlabs/puppet/ssl/private_keys/ops.mcollective.pem"));
        // An empty MCOLLECTIVE_CERTNAME falls back to USER, as in go-choria.
        let empty = PuppetEnv { certname: Some("".into()), ..env };
        assert_eq!(puppet_paths(&conf(""), &empty, || Ok("/x".into())).unwrap().certname, "root.mcollective");
    }
}
