//! `confab topology …` and `confab pool …` as an operator runs them: the built binary on a
//! data directory in a temporary directory, documents from tests/data/topology, every change
//! checked through the store and every refusal shown to change nothing.
#![cfg(unix)]

mod common;

use std::path::PathBuf;

use common::store::*;

fn data(name: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "data",
        "topology",
        name,
    ]
    .iter()
    .collect();
    path.display().to_string()
}

/// The good example, with the first start's domain kept so that no user is in the way.
fn good_with_localhost(dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(data("good.toml")).expect("good.toml");
    let text = text.replace(
        "domains = [\"example.com\", \"corp.example.com\"]",
        "domains = [\"example.com\", \"corp.example.com\", \"localhost\"]",
    );
    let path = dir.join("good-localhost.toml");
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

#[test]
fn validate_good_and_bad_documents() {
    let d = Deployment::new();
    let out = d.run(&["topology", "validate", &data("good.toml")], None);
    assert_success(&out);
    assert!(stdout(&out).contains("valid topology: 2 domain(s), 2 site(s), 4 pool(s)"));
    assert!(
        stderr(&out).contains("good.toml:14:1: warning: front-end pool 'default' has no servers"),
        "{}",
        stderr(&out)
    );

    let out = d.run(&["topology", "validate", &data("bad.toml")], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    for want in [
        "bad.toml:1:27: domain 'example.com' is listed twice (",
        "bad.toml:2:1: unknown key 'colour'",
        "bad.toml:13:8: pool 'fe-paris' is in site 'berlin'",
        "bad.toml:21:12: server udp://127.0.0.1:5070 is a server of pool 'fe-paris' too",
        "bad.toml:33:1: a [[pool]] has no name",
    ] {
        assert!(err.contains(want), "lacks {want:?}: {err}");
    }
    let verdict = d.run(&["topology", "validate", &data("bad.toml"), "--json"], None);
    assert_eq!(verdict.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&verdict.stdout).expect("json");
    assert_eq!(v["valid"], false);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(18));
    assert_eq!(v["problems"][0]["pos"]["line"], 1);

    let out = d.run(
        &["topology", "validate", "/nonexistent/topology.toml"],
        None,
    );
    assert_fails(&out, 2, "cannot read the topology document");
}

#[test]
fn publish_then_show_export_and_diff() {
    let d = Deployment::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let good = good_with_localhost(dir.path());
    let out = d.run(&["topology", "diff", &good], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("+ pool fe-paris"), "{}", stdout(&out));
    let head = d.changes();

    // Publishing is a normal change: requested, approved by another administrator, then
    // implemented. Until then nothing changes.
    let out = d.run(&["topology", "publish", &good, "--comment", "first"], None);
    assert_success(&out);
    assert!(
        stdout(&out).contains("confab change approve 1"),
        "{}",
        stdout(&out)
    );
    assert_eq!(d.changes(), head, "a request publishes nothing");
    let out = d.run(&["change", "approve", "1"], None);
    assert_fails(&out, 1, "another administrator with the approver role");
    let out = d.run(&["change", "implement", "1"], None);
    assert_fails(&out, 1, "not approved");
    assert_eq!(d.changes(), head);
    let out = publish_approved(&d.data, good.as_ref(), &["--comment", "first"]);
    let text = stdout(&out);
    assert!(
        text.contains("published topology version 1 (by admin)"),
        "{text}"
    );
    assert!(text.contains("+ pool kamailio"), "{text}");
    assert_eq!(d.changes(), head + 1, "one change-feed entry");

    let shown = json(&d.run(&["topology", "show", "--json"], None));
    assert_eq!(shown["version"]["version"], 1);
    assert_eq!(
        shown["version"]["published_by"], "admin",
        "the administrator who signed in, not the shell's user"
    );
    // The publication is a normal change record, approved by the other administrator, in
    // the audit log.
    let changes = json(&d.run(&["change", "list", "--json"], None));
    let publish = changes
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["state"] == "implemented")
        .expect("the publication's change record");
    assert_eq!(publish["class"], "normal");
    assert_eq!(publish["requested_by"], "admin");
    assert_eq!(publish["approvals"][0]["approver"], "approver");
    assert_eq!(publish["approvals"][0]["decision"], "approve");
    assert_eq!(publish["after"], "{\"version\":1}");
    assert_success(&d.run(&["audit", "verify"], None));
    // Implemented once.
    let id = publish["id"].to_string();
    assert_fails(
        &d.run(&["change", "implement", &id], None),
        1,
        "not approved",
    );
    assert_eq!(shown["version"]["comment"], "first");
    assert_eq!(shown["pools"].as_array().map(Vec::len), Some(4));
    let text = stdout(&d.run(&["topology", "show"], None));
    assert!(text.contains("topology version 1"), "{text}");
    assert!(text.contains("Paris data centre"), "{text}");

    // Unchanged document: no differences.
    let out = d.run(&["topology", "diff", &good], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "no differences\n");

    // Export round trip: the exported document validates, shows no difference, and publishes.
    let exported = dir.path().join("exported.toml");
    let exported = exported.display().to_string();
    assert_success(&d.run(&["topology", "export", "--output", &exported], None));
    assert_success(&d.run(&["topology", "validate", &exported], None));
    let out = d.run(&["topology", "diff", &exported], None);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = publish_approved(&d.data, exported.as_ref(), &[]);
    assert!(stdout(&out).contains("version 2"), "{}", stdout(&out));
    assert!(stdout(&out).contains("no changes"), "{}", stdout(&out));

    // A change shows field by field.
    let changed = std::fs::read_to_string(&exported)
        .expect("read")
        .replace("udp://127.0.0.1:5090", "tcp://127.0.0.1:5091");
    let changed_path = dir.path().join("changed.toml");
    std::fs::write(&changed_path, changed).expect("write");
    let out = d.run(
        &[
            "topology",
            "diff",
            &changed_path.display().to_string(),
            "--json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let diff: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(diff["changed"][0]["field"], "next_hop");
    assert_eq!(diff["changed"][0]["after"], "tcp://127.0.0.1:5091");
}

#[test]
fn publish_refused_when_a_pool_with_users_would_go() {
    let d = Deployment::new();
    d.add("alice@localhost", "password 1");
    let dir = tempfile::tempdir().expect("tempdir");
    let without_default = std::fs::read_to_string(good_with_localhost(dir.path()))
        .expect("read")
        .replace(
            "[[pool]]\nname = \"default\"\nkind = \"front-end\"\nservers = []\n",
            "",
        );
    let path = dir.path().join("no-default.toml");
    std::fs::write(&path, without_default).expect("write");
    let path = path.display().to_string();
    let head = d.changes();
    let before = d.state();
    let out = d.run(&["topology", "publish", &path], None);
    assert_fails(&out, 1, "nothing was changed");
    assert!(
        stderr(&out).contains("removes pool 'default', the home pool of 1 user(s)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.changes(), head);
    assert_eq!(d.state(), before);
    let out = d.run(&["topology", "validate", &path], None);
    assert_eq!(out.status.code(), Some(1));
    let out = d.run(&["topology", "diff", &path], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn pool_list_and_show() {
    let d = Deployment::new();
    d.add("alice@localhost", "password 1");
    let text = stdout(&d.run(&["pool", "list"], None));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("POOL") && lines[0].contains("USERS"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("default") && lines[1].contains("front-end"),
        "{text}"
    );
    let listed = json(&d.run(&["pool", "list", "--json"], None));
    assert_eq!(listed[0]["name"], "default");
    assert_eq!(listed[0]["users"], 1);
    assert_eq!(listed[0]["registrations"], 0);
    let shown = json(&d.run(&["pool", "show", "default", "--json"], None));
    assert_eq!(shown["kind"], "front-end");
    assert_eq!(shown["servers"].as_array().map(Vec::len), Some(0));
    let text = stdout(&d.run(&["pool", "show", "default"], None));
    assert!(text.contains("users          1"), "{text}");
    assert!(text.contains("front-ends     (none running)"), "{text}");
    let out = d.run(&["pool", "show", "nowhere"], None);
    assert_fails(&out, 1, "no pool 'nowhere'");
    // A running front-end announces itself with its heartbeat; `pool show` tells it up.
    with_store(&d.data, |store| async move {
        store
            .member_heartbeat("default", "udp://127.0.0.1:5060")
            .await
            .expect("heartbeat");
    });
    let text = stdout(&d.run(&["pool", "show", "default"], None));
    assert!(
        text.contains("front-ends     udp://127.0.0.1:5060 up, heartbeat"),
        "{text}"
    );
    let listed = json(&d.run(&["pool", "list", "--json"], None));
    assert_eq!(listed[0]["members"][0]["address"], "udp://127.0.0.1:5060");
    assert_eq!(listed[0]["members"][0]["up"], true);
    let text = stdout(&d.run(&["pool", "list"], None));
    assert!(
        text.lines().next().is_some_and(|l| l.contains(" UP ")),
        "{text}"
    );
}
