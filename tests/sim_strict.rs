//! The simulated fleet held to go-choria's rules: the built-in agents' DDLs and the `scout`
//! agent's per-check state.

use std::path::PathBuf;

use crate::support::{sim, World};

/// The state of every check on `identity`, as the simulator holds it.
fn checks(w: &World, identity: &str) -> Vec<(String, String)> {
    w.sim.node(identity).unwrap().checks.into_iter().map(|c| (c.name, c.state)).collect()
}

fn pair(name: &str, state: &str) -> (String, String) {
    (name.to_string(), state.to_string())
}

fn runbook(dir: &tempfile::TempDir, body: &str) -> PathBuf {
    let path = dir.path().join("scout.rhai");
    std::fs::write(&path, body).unwrap();
    path
}

/// `req scout ...` validates against the built-in scout DDL (no `--ddl-dir`) and the nodes
/// answer with the shape the DDL's outputs give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scout_requests_validate_without_a_ddl_dir() {
    let w = World::start(sim(3)).await;
    let r = w.fleetbook().args(["req", "scout", "checks", "--json"]).run().await;
    r.assert_code(0);
    let j = r.json();
    let text = j.to_string();
    assert!(text.contains("check_disk") && text.contains("check_load"), "{text}");
    let r = w
        .fleetbook()
        .args(["req", "scout", "maintenance", "checks=[\"check_disk\"]", "-I", "n002.example.net", "--json"])
        .run()
        .await;
    r.assert_code(0);
    assert_eq!(checks(&w, "n002.example.net"), vec![pair("check_disk", "MAINTENANCE"), pair("check_load", "OK")]);
    assert_eq!(checks(&w, "n001.example.net"), vec![pair("check_disk", "OK"), pair("check_load", "OK")]);
    // An action the DDL does not know is refused before anything is sent.
    let r = w.fleetbook().args(["req", "scout", "nope"]).run().await;
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("unknown action 'nope'"), "{}", r.stderr);
    // An action the simulator does not model says so.
    let r = w.fleetbook().args(["req", "executor", "list", "--json"]).run().await;
    assert!(r.stdout.contains("list is not simulated"), "{}\n{}", r.stdout, r.stderr);
}

/// A runbook puts checks into maintenance around a restart batch and resumes them after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runbook_holds_checks_in_maintenance_around_a_restart() {
    let w = World::start(sim(4)).await;
    let dir = tempfile::tempdir().unwrap();
    let rb = runbook(
        &dir,
        r#"
let nodes = discover();
let m = rpc_batch("scout", "maintenance", #{ checks: [] }, #{ nodes: nodes, batch: 4, sleep: "0s" });
if m.ok.len() != 4 { abort("maintenance failed"); }
rpc_batch("choria_provision", "restart", #{ token: "s3cret", splay: 1 }, #{
    nodes: nodes, batch: 2, sleep: "0s", wait_for: #{ event: "startup", timeout: "10s" },
});
if arg("resume", "yes") == "yes" {
    rpc_batch("scout", "resume", #{}, #{ nodes: nodes, batch: 4, sleep: "0s" });
}
"#,
    );
    let r = w.fleetbook().args(["run", rb.to_str().unwrap(), "--arg", "resume=no"]).run().await;
    r.assert_code(0);
    for id in w.sim.identities() {
        assert_eq!(checks(&w, &id), vec![pair("check_disk", "MAINTENANCE"), pair("check_load", "MAINTENANCE")], "{id}");
    }
    let r = w.fleetbook().args(["run", rb.to_str().unwrap()]).run().await;
    r.assert_code(0);
    let stats = w.sim.stats();
    for id in w.sim.identities() {
        assert_eq!(checks(&w, &id), vec![pair("check_disk", "OK"), pair("check_load", "OK")], "{id}");
        let seen: Vec<&str> = stats.received[&id].iter().map(String::as_str).collect();
        let (m, r) = ("scout#maintenance", "choria_provision#restart");
        assert_eq!(seen, [m, r, m, r, "scout#resume"], "{id}");
    }
    assert!(stats.events.get("startup").copied().unwrap_or(0) >= 8, "{:?}", stats.events);
}

// ---- item 7: a secure simulated server checks callers as go-choria does (v1; v2 tokens
// are sim_tokens') ----

use std::path::Path;

use base64::Engine as _;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, PKCS_RSA_SHA256};
use rsa::pkcs8::DecodePrivateKey;
use sha2::{Digest, Sha256};

use fleetbook::sim::verify::verify_v1;
use fleetbook::sim::{SimConfig, Simulator};

use crate::support::pki::{ca_under as ca, rsa_pem, Ca};

/// A leaf for `cn` signed by `ca`, with the given extended key usages; (cert PEM, key PEM).
fn leaf(ca: &Ca, cn: &str, usages: &[ExtendedKeyUsagePurpose], not_before_year: Option<i32>) -> (String, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = usages.to_vec();
    if let Some(y) = not_before_year {
        p.not_before = rcgen::date_time_ymd(y, 1, 1);
        p.not_after = rcgen::date_time_ymd(y + 1, 1, 1);
    }
    let key_pem = rsa_pem();
    let key = KeyPair::from_pem_and_sign_algo(&key_pem, &PKCS_RSA_SHA256).unwrap();
    (p.signed_by(&key, &ca.issuer).unwrap().pem(), key_pem)
}

/// RSA PKCS#1 v1.5 over SHA-256 of `message`, base64: a v1 request signature.
fn sign(key_pem: &str, message: &str) -> String {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(key_pem).unwrap();
    let sig = key.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message.as_bytes())).unwrap();
    base64::engine::general_purpose::STANDARD.encode(sig)
}

const MSG: &str = r#"{"agent":"rpcutil","action":"ping"}"#;

#[test]
fn v1_callers_are_checked_as_go_choria_checks_them() {
    use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let root = ca("root CA", None);
    let check = |caller: &str, (cert, key): &(String, String)| verify_v1(&root.pem, caller, MSG, &sign(key, MSG), cert);

    // A privileged certificate may use any caller id, and skips the allow list.
    let admin = leaf(&root, "admin.privileged.mcollective", &[ClientAuth], None);
    assert_eq!(check("choria=anyone.example.com", &admin), Ok(true));
    assert_eq!(check("up=someone", &admin), Ok(true));
    let admin2 = leaf(&root, "ops.privileged.choria", &[], None);
    assert_eq!(check("choria=other.mcollective", &admin2), Ok(true));
    // Not privileged: the caller must be the certificate's.
    let ops = leaf(&root, "ops.mcollective", &[ClientAuth], None);
    assert_eq!(check("choria=ops.mcollective", &ops), Ok(false));
    assert_eq!(check("choria=other.mcollective", &ops), Err("callerid does not match the certificate"));
    // The caller-id pattern is not anchored at the end.
    assert_eq!(check("choria=ops.mcollective/trailing junk", &ops), Ok(false));
    assert_eq!(check("=ops.mcollective", &ops), Err("malformed callerid"));
    // Without the client-auth usage (a server certificate) it is refused; no usage at all
    // means any usage, as Go's x509 reads it.
    let server = leaf(&root, "srv.mcollective", &[ServerAuth], None);
    assert_eq!(check("choria=srv.mcollective", &server), Err("certificate not for client authentication"));
    let any = leaf(&root, "any.mcollective", &[], None);
    assert_eq!(check("choria=any.mcollective", &any), Ok(false));
    // Not yet valid, and expired.
    let future = leaf(&root, "future.mcollective", &[ClientAuth], Some(2099));
    assert_eq!(check("choria=future.mcollective", &future), Err("certificate not yet valid"));
    let past = leaf(&root, "past.mcollective", &[ClientAuth], Some(2020));
    assert_eq!(check("choria=past.mcollective", &past), Err("certificate expired"));
    // An intermediate CA travelling in pubcert after the leaf; without it there is no chain.
    let mid = ca("intermediate CA", Some(&root));
    let (cert, key) = leaf(&mid, "chained.mcollective", &[ClientAuth], None);
    let bundle = (format!("{cert}{}", mid.pem), key.clone());
    assert_eq!(check("choria=chained.mcollective", &bundle), Ok(false));
    assert_eq!(check("choria=chained.mcollective", &(cert, key)), Err("certificate not signed by the CA"));
    // A name outside the allow list.
    let other = leaf(&root, "ops.example.com", &[ClientAuth], None);
    assert_eq!(check("choria=ops.example.com", &other), Err("certificate name not allowed"));
}

/// The privileged caller on the wire: the secure simulator answers it under another caller id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privileged_certificate_reaches_a_secure_fleet_with_any_caller_id() {
    let dir = tempfile::tempdir().unwrap();
    let root = ca("fleetbook test CA", None);
    let write = |name: &str, (cert, key): (String, String)| {
        let (c, k) = (dir.path().join(format!("{name}.pem")), dir.path().join(format!("{name}.key")));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    };
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &root.pem).unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    p.distinguished_name.push(DnType::CommonName, "broker");
    let bkey_pem = rsa_pem();
    let bkey = KeyPair::from_pem_and_sign_algo(&bkey_pem, &PKCS_RSA_SHA256).unwrap();
    let (bcert, bkey) = write("broker", (p.signed_by(&bkey, &root.issuer).unwrap().pem(), bkey_pem));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let args = ["--tls", "--tlscert", &s(&bcert), "--tlskey", &s(&bkey), "--tlscacert", &s(&ca_path), "--tlsverify"];
    let broker = fleetbook::sim::broker::EmbeddedBroker::start_with(&args).unwrap_or_else(|e| panic!("{e}"));
    let both = [ExtendedKeyUsagePurpose::ClientAuth, ExtendedKeyUsagePurpose::ServerAuth];
    let (scert, skey) = write("sim", leaf(&root, "sim.mcollective", &both, None));
    let tls = fleetbook::fleet::client::TlsFiles { ca: Some(ca_path.clone()), cert: Some(scert), key: Some(skey) };
    let cfg = SimConfig { secure_ca: Some(root.pem.clone()), tls: Some(tls), ..sim(2) };
    let simulator = Simulator::start(broker.url(), cfg).await.expect("secure simulator starts");
    let (acert, akey) = write("admin", leaf(&root, "admin.privileged.mcollective", &both, None));
    let r = crate::support::Fleetbook::new()
        .test_config()
        .args(["--server", broker.url(), "--tls-ca", &s(&ca_path), "--tls-cert", &s(&acert), "--tls-key", &s(&akey)])
        .args(["--caller-id", "choria=someone.mcollective", "req", "rpcutil", "ping", "--json"])
        .run()
        .await;
    r.assert_code(0);
    assert_eq!(r.json()["ok"].as_array().unwrap().len(), 2, "{}", r.stdout);
    assert!(simulator.stats().rejected.is_empty(), "{:?}", simulator.stats().rejected);
}
