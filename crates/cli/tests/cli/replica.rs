//! A read replica (a hot standby streaming from the primary) serves the listings that may lag —
//! audit queries and the operator's grant pages — and nothing else: releases and the app's own
//! grant list keep working with the replica down, the listings fail closed and come back with
//! it.

use serde_json::{Value, json};

use super::faults::{serving, wait_for};
use super::own_postgres::OwnPostgres;
use super::{Signed, stdout};

#[test]
fn listings_that_may_lag_read_the_replica_and_releases_never_do() {
    let primary = OwnPostgres::start();
    let standby = OwnPostgres::standby_of(&primary);
    let dir = tempfile::tempdir().unwrap();
    let value = format!("replica-secret-{}", uuid::Uuid::new_v4().simple());
    let (op, grant) = serving(
        dir.path(),
        &primary.url(),
        &value,
        &[("ALTER_DATABASE_REPLICA_URL", &standby.url())],
    );
    let http = reqwest::blocking::Client::new();
    let release = || {
        let body = json!({
            "grant_id": grant,
            "request": {"method": "GET", "url": "https://api.example.com/v1/items"},
        });
        let (status, text) = Signed::new(&op.api_key, "POST", "/sdk/token", &body)
            .send(&http, &op.addr)
            .unwrap();
        assert_eq!(status, 200, "{text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["access_token"], value.as_str());
        answer["token_generation"].as_str().unwrap().to_owned()
    };
    let listed = |id: &str| {
        let out = op.run(&["audit", "export", "--action", "credential.released"]);
        out.status.success() && stdout(&out).contains(id)
    };

    // The release's event reaches the audit listing once the standby has replayed it.
    let first = release();
    wait_for("the standby to replay the release", || listed(&first));

    // Standby down: releases and the app's own grant list (the primary) go on; the
    // operator's listings, which read the standby, fail and say so.
    standby.stop_immediate();
    let while_down = release();
    let (status, text) = Signed::new(&op.api_key, "POST", "/sdk/grants/list", &json!({}))
        .send(&http, &op.addr)
        .unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(&grant), "{text}");
    let audit = op.run(&["audit", "export", "--action", "credential.released"]);
    assert!(
        !audit.status.success(),
        "the audit listing read the standby"
    );
    let grants = op.run(&["grant", "list", "--json"]);
    assert!(
        !grants.status.success(),
        "the operator's grants read the standby"
    );
    // Verification reads the chain on the primary.
    let verify = stdout(&op.run(&["audit", "verify"]));
    assert!(verify.starts_with("ok: "), "{verify}");

    // Back up, it catches up with what was released meanwhile.
    standby.start_again();
    wait_for("the standby to catch up", || listed(&while_down));
    assert!(listed(&first));
    let grants: Value =
        serde_json::from_str(&stdout(&op.run(&["grant", "list", "--json"]))).unwrap();
    assert!(grants.to_string().contains(&grant));
}
