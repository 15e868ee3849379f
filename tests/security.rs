//! Real-fleet security: a throwaway CA and certificates, nats-server with TLS and client
//! verification, protocol v1 signed requests against the secure simulator, and every
//! rejection path counted by the simulator and reported as no_reply by the client.

use std::path::{Path, PathBuf};

use crate::support::{request, short_rpc_timeouts, sim, Fleetbook};
use fleetbook::fleet::client::TlsFiles;
use fleetbook::sim::broker::EmbeddedBroker;
use fleetbook::sim::{SimConfig, Simulator};

use crate::support::pki::{ca, ed_key, leaf, sign_jwt, write_creds, Ca};
use crate::support::tokens::client_claims;

struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    ca_path: PathBuf,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("fleetbook test CA");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca.pem).unwrap();
    Pki { dir, ca, ca_path }
}

/// A TLS broker that verifies client certificates, and a secure simulated fleet on it.
async fn secure_world(pki: &Pki, nodes: usize) -> (EmbeddedBroker, Simulator, TlsFiles) {
    let (scert, skey) = leaf(pki.dir.path(), &pki.ca, "broker", &["localhost", "127.0.0.1"], false);
    let args = [
        "--tls",
        "--tlscert",
        scert.to_str().unwrap(),
        "--tlskey",
        skey.to_str().unwrap(),
        "--tlscacert",
        pki.ca_path.to_str().unwrap(),
        "--tlsverify",
    ];
    let broker = EmbeddedBroker::start_with(&args).unwrap_or_else(|e| panic!("{e}"));
    let (scert, skey) = leaf(pki.dir.path(), &pki.ca, "sim.mcollective", &[], false);
    let tls = TlsFiles { ca: Some(pki.ca_path.clone()), cert: Some(scert), key: Some(skey) };
    let cfg = SimConfig { secure_ca: Some(pki.ca.pem.clone()), tls: Some(tls.clone()), ..sim(nodes) };
    let sim = Simulator::start(broker.url(), cfg).await.expect("secure simulator starts");
    (broker, sim, tls)
}

fn fb(broker: &EmbeddedBroker, pki: &Pki, cert: &Path, key: &Path) -> Fleetbook {
    Fleetbook::new().test_config().args([
        "--server",
        broker.url(),
        "--tls-ca",
        pki.ca_path.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_v1_requests_reach_a_secure_fleet_over_mtls() {
    let pki = pki();
    let (broker, sim, _) = secure_world(&pki, 3).await;
    let (cert, key) = leaf(pki.dir.path(), &pki.ca, "ops.mcollective", &[], false);
    // Signed, and the same request unsigned (a silent node, known at the end of the wait),
    // side by side.
    let signed = fb(&broker, &pki, &cert, &key).args(["req", "rpcutil", "ping", "--json", "--discovery-timeout", "1"]);
    let ddl = short_rpc_timeouts();
    let unsigned = fb(&broker, &pki, &cert, &key).args([
        "--ddl-dir",
        ddl.path().to_str().unwrap(),
        "--insecure",
        "req",
        "rpcutil",
        "ping",
        "-I",
        "n001.example.net",
        "--json",
        "--discovery-timeout",
        "0.3",
    ]);
    let (r, u) = tokio::join!(signed.run(), unsigned.run());
    r.assert_code(0);
    assert_eq!(r.json()["ok"].as_array().unwrap().len(), 3);
    // The unsigned request is refused by every node, silently; the signed one by none.
    u.assert_code(1);
    assert_eq!(u.json()["no_reply"], serde_json::json!(["n001.example.net"]));
    let rejected = sim.stats().rejected;
    assert_eq!(rejected, [("unsigned".to_string(), 1)].into(), "only the unsigned request is rejected: {rejected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rejection_is_silent_and_counted() {
    let pki = pki();
    let (broker, sim, _) = secure_world(&pki, 2).await;
    let ddl = short_rpc_timeouts();
    let ping = |f: Fleetbook| {
        f.args(["--ddl-dir", ddl.path().to_str().unwrap()])
            .args(["req", "rpcutil", "ping", "-I", "n001.example.net", "--json", "--discovery-timeout", "0.3"])
            .run()
    };

    let rogue = ca("rogue CA");
    let (rcert, rkey) = leaf(pki.dir.path(), &rogue, "ops.mcollective", &[], false);
    let (good_cert, good_key) = leaf(pki.dir.path(), &pki.ca, "good.mcollective", &[], false);

    // Each refused request is a silent node, known at the end of the wait: both side by side.
    // callerid not matching the certificate; a certificate name outside the allowed pattern
    // (.mcollective / .choria).
    let (bad_name, bad_key) = leaf(pki.dir.path(), &pki.ca, "ops.example.com", &[], false);
    let (r, bad) = tokio::join!(
        ping(fb(&broker, &pki, &good_cert, &good_key).args(["--caller-id", "choria=someone.mcollective"])),
        ping(fb(&broker, &pki, &bad_name, &bad_key)),
    );
    r.assert_code(1);
    assert_eq!(sim.stats().rejected.get("callerid does not match the certificate"), Some(&1));
    bad.assert_code(1);
    assert_eq!(sim.stats().rejected.get("certificate name not allowed"), Some(&1));

    // Through the library: a rogue CA's certificate, a tampered request, a bad signature.
    use fleetbook::fleet::protocol::{self, Security, Version};
    use fleetbook::fleet::security::{verify_v1, X509Identity};
    let rogue_id = X509Identity::load(&rcert, &rkey).unwrap();
    let good_id = X509Identity::load(&good_cert, &good_key).unwrap();
    let send = |id: std::sync::Arc<X509Identity>, caller: String| {
        request(
            Version::V1,
            &caller,
            Security::X509(id),
            r#"{"agent":"rpcutil","action":"ping","data":{}}"#,
            chrono::Utc::now(),
        )
    };
    let req = protocol::decode_request(&send(rogue_id, "choria=ops.mcollective".into())).unwrap();
    assert_eq!(
        verify_v1(&pki.ca.pem, &req.caller, &req.signed, &req.signature, &req.credential),
        Err("certificate not signed by the CA")
    );
    let signed = send(good_id.clone(), "choria=good.mcollective".into());
    // A signed request still validates against go-choria's schemas, every layer.
    let inner = crate::protocol::validate_request(&signed);
    assert_eq!(inner["envelope"]["callerid"], "choria=good.mcollective");
    let req = protocol::decode_request(&signed).unwrap();
    assert!(req.credential.starts_with("-----BEGIN CERTIFICATE-----") && req.signature != "insecure");
    assert_eq!(verify_v1(&pki.ca.pem, &req.caller, &req.signed, &req.signature, &req.credential), Ok(()));
    let tampered = req.signed.replace("\"ttl\":60", "\"ttl\":600");
    assert_ne!(tampered, req.signed);
    assert_eq!(verify_v1(&pki.ca.pem, &req.caller, &tampered, &req.signature, &req.credential), Err("bad signature"));
    assert_eq!(verify_v1(&pki.ca.pem, &req.caller, &req.signed, "AAAA", &req.credential), Err("bad signature"));

    // The simulator applies the same checks to a rogue-signed request on the wire.
    let nats = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(pki.ca_path.clone())
        .add_client_certificate(good_cert.clone(), good_key.clone())
        .connect(broker.url())
        .await
        .unwrap();
    let rogue_id = X509Identity::load(&rcert, &rkey).unwrap();
    nats.publish("mcollective.node.n001.example.net", send(rogue_id, "choria=ops.mcollective".into())).await.unwrap();
    nats.flush().await.unwrap();
    crate::support::eventually(std::time::Duration::from_secs(5), "rogue rejection", || {
        sim.stats().rejected.get("certificate not signed by the CA") == Some(&1)
    })
    .await;
    // An expired TTL is dropped too, signed or not.
    let signed_old = request(
        Version::V1,
        "choria=good.mcollective",
        Security::X509(good_id),
        "{}",
        chrono::Utc::now() - chrono::Duration::seconds(300),
    );
    nats.publish("mcollective.node.n001.example.net", signed_old).await.unwrap();
    nats.flush().await.unwrap();
    crate::support::eventually(std::time::Duration::from_secs(5), "ttl drop", || sim.stats().ttl_expired == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_clear_errors_before_connecting() {
    let pki = pki();
    let (cert, key) = leaf(pki.dir.path(), &pki.ca, "ops.mcollective", &[], false);
    let (_, other_key) = leaf(pki.dir.path(), &pki.ca, "other.mcollective", &[], false);
    let (old_cert, old_key) = leaf(pki.dir.path(), &pki.ca, "old.mcollective", &[], true);
    let run = |c: &Path, k: &Path| {
        Fleetbook::new()
            .args([
                "--server",
                "nats://127.0.0.1:1",
                "--tls-cert",
                c.to_str().unwrap(),
                "--tls-key",
                k.to_str().unwrap(),
                "discover",
            ])
            .run()
    };
    let r = run(&cert, &other_key).await;
    r.assert_code(2);
    assert!(r.stderr.contains("the key does not match the certificate"), "{}", r.stderr);
    let r = run(&old_cert, &old_key).await;
    r.assert_code(2);
    assert!(r.stderr.contains("expired"), "{}", r.stderr);
    let r = run(Path::new("/nonexistent.pem"), &key).await;
    r.assert_code(2);
    assert!(r.stderr.contains("/nonexistent.pem") && r.stderr.contains("cannot read"), "{}", r.stderr);
    let key_text = std::fs::read_to_string(&key).unwrap();
    let secret_line = key_text.lines().nth(1).unwrap();
    for out in [&r.stdout, &r.stderr] {
        assert!(!out.contains(secret_line), "key material leaked");
    }
    // A missing --config file is an error; a config file's settings are used.
    let r = Fleetbook::new().args(["--config", "/nonexistent/client.conf", "discover"]).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains("/nonexistent/client.conf"), "{}", r.stderr);
    let conf = pki.dir.path().join("client.conf");
    std::fs::write(&conf, format!("plugin.choria.middleware_hosts = 127.0.0.1:1\nplugin.security.provider = file\nplugin.security.file.certificate = {}\nplugin.security.file.key = {}\nplugin.security.file.ca = {}\n", cert.display(), key.display(), pki.ca_path.display())).unwrap();
    let r = Fleetbook::new().args(["--config", conf.to_str().unwrap(), "discover"]).run().await;
    r.assert_code(4);
    assert!(r.stderr.contains("nats://127.0.0.1:1"), "the config's broker was used: {}", r.stderr);
    std::fs::write(&conf, "plugin.security.provider = choria\n").unwrap();
    let r = Fleetbook::new().args(["--config", conf.to_str().unwrap(), "discover"]).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains("needs plugin.security.choria.token_file"), "{}", r.stderr);
}

// ---- protocol v2: ed25519 + JWT ----

use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};

/// A Choria client JWT signed by `issuer` (`support::tokens::client_claims`) with the given
/// caller id, purpose, fleet-management permission and expiry from now.
fn client_jwt(
    issuer: &SigningKey,
    client: &SigningKey,
    callerid: &str,
    purpose: &str,
    fleet: bool,
    exp_offset: i64,
) -> String {
    let extra = serde_json::json!({
        "purpose": purpose,
        "permissions": {"fleet_management": fleet},
        "exp": chrono::Utc::now().timestamp() + exp_offset,
    });
    sign_jwt(issuer, &client_claims(&issuer.verifying_key(), &client.verifying_key(), callerid, extra))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_v2_requests_reach_a_secure_fleet_and_forgeries_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = ed_key();
    let cfg = SimConfig { secure_issuer: Some(hex::encode(issuer.verifying_key().as_bytes())), ..sim(3) };
    let w = crate::support::World::start_tls(cfg).await;
    let client = ed_key();
    let (jwt, seed) = write_creds(
        dir.path(),
        "good",
        &client_jwt(&issuer, &client, "up=rip", "choria_client_id", true, 3600),
        &client,
    );
    let run = |j: &Path, s: &Path| {
        w.fleetbook_jwt(j, s).args(["req", "rpcutil", "ping", "--json", "--discovery-timeout", "0.5"])
    };
    let nats = w.nats().await;
    let mut wire = crate::support::record(&nats, "mcollective.node.>").await;
    let r = run(&jwt, &seed).run().await;
    r.assert_code(0);
    assert_eq!(r.json()["ok"].as_array().unwrap().len(), 3);
    assert!(w.sim.stats().rejected.is_empty(), "{:?}", w.sim.stats().rejected);
    // What went out validates against the v2 schemas and carries the JWT and a real signature.
    let (_, payload, _) = crate::support::drain(&mut wire).into_iter().next().expect("a direct request");
    let inner = crate::protocol::validate_request(&payload);
    assert_eq!(inner["caller"], "up=rip");
    let decoded = fleetbook::fleet::protocol::decode_request(&payload).unwrap();
    assert!(
        decoded.credential.starts_with("eyJ")
            && decoded.signature != base64::engine::general_purpose::STANDARD.encode("insecure")
    );

    // Forged tokens: another issuer, no fleet management permission. (A server token is
    // refused at load; sim_tokens sends one past the client.)
    let rogue = ed_key();
    let cases = [
        (
            "rogue",
            client_jwt(&rogue, &client, "up=rip", "choria_client_id", true, 3600),
            "caller JWT not signed by a trusted issuer",
        ),
        (
            "nofleet",
            client_jwt(&issuer, &client, "up=rip", "choria_client_id", false, 3600),
            "caller JWT lacks fleet management permission",
        ),
    ];
    // Each is a silent node, known at the end of the wait: all side by side.
    let ddl = short_rpc_timeouts();
    let forged = cases.iter().map(|(name, token, _)| {
        let (j, s) = write_creds(dir.path(), name, token, &client);
        w.fleetbook_jwt(&j, &s)
            .args([
                "--ddl-dir",
                ddl.path().to_str().unwrap(),
                "req",
                "rpcutil",
                "ping",
                "-I",
                "n001.example.net",
                "--json",
                "--discovery-timeout",
                "0.3",
            ])
            .run()
    });
    let runs = futures::future::join_all(forged).await;
    for ((name, _, reason), r) in cases.iter().zip(runs) {
        r.assert_code(1);
        assert_eq!(r.json()["no_reply"], serde_json::json!(["n001.example.net"]), "{name}");
        assert_eq!(w.sim.stats().rejected.get(*reason), Some(&1), "{name}: {:?}", w.sim.stats().rejected);
    }

    // Through the library: caller not matching the JWT, a tampered request, unsigned.
    use fleetbook::fleet::protocol::{self, Security, Version};
    use fleetbook::fleet::security::Ed25519Identity;
    use fleetbook::sim::verify::verify_v2;
    let id = Ed25519Identity::load(&jwt, &seed).unwrap();
    let encode = |caller: &str, security: Security| {
        protocol::decode_request(&request(Version::V2, caller, security, "{}", chrono::Utc::now())).unwrap()
    };
    let issuer_hex = hex::encode(issuer.verifying_key().as_bytes());
    let ok = encode("up=rip", Security::Ed25519(id.clone()));
    assert_eq!(verify_v2(&issuer_hex, &ok.caller, &ok.signed, &ok.signature, &ok.credential), Ok(()));
    let other = encode("up=someone", Security::Ed25519(id.clone()));
    assert_eq!(
        verify_v2(&issuer_hex, &other.caller, &other.signed, &other.signature, &other.credential),
        Err("callerid does not match the JWT")
    );
    let tampered = ok.signed.replace("\"ttl\":60", "\"ttl\":61");
    assert_eq!(verify_v2(&issuer_hex, &ok.caller, &tampered, &ok.signature, &ok.credential), Err("bad signature"));
    let unsigned = encode("up=rip", Security::Insecure);
    assert_eq!(
        verify_v2(&issuer_hex, &unsigned.caller, &unsigned.signed, &unsigned.signature, &unsigned.credential),
        Err("unsigned")
    );

    // Credentials that cannot work are refused before connecting, seeds never echoed.
    let (expired_j, expired_s) = write_creds(
        dir.path(),
        "expired",
        &client_jwt(&issuer, &client, "up=rip", "choria_client_id", true, -60),
        &client,
    );
    let r = run(&expired_j, &expired_s).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains("expired"), "{}", r.stderr);
    let (server_j, server_s) = write_creds(
        dir.path(),
        "server",
        &client_jwt(&issuer, &client, "up=rip", "choria_server", true, 3600),
        &client,
    );
    let r = run(&server_j, &server_s).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains("not a client token"), "{}", r.stderr);
    let stranger = ed_key();
    std::fs::write(&seed, hex::encode(stranger.to_bytes())).unwrap();
    let r = run(&jwt, &seed).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains("does not match the public key"), "{}", r.stderr);
    assert!(!r.stderr.contains(&hex::encode(stranger.to_bytes())), "seed leaked");
}

#[test]
fn signed_v2_replies_are_checked_when_signed() {
    use fleetbook::fleet::protocol::{self, Security, Version};
    let b64 = base64::engine::general_purpose::STANDARD;
    let req = protocol::decode_request(&request(Version::V2, "up=rip", Security::Insecure, "{}", chrono::Utc::now()))
        .unwrap();
    let body = br#"{"action":"ping","statuscode":0,"statusmsg":"OK","data":{"pong":1}}"#;
    let unsigned = protocol::encode_reply(&req, "n1.example.net", body, chrono::Utc::now());
    assert!(protocol::decode_reply(&unsigned).is_ok(), "unsigned replies are accepted (hash checked)");

    // Sign the reply as a server does: ed25519 over the reply JSON, with its JWT as sender.
    let server = ed_key();
    let issuer = ed_key();
    let server_jwt = client_jwt(&issuer, &server, "n1.example.net", "choria_server", true, 3600);
    let sign = |key: &SigningKey| {
        let mut t: serde_json::Value = serde_json::from_slice(&unsigned).unwrap();
        let mut secure: serde_json::Value =
            serde_json::from_slice(&b64.decode(t["data"].as_str().unwrap()).unwrap()).unwrap();
        let reply = b64.decode(secure["reply"].as_str().unwrap()).unwrap();
        secure["signature"] = serde_json::json!(b64.encode(key.sign(&reply).to_bytes()));
        secure["sender"] = serde_json::json!(server_jwt);
        t["data"] = serde_json::json!(b64.encode(secure.to_string()));
        t.to_string().into_bytes()
    };
    let good = sign(&server);
    crate::protocol::validate_reply(&good);
    assert!(protocol::decode_reply(&good).is_ok());
    let forged = sign(&ed_key());
    let err = protocol::decode_reply(&forged).unwrap_err();
    assert!(err.to_string().contains("reply signature does not verify"), "{err}");
}

/// The CONNECT handshake with ed25519 credentials: a minimal NATS server that sends a nonce
/// checks that the JWT arrives as token and jwt, and that `sig` is the base64url ed25519
/// signature of the nonce by the key the JWT names (what Choria's broker verifies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_and_signed_nonce_are_presented_on_connect() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let issuer = ed_key();
    let client = ed_key();
    let dir = tempfile::tempdir().unwrap();
    let token = client_jwt(&issuer, &client, "up=rip", "choria_client_id", true, 3600);
    let (jwt_path, seed_path) = write_creds(dir.path(), "c", &token, &client);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let nonce = "Tx8eAQuHvRh-mqZr";
    let server = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (r, mut w) = sock.into_split();
        let info = format!(
            r#"INFO {{"server_id":"fake","version":"2.10.0","proto":1,"host":"127.0.0.1","port":{port},"max_payload":1048576,"nonce":"{nonce}"}}"#
        );
        w.write_all(format!("{info}\r\n").as_bytes()).await.unwrap();
        let mut lines = BufReader::new(r).lines();
        let connect = lines.next_line().await.unwrap().unwrap();
        let json: serde_json::Value = serde_json::from_str(connect.strip_prefix("CONNECT ").unwrap()).unwrap();
        // Answer PINGs so the client finishes connecting.
        w.write_all(b"PONG\r\n").await.unwrap();
        json
    });
    let opts = fleetbook::fleet::ClientOptions {
        servers: vec![format!("nats://127.0.0.1:{port}")],
        security: fleetbook::fleet::protocol::Security::Ed25519(
            fleetbook::fleet::security::Ed25519Identity::load(&jwt_path, &seed_path).unwrap(),
        ),
        ..Default::default()
    };
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        fleetbook::fleet::Fleet::connect(opts, fleetbook::fleet::ddl::DdlRegistry::builtin()),
    )
    .await;
    let connect = tokio::time::timeout(std::time::Duration::from_secs(5), server).await.unwrap().unwrap();
    assert_eq!(connect["auth_token"], token, "the JWT as the CONNECT token");
    assert_eq!(connect["jwt"], token, "and as the user JWT");
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(connect["sig"].as_str().unwrap()).unwrap();
    use ed25519_dalek::Verifier;
    client
        .verifying_key()
        .verify(nonce.as_bytes(), &ed25519_dalek::Signature::from_slice(&sig).unwrap())
        .expect("nonce signed by the JWT's key");
}
