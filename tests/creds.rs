//! Credentials real sites use, checked before connecting as go-choria's broker and servers
//! would check them (issue 12, the client side): protocol v2 needs TLS, the FIPS reply
//! subject, client certificate usage and validity, the `puppet` security provider, JWT
//! `nbf`, `ou` and delegated (`signed_fleet_management`) tokens.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

use crate::support::pki::{ed_key, sign_jwt, write_creds};
use crate::support::tokens::client_claims;
use crate::support::Fleetbook;

/// A client JWT as `choria-io/tokens` makes one (`support::tokens::client_claims`, valid from a
/// minute ago), with `extra` merged into the claims.
fn client_jwt(issuer: &SigningKey, client: &SigningKey, extra: serde_json::Value) -> String {
    let now = chrono::Utc::now().timestamp();
    let (iv, cv) = (issuer.verifying_key(), client.verifying_key());
    let mut claims = client_claims(&iv, &cv, "up=rip", serde_json::json!({"nbf": now - 60}));
    if let (Some(c), serde_json::Value::Object(e)) = (claims.as_object_mut(), extra) {
        c.extend(e);
    }
    sign_jwt(issuer, &claims)
}

fn v2_run(server: &str, jwt: &Path, seed: &Path, extra: &[&str]) -> Fleetbook {
    Fleetbook::new()
        .args(["--server", server, "--protocol", "v2", "--jwt", jwt.to_str().unwrap(), "--seed"])
        .arg_path(seed)
        .args(extra)
        .arg("discover")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_v2_with_a_jwt_needs_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, client) = (ed_key(), ed_key());
    let (jwt, seed) = write_creds(dir.path(), "c", &client_jwt(&issuer, &client, serde_json::json!({})), &client);
    let r = v2_run("nats://127.0.0.1:1", &jwt, &seed, &[]).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains("tls://") && r.stderr.contains("--tls-ca"), "{}", r.stderr);
    assert!(r.stderr.contains("unverified connection without JWT token"), "{}", r.stderr);
    // With TLS asked for, the check passes and the (absent) broker is what fails.
    let r = v2_run("tls://127.0.0.1:1", &jwt, &seed, &[]).run().await;
    r.assert_code(4);
    // --insecure sends unsigned requests: no JWT, no TLS needed.
    let r = v2_run("nats://127.0.0.1:1", &jwt, &seed, &["--insecure"]).run().await;
    r.assert_code(4);
    // A bare --jwt/--seed, without --protocol v2, presents the JWT just the same.
    let bare = |server: &str, extra: &[&str]| {
        Fleetbook::new()
            .args(["--server", server, "--jwt"])
            .arg_path(&jwt)
            .arg("--seed")
            .arg_path(&seed)
            .args(extra)
            .arg("discover")
            .run()
    };
    let r = bare("nats://127.0.0.1:1", &[]).await;
    r.assert_code(2);
    assert!(r.stderr.contains("nats://127.0.0.1:1 is not TLS") && r.stderr.contains("--tls-ca"), "{}", r.stderr);
    bare("tls://127.0.0.1:1", &[]).await.assert_code(4);
    bare("nats://127.0.0.1:1", &["--insecure"]).await.assert_code(4);
    // A CA makes fleetbook require TLS on a nats:// URL too.
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, crate::support::pki::ca("broker CA").pem).unwrap();
    bare("nats://127.0.0.1:1", &["--tls-ca", ca.to_str().unwrap()]).await.assert_code(4);
    // The choria provider in the Choria config asks for v2 as well.
    let conf = dir.path().join("client.conf");
    std::fs::write(
        &conf,
        format!(
            "plugin.choria.middleware_hosts = 127.0.0.1:1\nplugin.security.provider = choria\n\
             plugin.security.choria.token_file = {}\nplugin.security.choria.seed_file = {}\n",
            jwt.display(),
            seed.display()
        ),
    )
    .unwrap();
    let r = Fleetbook::new().args(["--config", conf.to_str().unwrap(), "discover"]).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains("nats://127.0.0.1:1 is not TLS"), "{}", r.stderr);
}

/// sha256 of `choria=rip.mcollective` in hex (`printf %s choria=rip.mcollective | sha256sum`).
const FIPS_RIP: &str = "a8d26d6b19525a023b576468d70dd050cdace101bf8d438a58f071913d559a95";
/// md5 of the same (choria-protocol.md §10.1).
const MD5_RIP: &str = "37bdf08389145a56c13096c178802d3b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fips_mode_hashes_the_caller_id_with_sha256_in_reply_subjects() {
    let w = crate::support::World::start(crate::support::sim(2)).await;
    let nats = w.nats().await;
    for (how, hash) in [("--fips", FIPS_RIP), ("FLEETBOOK_FIPS", FIPS_RIP), ("off", MD5_RIP)] {
        let mut wire = crate::support::record(&nats, "mcollective.broadcast.agent.discovery").await;
        let mut run = w.fleetbook().args(["--caller-id", "choria=rip.mcollective", "discover", "--json"]);
        match how {
            "--fips" => run = run.arg("--fips"),
            "FLEETBOOK_FIPS" => run = run.env("FLEETBOOK_FIPS", "true"),
            _ => run = run.env("FLEETBOOK_FIPS", "false"),
        }
        let r = run.run().await;
        r.assert_code(0);
        // The nodes answered on that subject: the round trip works.
        assert_eq!(r.json().as_array().map(Vec::len), Some(2), "{how}: {}", r.stdout);
        let (_, payload, _) = crate::support::drain(&mut wire).into_iter().next().expect("a discovery request");
        let req = fleetbook::fleet::protocol::decode_request(&payload).unwrap();
        assert_eq!(req.reply_to, format!("mcollective.reply.{hash}.{}", req.request_id), "{how}");
    }
}

// ---- client certificates: usage, validity, key ----

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, PKCS_RSA_SHA256};

use crate::support::pki::{ca, rsa_pem, Ca};

/// A certificate for `cn` signed by `ca`, its parameters adjusted by `tweak`; returns the
/// certificate and key PEM.
fn leaf(ca: &Ca, cn: &str, tweak: impl FnOnce(&mut CertificateParams)) -> (String, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    tweak(&mut p);
    let key_pem = rsa_pem();
    let key = KeyPair::from_pem_and_sign_algo(&key_pem, &PKCS_RSA_SHA256).unwrap();
    (p.signed_by(&key, &ca.issuer).unwrap().pem(), key_pem)
}

fn write_pair(dir: &Path, name: &str, (cert, key): &(String, String)) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    (c, k)
}

fn v1_run(ca: &Path, cert: &Path, key: &Path) -> Fleetbook {
    Fleetbook::new()
        .args(["--server", "nats://127.0.0.1:1", "--tls-ca"])
        .arg_path(ca)
        .arg("--tls-cert")
        .arg_path(cert)
        .arg("--tls-key")
        .arg_path(key)
        .arg("discover")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_checked_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("creds test CA");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca.pem).unwrap();
    let ok = |name: &str, tweak: fn(&mut CertificateParams)| {
        write_pair(dir.path(), name, &leaf(&ca, &format!("{name}.mcollective"), tweak))
    };
    // Usable: no extended key usage at all (Go: any usage), clientAuth, anyExtendedKeyUsage.
    // They pass the checks, so the (absent) broker is what fails: exit 4.
    for (name, tweak) in [
        ("plain", (|_| {}) as fn(&mut CertificateParams)),
        ("client", |p| {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]
        }),
        ("any", |p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::Any]),
    ] {
        let (c, k) = ok(name, tweak);
        let r = v1_run(&ca_path, &c, &k).run().await;
        r.assert_code(4);
    }
    // A server-only certificate: refused, naming the file and the missing usage.
    let (c, k) = ok("server", |p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]);
    let r = v1_run(&ca_path, &c, &k).run().await;
    r.assert_code(2);
    assert!(
        r.stderr.contains(c.to_str().unwrap())
            && r.stderr.contains("not for client authentication")
            && r.stderr.contains("serverAuth"),
        "{}",
        r.stderr
    );
    // Not yet valid.
    let (c, k) = ok("future", |p| {
        p.not_before = rcgen::date_time_ymd(2200, 1, 1);
        p.not_after = rcgen::date_time_ymd(2201, 1, 1);
    });
    let r = v1_run(&ca_path, &c, &k).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains(c.to_str().unwrap()) && r.stderr.contains("not valid before"), "{}", r.stderr);
    // Expired.
    let (c, k) = ok("old", |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let r = v1_run(&ca_path, &c, &k).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains(c.to_str().unwrap()) && r.stderr.contains("expired"), "{}", r.stderr);
    // A key that belongs to another certificate: the key file and the certificate named.
    let (c, _) = ok("mine", |_| {});
    let (_, other) = ok("theirs", |_| {});
    let r = v1_run(&ca_path, &c, &other).run().await;
    r.assert_code(2);
    assert!(
        r.stderr.contains(other.to_str().unwrap())
            && r.stderr.contains("does not match the certificate")
            && r.stderr.contains(c.to_str().unwrap()),
        "{}",
        r.stderr
    );
}

// ---- the puppet security provider ----

/// A Puppet SSL directory: `certs/ca.pem`, `certs/<certname>.pem`,
/// `private_keys/<certname>.pem`.
fn puppet_ssl(dir: &Path, ca: &Ca, certname: &str, tweak: fn(&mut CertificateParams)) -> PathBuf {
    let ssl = dir.join("ssl");
    std::fs::create_dir_all(ssl.join("certs")).unwrap();
    std::fs::create_dir_all(ssl.join("private_keys")).unwrap();
    std::fs::write(ssl.join("certs/ca.pem"), &ca.pem).unwrap();
    let (cert, key) = leaf(ca, certname, tweak);
    std::fs::write(ssl.join(format!("certs/{certname}.pem")), cert).unwrap();
    std::fs::write(ssl.join(format!("private_keys/{certname}.pem")), key).unwrap();
    ssl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_puppet_provider_finds_the_files_as_go_choria_does() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("puppet CA");
    let ssl = puppet_ssl(dir.path(), &ca, "ops.mcollective", |_| {});
    // An expired certificate for another user: the error names the file the lookup chose.
    puppet_ssl(dir.path(), &ca, "rip.mcollective", |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let conf = dir.path().join("client.conf");
    let write_conf = |extra: &str| {
        std::fs::write(
            &conf,
            format!("plugin.choria.middleware_hosts = 127.0.0.1:1\nplugin.security.provider = puppet\n{extra}"),
        )
        .unwrap()
    };
    let run = |env: &[(&str, &str)]| {
        let mut f = Fleetbook::new().args(["--config", conf.to_str().unwrap(), "discover"]);
        for (k, v) in env {
            f = f.env(k, v);
        }
        f.run()
    };
    write_conf(&format!("plugin.choria.ssldir = {}\n", ssl.display()));
    // MCOLLECTIVE_CERTNAME picks the certname: good files, so only the broker is missing.
    let r = run(&[("MCOLLECTIVE_CERTNAME", "ops.mcollective"), ("USER", "rip")]).await;
    r.assert_code(4);
    // Else $USER.mcollective, never the identity setting.
    let r = run(&[("USER", "rip")]).await;
    r.assert_code(2);
    let chosen = ssl.join("certs/rip.mcollective.pem");
    assert!(r.stderr.contains(chosen.to_str().unwrap()) && r.stderr.contains("expired"), "{}", r.stderr);
    // Without plugin.choria.ssldir, root asks Puppet for its ssldir (non-root uses
    // ~/.puppetlabs/etc/puppet/ssl; see the unit tests).
    write_conf("identity = box.example.net\n");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let puppet = bin.join("puppet");
    std::fs::write(
        &puppet,
        format!(
            "#!/bin/sh\n[ \"$*\" = \"apply --environment production --configprint ssldir\" ] || exit 1\necho {}\n",
            ssl.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&puppet, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let r = run(&[("PATH", &path), ("USER", "rip"), ("HOME", dir.path().to_str().unwrap())]).await;
    r.assert_code(2);
    if root {
        assert!(r.stderr.contains(chosen.to_str().unwrap()) && r.stderr.contains("expired"), "{}", r.stderr);
    } else {
        let home = dir.path().join(".puppetlabs/etc/puppet/ssl/certs/rip.mcollective.pem");
        assert!(r.stderr.contains(home.to_str().unwrap()), "{}", r.stderr);
    }
}

// ---- JWTs: nbf, ou, delegation ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_not_yet_valid_or_needing_delegation_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, client) = (ed_key(), ed_key());
    let now = chrono::Utc::now().timestamp();
    // A good token, with ou, through an org issuer's chain: it loads and only the broker fails.
    let good = client_jwt(&issuer, &client, serde_json::json!({"ou": "ops", "tcs": "abcd.ef01"}));
    let claims = fleetbook::fleet::jwt::claims(&good).unwrap();
    assert_eq!((claims.org.as_str(), claims.not_before), ("ops", Some(now - 60)));
    let (j, s) = write_creds(dir.path(), "good", &good, &client);
    v2_run("tls://127.0.0.1:1", &j, &s, &[]).run().await.assert_code(4);
    // Not yet valid.
    let (j, s) = write_creds(
        dir.path(),
        "later",
        &client_jwt(&issuer, &client, serde_json::json!({"nbf": now + 3600})),
        &client,
    );
    let r = v2_run("tls://127.0.0.1:1", &j, &s, &[]).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains(j.to_str().unwrap()) && r.stderr.contains("not yet valid"), "{}", r.stderr);
    // From a chain issuer whose own token has expired (issexp): servers drop its requests.
    let orphan = serde_json::json!({"iss": "C-2jX.abcd", "tcs": "ab.cd", "issexp": now - 1});
    let (j, s) = write_creds(dir.path(), "orphan", &client_jwt(&issuer, &client, orphan), &client);
    let r = v2_run("tls://127.0.0.1:1", &j, &s, &[]).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains(j.to_str().unwrap()) && r.stderr.contains("chain issuer"), "{}", r.stderr);
    // signed_fleet_management needs a delegated signer, even with fleet_management too.
    let aaa = serde_json::json!({"permissions": {"fleet_management": true, "signed_fleet_management": true}});
    let (j, s) = write_creds(dir.path(), "aaa", &client_jwt(&issuer, &client, aaa), &client);
    let r = v2_run("tls://127.0.0.1:1", &j, &s, &[]).run().await;
    r.assert_code(2);
    assert!(
        r.stderr.contains(j.to_str().unwrap())
            && r.stderr.contains("signed_fleet_management")
            && r.stderr.contains("does not support"),
        "{}",
        r.stderr
    );
}
