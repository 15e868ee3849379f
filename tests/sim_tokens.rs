//! Issue 12, item 7: a secure simulated v2 server reads a caller's token as go-choria's do:
//! `nbf`, org issuers picked by `ou`, tokens from chain issuers, server tokens as callers, and
//! `signed_fleet_management` without a delegated signer. Each rule has a case a server takes
//! and one it refuses, checked on what the simulated nodes do.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

use crate::support::pki::{ed_key, sign_jwt, write_creds};
use crate::support::tokens::{client_claims, server_claims, ChainIssuer};
use crate::support::{eventually, request, short_rpc_timeouts, sim, World};
use fleetbook::sim::verify::{verify_v2, verify_v2_org};
use fleetbook::sim::SimConfig;

const MSG: &str = r#"{"agent":"rpcutil","action":"ping"}"#;

/// What a server with `issuer` as its trusted signer says of `MSG` sent by `caller` with
/// `jwt`, signed by `holder`.
fn check(issuer: &SigningKey, caller: &str, jwt: &str, holder: &SigningKey) -> Result<(), &'static str> {
    let sig = STANDARD.encode(holder.sign(MSG.as_bytes()).to_bytes());
    verify_v2(&hex::encode(issuer.verifying_key().as_bytes()), caller, MSG, &sig, jwt)
}

/// `jwt` with its claims changed by `f` and its signature kept.
fn tamper(jwt: &str, f: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    f(&mut claims);
    format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2])
}

#[test]
fn tokens_not_yet_valid_are_refused_before_their_permissions() {
    let (issuer, client) = (ed_key(), ed_key());
    let (iv, cv) = (issuer.verifying_key(), client.verifying_key());
    let now = chrono::Utc::now().timestamp();
    let token = |nbf: i64, sfm: bool| {
        let perms = json!({"fleet_management": true, "signed_fleet_management": sfm});
        sign_jwt(&issuer, &client_claims(&iv, &cv, "up=rip", json!({"nbf": nbf, "permissions": perms})))
    };
    assert_eq!(check(&issuer, "up=rip", &token(now - 60, false), &client), Ok(()));
    assert_eq!(check(&issuer, "up=rip", &token(now + 600, false), &client), Err("caller JWT not yet valid"));
    let r = check(&issuer, "up=rip", &token(now + 600, true), &client);
    assert_eq!(r, Err("caller JWT not yet valid"), "times first, as go-choria");
}

#[test]
fn org_issuers_are_picked_by_ou() {
    let (issuer, other, client) = (ed_key(), ed_key(), ed_key());
    let cv = client.verifying_key();
    let issuers: BTreeMap<String, String> = [
        ("choria".to_string(), hex::encode(issuer.verifying_key().as_bytes())),
        ("ops".to_string(), hex::encode(other.verifying_key().as_bytes())),
    ]
    .into();
    let sig = STANDARD.encode(client.sign(MSG.as_bytes()).to_bytes());
    let org = |by: &SigningKey, ou: Option<&str>| {
        let mut claims = client_claims(&by.verifying_key(), &cv, "up=rip", json!({"ou": ou}));
        if ou.is_none() {
            claims.as_object_mut().unwrap().remove("ou");
        }
        verify_v2_org(&issuers, "up=rip", MSG, &sig, &sign_jwt(by, &claims))
    };
    assert_eq!(org(&issuer, Some("choria")), Ok(()));
    assert_eq!(org(&other, Some("ops")), Ok(()));
    assert_eq!(org(&other, Some("choria")), Err("caller JWT not signed by a trusted issuer"));
    assert_eq!(org(&issuer, Some("sales")), Err("no issuer for the caller JWT's ou"));
    assert_eq!(org(&issuer, None), Err("caller JWT has no ou"));
}

/// Org-issuer mode on the wire: the token's `ou` picks the issuer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_issuers_pick_the_issuer_by_ou_on_the_wire() {
    let (issuer, client) = (ed_key(), ed_key());
    let (iv, cv) = (issuer.verifying_key(), client.verifying_key());
    let issuers = [("choria".to_string(), hex::encode(iv.as_bytes()))].into();
    let w = World::start_tls(SimConfig { secure_org_issuers: issuers, ..sim(2) }).await;
    let dir = tempfile::tempdir().unwrap();
    let ping = |ou: &str| {
        let token = sign_jwt(&issuer, &client_claims(&iv, &cv, "up=rip", json!({"ou": ou})));
        let (j, s) = write_creds(dir.path(), ou, &token, &client);
        w.fleetbook_jwt(&j, &s).args(["req", "rpcutil", "ping", "--json", "--discovery-timeout", "0.5"]).run()
    };
    let r = ping("choria").await;
    r.assert_code(0);
    assert_eq!(r.json()["ok"].as_array().unwrap().len(), 2, "{}", r.stdout);
    assert!(w.sim.stats().rejected.is_empty(), "{:?}", w.sim.stats().rejected);
    let r = ping("sales").await;
    assert_ne!(r.code, 0);
    assert!(w.sim.stats().rejected.get("no issuer for the caller JWT's ou").is_some_and(|n| *n >= 1));
}

#[test]
fn chained_tokens_are_checked_as_choria_tokens_checks_them() {
    let (org, user) = (ed_key(), ed_key());
    let (orgv, userv) = (org.verifying_key(), user.verifying_key());
    let aaa = ChainIssuer::new(&org, json!({}));
    let claims = || client_claims(&orgv, &userv, "up=rip", json!({}));
    let ok = aaa.issue(claims(), |_| {});
    assert_eq!(check(&org, "up=rip", &ok, &user), Ok(()));
    // The chain issuer's own token (I- with a tcs) is an ordinary token of the issuer.
    let aaa_jwt = sign_jwt(&org, &aaa.claims);
    assert_eq!(check(&org, "aaasvc-login", &aaa_jwt, &aaa.key), Ok(()));

    // Vouched for by another org issuer.
    let stranger = ChainIssuer::new(&ed_key(), json!({}));
    let r = check(&org, "up=rip", &stranger.issue(claims(), |_| {}), &user);
    assert_eq!(r, Err("caller JWT chain issuer not signed by the issuer"));
    // A key passing itself off as the chain issuer: its chain signature is not the issuer's.
    let impostor = ChainIssuer { key: ed_key(), claims: aaa.claims.clone() };
    let r = check(&org, "up=rip", &impostor.issue(claims(), |_| {}), &user);
    assert_eq!(r, Err("caller JWT chain signature invalid"));
    // Claims changed after the chain issuer signed them.
    let r = check(&org, "up=admin", &tamper(&ok, |c| c["callerid"] = json!("up=admin")), &user);
    assert_eq!(r, Err("caller JWT not signed by a trusted issuer"));
    // The chain issuer has expired though the token has not.
    let now = chrono::Utc::now().timestamp();
    let late = aaa.issue(claims(), |c| {
        c["issexp"] = json!(now - 1);
        c["exp"] = json!(now + 600);
    });
    assert_eq!(check(&org, "up=rip", &late, &user), Err("caller JWT chain issuer expired"));
    // The id must be a ksuid of the issue time, and the chain claims complete.
    let redated = aaa.issue(claims(), |c| c["iat"] = json!(c["iat"].as_i64().unwrap() - 10));
    assert_eq!(check(&org, "up=rip", &redated, &user), Err("caller JWT id is not based on its issue time"));
    let no_issexp = aaa.issue(claims(), |c| {
        c.as_object_mut().unwrap().remove("issexp");
    });
    assert_eq!(check(&org, "up=rip", &no_issexp, &user), Err("caller JWT chain claims incomplete"));

    // Org issuers: the token's ou picks the org issuer, and the chain starts there.
    let issuers: BTreeMap<String, String> = [("choria".to_string(), hex::encode(orgv.as_bytes()))].into();
    let sig = STANDARD.encode(user.sign(MSG.as_bytes()).to_bytes());
    assert_eq!(verify_v2_org(&issuers, "up=rip", MSG, &sig, &ok), Ok(()));
    let sales = aaa.issue(client_claims(&orgv, &userv, "up=rip", json!({"ou": "sales"})), |_| {});
    assert_eq!(verify_v2_org(&issuers, "up=rip", MSG, &sig, &sales), Err("no issuer for the caller JWT's ou"));
}

#[test]
fn server_tokens_sign_but_are_refused_as_callers() {
    let (org, node) = (ed_key(), ed_key());
    let (orgv, nodev) = (org.verifying_key(), node.verifying_key());
    let id = "n001.example.net";
    // The signature step takes a server token of the issuer; the caller step refuses it.
    let direct = sign_jwt(&org, &server_claims(&orgv, &nodev, id, json!({})));
    assert_eq!(check(&org, id, &direct, &node), Err("caller JWT is not a client token"));
    // One the issuer did not sign, or a request its key did not sign, fails the first step.
    let rogue = ed_key();
    let forged = sign_jwt(&rogue, &server_claims(&rogue.verifying_key(), &nodev, id, json!({})));
    assert_eq!(check(&org, id, &forged, &node), Err("caller JWT not signed by a trusted issuer"));
    assert_eq!(check(&org, id, &direct, &ed_key()), Err("bad signature"));
    // From a chain issuer, as in go-choria's tests: signs, and is refused as a caller.
    let aaa = ChainIssuer::new(&org, json!({}));
    let chained = aaa.issue(server_claims(&orgv, &nodev, id, json!({})), |_| {});
    assert_eq!(check(&org, id, &chained, &node), Err("caller JWT is not a client token"));
    // go-choria's ParseServerToken counts a server token with a tcs but no chain as expired.
    let odd = sign_jwt(&org, &server_claims(&orgv, &nodev, id, json!({"tcs": "abcd"})));
    assert_eq!(check(&org, id, &odd, &node), Err("caller JWT chain issuer expired"));
}

#[test]
fn signed_fleet_management_needs_a_delegated_signer() {
    let (org, user) = (ed_key(), ed_key());
    let (orgv, userv) = (org.verifying_key(), user.verifying_key());
    let perms = |sfm: bool| json!({"permissions": {"fleet_management": true, "signed_fleet_management": sfm}});
    let plain = sign_jwt(&org, &client_claims(&orgv, &userv, "up=rip", perms(false)));
    assert_eq!(check(&org, "up=rip", &plain, &user), Ok(()));
    let needs = sign_jwt(&org, &client_claims(&orgv, &userv, "up=rip", perms(true)));
    assert_eq!(check(&org, "up=rip", &needs, &user), Err("caller JWT requires authority delegation"));
    // go-choria's own case: a user made by the AAA login service with only this permission.
    let aaa = ChainIssuer::new(&org, json!({}));
    let delegated = json!({"permissions": {"signed_fleet_management": true}});
    let chained = aaa.issue(client_claims(&orgv, &userv, "up=rip", delegated), |_| {});
    assert_eq!(check(&org, "up=rip", &chained, &user), Err("caller JWT requires authority delegation"));
}

/// fleetbook with a token from a chain issuer reaches a secure fleet; with one from a chain
/// issuer another org issuer vouched for, the node stays silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_token_reaches_the_fleet_and_a_stranger_s_does_not() {
    let (org, user) = (ed_key(), ed_key());
    let (orgv, userv) = (org.verifying_key(), user.verifying_key());
    let cfg = SimConfig { secure_issuer: Some(hex::encode(orgv.as_bytes())), ..sim(2) };
    let w = World::start_tls(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let aaa = ChainIssuer::new(&org, json!({}));
    let token = aaa.issue(client_claims(&orgv, &userv, "up=rip", json!({})), |_| {});
    let (j, s) = write_creds(dir.path(), "chained", &token, &user);
    let r = w.fleetbook_jwt(&j, &s).args(["req", "rpcutil", "ping", "--json"]).run().await;
    r.assert_code(0);
    assert_eq!(r.json()["ok"].as_array().unwrap().len(), 2, "{}", r.stdout);
    assert!(w.sim.stats().rejected.is_empty(), "{:?}", w.sim.stats().rejected);

    let stranger = ChainIssuer::new(&ed_key(), json!({}));
    let token = stranger.issue(client_claims(&orgv, &userv, "up=rip", json!({})), |_| {});
    let (j, s) = write_creds(dir.path(), "stranger", &token, &user);
    let ddl = short_rpc_timeouts();
    let r = w
        .fleetbook_jwt(&j, &s)
        .args(["--ddl-dir", ddl.path().to_str().unwrap()])
        .args(["req", "rpcutil", "ping", "-I", "n001.example.net", "--json", "--discovery-timeout", "0.3"])
        .run()
        .await;
    r.assert_code(1);
    assert_eq!(r.json()["no_reply"], json!(["n001.example.net"]), "{}", r.stdout);
    let rejected = w.sim.stats().rejected;
    assert_eq!(rejected.get("caller JWT chain issuer not signed by the issuer"), Some(&1), "{rejected:?}");
}

/// `payload` (a v2 request) with `jwt` as its caller token in place of the one it carries;
/// the signature, over the request only, still holds.
fn with_caller(payload: &[u8], jwt: &str) -> bytes::Bytes {
    let mut transport: Value = serde_json::from_slice(payload).unwrap();
    let mut secure: Value =
        serde_json::from_slice(&STANDARD.decode(transport["data"].as_str().unwrap()).unwrap()).unwrap();
    secure["caller"] = json!(jwt);
    transport["data"] = json!(STANDARD.encode(secure.to_string()));
    transport.to_string().into()
}

/// What fleetbook refuses to send (it checks a token's purpose and permissions at load), sent
/// raw: one request signed by one key, with a client token for that key as caller it is
/// answered; with a server token or a `signed_fleet_management` token for the same key the
/// node stays silent and counts why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_and_delegation_tokens_get_no_answer() {
    use fleetbook::fleet::protocol::{Security, Version};
    let (org, key) = (ed_key(), ed_key());
    let (orgv, keyv) = (org.verifying_key(), key.verifying_key());
    let cfg = SimConfig { secure_issuer: Some(hex::encode(orgv.as_bytes())), ..sim(1) };
    let w = World::start_tls(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let client = sign_jwt(&org, &client_claims(&orgv, &keyv, "up=rip", json!({})));
    let (j, s) = write_creds(dir.path(), "client", &client, &key);
    let id = fleetbook::fleet::security::Ed25519Identity::load(&j, &s).unwrap();
    let nats = w.nats().await;
    let mut replies = crate::support::record(&nats, "mcollective.reply.x").await;
    let send = |jwt: String| {
        let body = r#"{"agent":"rpcutil","action":"ping","data":{}}"#;
        let payload = request(Version::V2, "up=rip", Security::Ed25519(id.clone()), body, chrono::Utc::now());
        let nats = nats.clone();
        async move {
            nats.publish("mcollective.node.n001.example.net", with_caller(&payload, &jwt)).await.unwrap();
            nats.flush().await.unwrap();
        }
    };
    send(client).await;
    crate::support::take(&mut replies, 1, Duration::from_secs(20), "a reply to the client token").await;

    let server = sign_jwt(&org, &server_claims(&orgv, &keyv, "n009.example.net", json!({})));
    let sfm = json!({"permissions": {"fleet_management": true, "signed_fleet_management": true}});
    let delegated = sign_jwt(&org, &client_claims(&orgv, &keyv, "up=rip", sfm));
    for (jwt, reason) in
        [(server, "caller JWT is not a client token"), (delegated, "caller JWT requires authority delegation")]
    {
        send(jwt).await;
        eventually(Duration::from_secs(20), reason, || w.sim.stats().rejected.get(reason) == Some(&1)).await;
    }
    w.settle().await;
    assert!(crate::support::drain(&mut replies).is_empty(), "a refused request was answered");
}
