//! The admin API of a running `confab serve`, over real HTTP on 127.0.0.1: every route of
//! docs/openapi.json answers 401 without a sign-in (except the open ones) and with a wrong
//! token, 403 to an administrator whose roles do not allow it; and each does what the CLI
//! does, through the same change control — users added, shown, disabled, given a password,
//! moved and removed; a topology publication requested, refused to its requester and
//! approved by another administrator, implemented, and rolled back; backups taken and
//! verified; migrations listed; the audit log read; `/metrics` counting SIP traffic and
//! `/healthz` answering.
#![cfg(unix)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use common::store::{admin_token, ensure_approver, json, run, with_data_dir, APPROVER_TOKEN};
use common::{udp_options, write, Running};
use serde_json::{json, Value};

/// The OpenAPI document as checked into the repository.
const OPENAPI: &str = include_str!("../../../docs/openapi.json");

struct Api {
    base: String,
    agent: ureq::Agent,
}

/// A response: status and JSON (or text) body.
struct Got {
    status: u16,
    body: Value,
    text: String,
}

impl Api {
    fn new(addr: SocketAddr) -> Api {
        Api {
            base: format!("http://{addr}"),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
        }
    }

    fn call(&self, method: &str, path: &str, auth: Option<&str>, body: Option<Value>) -> Got {
        let url = format!("{}{path}", self.base);
        let response = match method {
            "GET" | "DELETE" => {
                let mut r = if method == "GET" {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                };
                if let Some(a) = auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            _ => {
                let mut r = self.agent.post(&url);
                if let Some(a) = auth {
                    r = r.header("Authorization", a);
                }
                match body {
                    Some(b) => r.send_json(b),
                    None => r.send_empty(),
                }
            }
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        Got {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }
}

fn bearer(name: &str, token: &str) -> String {
    format!("Bearer {name}:{token}")
}

/// Every route of the document, with a concrete path.
fn routes() -> Vec<(String, String, bool)> {
    let doc: Value = serde_json::from_str(OPENAPI).expect("the OpenAPI document parses");
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let open = op["security"].as_array().is_some_and(Vec::is_empty);
            let concrete = path
                .replace("{address}", "nobody@localhost")
                .replace("{contact}", "other@localhost")
                .replace("{watcher}", "@example.org")
                .replace("{group}", "friends")
                .replace("{id}", "999")
                .replace("{version}", "1")
                .replace("{pool}", "kamailio")
                .replace("{test}", "registration");
            out.push((method.to_ascii_uppercase(), concrete, open));
        }
    }
    out
}

#[test]
fn every_route_refuses_a_caller_who_did_not_sign_in_or_may_not() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    let api = Api::new(server.admin.expect("the admin listener is announced"));
    let data = server.data_dir();
    // The served document is the one in the repository.
    let served = api.call("GET", "/api/openapi.json", None, None);
    assert_eq!(served.status, 200);
    assert_eq!(served.text, OPENAPI);
    // A viewer: may read, may not change.
    let added = json(&run(
        with_data_dir(
            &["admin", "add", "viewer", "--roles", "viewer", "--json"],
            &data,
        ),
        None,
    ));
    let viewer = bearer("viewer", added["token"].as_str().expect("token"));
    let wrong = bearer("admin", "not-its-token");
    let routes = routes();
    assert_eq!(routes.len(), 60, "the document lists every route");
    for (method, path, open) in &routes {
        let anonymous = api.call(method, path, None, None);
        if *open {
            assert_ne!(anonymous.status, 401, "{method} {path} is open");
            continue;
        }
        assert_eq!(anonymous.status, 401, "{method} {path}: {}", anonymous.text);
        assert!(anonymous.body["error"].is_string(), "{method} {path}");
        // A wrong token: 401, and 429 once the address failed too often (no longer
        // recorded one by one).
        let refused = api.call(method, path, Some(&wrong), None);
        assert!(
            [401, 429].contains(&refused.status),
            "{method} {path}: {}",
            refused.text
        );
        let by_viewer = api.call(method, path, Some(&viewer), Some(json!({})));
        if method == "GET" {
            assert!(
                [200, 404, 409].contains(&by_viewer.status),
                "{method} {path} is for viewers: {} {}",
                by_viewer.status,
                by_viewer.text
            );
        } else {
            // Refused for its roles, or (before the roles are weighed) for a target that
            // does not exist or a body that is not the route's.
            assert!(
                [403, 404, 409, 422].contains(&by_viewer.status),
                "{method} {path} is not for viewers: {} {}",
                by_viewer.status,
                by_viewer.text
            );
        }
    }
    // A path the API does not have: 404 in JSON.
    let none = api.call("GET", "/api/v1/nothing", Some(&viewer), None);
    assert_eq!(none.status, 404);
    assert!(none.body["error"]
        .as_str()
        .is_some_and(|e| e.contains("openapi")));
    // The refused sign-ins are in the audit log until the address failed too often; then one
    // entry says so, and a right token from the same address still signs in.
    let admin = bearer("admin", &admin_token(&data));
    let audit = api.call("GET", "/api/v1/audit?limit=1000", Some(&admin), None);
    assert_eq!(audit.status, 200, "{}", audit.text);
    let count = |action: &str| {
        audit
            .body
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["action"] == action)
            .count()
    };
    assert_eq!(count("login.refused"), 5, "{}", audit.text);
    assert_eq!(count("login.throttled"), 1, "{}", audit.text);
}

#[test]
fn the_api_does_what_the_cli_does_through_change_control() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    let api = Api::new(server.admin.expect("admin listener"));
    let data = server.data_dir();
    let admin = bearer("admin", &admin_token(&data));
    ensure_approver(&data);
    let approver = bearer("approver", APPROVER_TOKEN);

    let me = api.call("GET", "/api/v1/whoami", Some(&admin), None);
    assert_eq!(me.body["name"], "admin");
    // HTTP Basic with the same pair works too.
    let basic = {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("approver:{APPROVER_TOKEN}"))
        )
    };
    assert_eq!(
        api.call("GET", "/api/v1/whoami", Some(&basic), None).body["name"],
        "approver"
    );

    // Users.
    let added = api.call(
        "POST",
        "/api/v1/users",
        Some(&admin),
        Some(json!({"address": "alice@localhost", "password": "alice password 1"})),
    );
    assert_eq!(added.status, 201, "{}", added.text);
    let again = api.call(
        "POST",
        "/api/v1/users",
        Some(&admin),
        Some(json!({"address": "alice@localhost", "password": "alice password 1"})),
    );
    assert_eq!(again.status, 409, "{}", again.text);
    let bad = api.call(
        "POST",
        "/api/v1/users",
        Some(&admin),
        Some(json!({"address": "alice@localhost", "pasword": "typo"})),
    );
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(bad.text.contains("pasword"), "{}", bad.text);
    for i in 1..=3 {
        let r = api.call(
            "POST",
            "/api/v1/users",
            Some(&admin),
            Some(json!({"address": format!("u{i}@localhost"), "password": format!("user password {i}")})),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let list = api.call(
        "GET",
        "/api/v1/users?filter=u*@localhost",
        Some(&admin),
        None,
    );
    assert_eq!(list.body["total"], 3, "{}", list.text);
    let shown = api.call("GET", "/api/v1/users/alice@localhost", Some(&admin), None);
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body["pool"], "default", "{}", shown.text);
    assert_eq!(
        api.call("GET", "/api/v1/users/nobody@localhost", Some(&admin), None)
            .status,
        404
    );
    let off = api.call(
        "POST",
        "/api/v1/users/alice@localhost/disable",
        Some(&admin),
        None,
    );
    assert_eq!(off.status, 200, "{}", off.text);
    let shown = api.call("GET", "/api/v1/users/alice@localhost", Some(&admin), None);
    assert_eq!(shown.body["enabled"], false, "{}", shown.text);
    assert_eq!(
        api.call(
            "POST",
            "/api/v1/users/alice@localhost/enable",
            Some(&admin),
            None
        )
        .status,
        200
    );
    let weak = api.call(
        "POST",
        "/api/v1/users/alice@localhost/password",
        Some(&admin),
        Some(json!({"password": ""})),
    );
    assert_eq!(weak.status, 400, "{}", weak.text);
    assert_eq!(
        api.call(
            "POST",
            "/api/v1/users/alice@localhost/password",
            Some(&admin),
            Some(json!({"password": "a new long password"})),
        )
        .status,
        200
    );

    // The topology: a second pool, published by a normal change another administrator
    // approves.
    let topo = api.call("GET", "/api/v1/topology", Some(&admin), None);
    assert_eq!(topo.status, 200);
    let addr = server.addr("udp");
    let document = format!(
        "domains = [\"localhost\"]\n\n[[pool]]\nname = \"default\"\nkind = \"front-end\"\n\
         servers = [\"udp://{addr}\"]\n\n[[pool]]\nname = \"b\"\nkind = \"front-end\"\n\
         servers = [\"udp://127.0.0.1:9\"]\n"
    );
    let requested = api.call(
        "POST",
        "/api/v1/topology",
        Some(&admin),
        Some(json!({"document": document, "reason": "a second pool"})),
    );
    assert_eq!(requested.status, 202, "{}", requested.text);
    let id = requested.body["change"]["id"].as_i64().expect("change id");
    assert!(
        requested.text.contains("\"b\""),
        "the diff names pool b: {}",
        requested.text
    );
    let invalid = api.call(
        "POST",
        "/api/v1/topology",
        Some(&admin),
        Some(json!({"document": "domains = 3", "reason": "oops"})),
    );
    assert_eq!(invalid.status, 400, "{}", invalid.text);
    let own = api.call(
        "POST",
        &format!("/api/v1/changes/{id}/approve"),
        Some(&admin),
        None,
    );
    assert_eq!(
        own.status, 403,
        "the requester cannot approve: {}",
        own.text
    );
    // Nor may a viewer, nor an administrator without the approver role's right.
    let viewer = json(&run(
        with_data_dir(
            &["admin", "add", "viewer", "--roles", "viewer", "--json"],
            &data,
        ),
        None,
    ));
    let viewer = bearer("viewer", viewer["token"].as_str().expect("token"));
    for (method, path) in [
        ("POST", format!("/api/v1/changes/{id}/approve")),
        ("POST", "/api/v1/backups".to_owned()),
        ("POST", "/api/v1/users/alice@localhost/disable".to_owned()),
        ("DELETE", "/api/v1/users/alice@localhost".to_owned()),
    ] {
        let r = api.call(method, &path, Some(&viewer), None);
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text);
    }
    let early = api.call(
        "POST",
        &format!("/api/v1/changes/{id}/implement"),
        Some(&admin),
        None,
    );
    assert_eq!(early.status, 403, "not approved yet: {}", early.text);
    let approved = api.call(
        "POST",
        &format!("/api/v1/changes/{id}/approve"),
        Some(&approver),
        Some(json!({"comment": "looks right"})),
    );
    assert_eq!(approved.status, 200, "{}", approved.text);
    assert_eq!(approved.body["state"], "approved");
    let done = api.call(
        "POST",
        &format!("/api/v1/changes/{id}/implement"),
        Some(&admin),
        None,
    );
    assert_eq!(done.status, 200, "{}", done.text);
    let pools = api.call("GET", "/api/v1/pools", Some(&admin), None);
    assert!(pools.text.contains("\"b\""), "{}", pools.text);
    let v = api.call("GET", "/api/v1/topology/versions/1", Some(&admin), None);
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(
        api.call("GET", "/api/v1/topology/versions/99", Some(&admin), None)
            .status,
        404
    );

    // A move: three users at once (a standard change), then back by a rollback.
    let dry = api.call(
        "POST",
        "/api/v1/moves",
        Some(&admin),
        Some(json!({"from": "default", "filter": "u*@localhost", "to": "b", "dry_run": true})),
    );
    assert_eq!(
        dry.body["users"].as_array().map(Vec::len),
        Some(3),
        "{}",
        dry.text
    );
    let moved = api.call(
        "POST",
        "/api/v1/moves",
        Some(&admin),
        Some(json!({"from": "default", "filter": "u*@localhost", "to": "b"})),
    );
    assert_eq!(moved.status, 200, "{}", moved.text);
    assert_eq!(moved.body["moved"].as_array().map(Vec::len), Some(3));
    let move_id = moved.body["change"].as_i64().expect("move change");
    let shown = api.call("GET", "/api/v1/users/u2@localhost", Some(&admin), None);
    assert_eq!(shown.body["pool"], "b");
    let back = api.call(
        "POST",
        &format!("/api/v1/changes/{move_id}/rollback"),
        Some(&admin),
        Some(json!({"reason": "wrong pool", "emergency": true})),
    );
    assert_eq!(back.status, 200, "{}", back.text);
    let shown = api.call("GET", "/api/v1/users/u2@localhost", Some(&admin), None);
    assert_eq!(shown.body["pool"], "default");
    // The emergency rollback awaits its review.
    let review_id = back.body["change"]["id"].as_i64().expect("rollback change");
    let waiting = api.call(
        "GET",
        "/api/v1/changes?state=implemented&class=emergency",
        Some(&admin),
        None,
    );
    assert!(waiting
        .body
        .as_array()
        .expect("changes")
        .iter()
        .any(|c| c["id"] == review_id));
    let reviewed = api.call(
        "POST",
        &format!("/api/v1/changes/{review_id}/review"),
        Some(&approver),
        Some(json!({"comment": "right call"})),
    );
    assert_eq!(reviewed.status, 200, "{}", reviewed.text);
    assert_eq!(
        api.call("GET", "/api/v1/changes?state=bogus", Some(&admin), None)
            .status,
        400
    );

    // Backups.
    let taken = api.call(
        "POST",
        "/api/v1/backups",
        Some(&admin),
        Some(json!({"verify": true})),
    );
    assert_eq!(taken.status, 201, "{}", taken.text);
    assert_eq!(taken.body["verified"]["ok"], true, "{}", taken.text);
    let path = taken.body["path"].as_str().expect("path").to_owned();
    let verified = api.call(
        "POST",
        "/api/v1/backups/verify",
        Some(&admin),
        Some(json!({ "path": path })),
    );
    assert_eq!(verified.status, 200, "{}", verified.text);
    let not_one = write(&data, "not-a-backup.tar.gz", "nothing");
    let refused = api.call(
        "POST",
        "/api/v1/backups/verify",
        Some(&admin),
        Some(json!({ "path": not_one })),
    );
    assert_eq!(refused.status, 422, "{}", refused.text);
    let list = api.call("GET", "/api/v1/backups", Some(&admin), None);
    assert!(list
        .body
        .as_array()
        .expect("backups")
        .iter()
        .any(|b| b["path"] == path.as_str() && b["verified_ok"] == true));

    // Migrations: none planned.
    assert_eq!(
        api.call("GET", "/api/v1/migrations", Some(&admin), None)
            .body,
        json!([])
    );
    assert_eq!(
        api.call("GET", "/api/v1/migrations/kamailio", Some(&admin), None)
            .status,
        409
    );

    // Remove a user.
    assert_eq!(
        api.call("DELETE", "/api/v1/users/u3@localhost", Some(&admin), None)
            .status,
        200
    );
    assert_eq!(
        api.call("GET", "/api/v1/users/u3@localhost", Some(&admin), None)
            .status,
        404
    );

    // Any operation as a normal change, or at once as an emergency one.
    let requested = api.call(
        "POST",
        "/api/v1/changes",
        Some(&admin),
        Some(json!({
            "operation": {"op": "user.disable", "address": "u1@localhost"},
            "reason": "leaves the company",
        })),
    );
    assert_eq!(requested.status, 202, "{}", requested.text);
    assert_eq!(requested.body["change"]["state"], "requested");
    let unknown = api.call(
        "POST",
        "/api/v1/changes",
        Some(&admin),
        Some(json!({"operation": {"op": "user.teleport"}, "reason": "x"})),
    );
    assert_eq!(unknown.status, 422, "{}", unknown.text);
    let blocked = api.call(
        "POST",
        "/api/v1/changes/emergency",
        Some(&admin),
        Some(json!({
            "operation": {"op": "source.block", "cidr": "203.0.113.0/24"},
            "reason": "password guessing from there",
        })),
    );
    assert_eq!(blocked.status, 200, "{}", blocked.text);
    assert_eq!(blocked.body["change"]["class"], "emergency");
    let sources = api.call("GET", "/api/v1/sources", Some(&admin), None);
    assert_eq!(
        sources.body[0]["cidr"], "203.0.113.0/24",
        "{}",
        sources.text
    );
    let catalogue = api.call("GET", "/api/v1/catalogue", Some(&admin), None);
    assert!(catalogue
        .body
        .as_array()
        .expect("templates")
        .iter()
        .any(|t| t["op"] == "user.move"));

    // Domains, administrators, the inventory, a contact list.
    let d = api.call(
        "POST",
        "/api/v1/domains",
        Some(&admin),
        Some(json!({"name": "example.org"})),
    );
    assert_eq!(d.status, 201, "{}", d.text);
    assert!(api
        .call("GET", "/api/v1/domains", Some(&admin), None)
        .text
        .contains("example.org"));
    let added = api.call(
        "POST",
        "/api/v1/administrators",
        Some(&admin),
        Some(json!({"name": "helpdesk", "roles": ["user-admin"]})),
    );
    assert_eq!(added.status, 201, "{}", added.text);
    let helpdesk = bearer("helpdesk", added.body["token"].as_str().expect("token"));
    assert_eq!(
        api.call("GET", "/api/v1/whoami", Some(&helpdesk), None)
            .body["roles"],
        json!(["user-admin"])
    );
    let bad_role = api.call(
        "POST",
        "/api/v1/administrators",
        Some(&admin),
        Some(json!({"name": "x", "roles": ["god"]})),
    );
    assert_eq!(bad_role.status, 400, "{}", bad_role.text);
    let admins = api.call("GET", "/api/v1/administrators", Some(&admin), None);
    assert_eq!(
        admins.body.as_array().map(Vec::len),
        Some(4),
        "{}",
        admins.text
    );
    let inventory = api.call("GET", "/api/v1/inventory?pool=default", Some(&admin), None);
    assert_eq!(
        inventory.body.as_array().map(Vec::len),
        Some(3),
        "{}",
        inventory.text
    );
    let contacts = api.call(
        "GET",
        "/api/v1/users/alice@localhost/contacts",
        Some(&admin),
        None,
    );
    assert_eq!(contacts.status, 200, "{}", contacts.text);

    // A bulk import: all or nothing, every bad user reported.
    let bad = api.call(
        "POST",
        "/api/v1/users/import",
        Some(&admin),
        Some(json!({"users": [
            {"address": "i1@localhost", "password": "import password 1"},
            {"address": "i2@nowhere.example", "password": "import password 2"},
            {"address": "i3@localhost", "password": ""},
        ]})),
    );
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(
        bad.text.contains("user 2") && bad.text.contains("user 3"),
        "{}",
        bad.text
    );
    assert_eq!(
        api.call("GET", "/api/v1/users/i1@localhost", Some(&admin), None)
            .status,
        404,
        "nothing imported"
    );
    let good = api.call(
        "POST",
        "/api/v1/users/import",
        Some(&admin),
        Some(json!({"users": [
            {"address": "i1@localhost", "password": "import password 1"},
            {"address": "i2@localhost", "password": "import password 2", "display_name": "Two"},
        ], "pool": "b"})),
    );
    assert_eq!(good.status, 201, "{}", good.text);
    // Contact groups and presence rules.
    let g = api.call(
        "POST",
        "/api/v1/users/alice@localhost/contact-groups",
        Some(&admin),
        Some(json!({"name": "team"})),
    );
    assert_eq!(g.status, 201, "{}", g.text);
    let renamed = api.call(
        "POST",
        "/api/v1/users/alice@localhost/contact-groups/team",
        Some(&admin),
        Some(json!({"name": "friends"})),
    );
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let rule = api.call(
        "POST",
        "/api/v1/users/alice@localhost/presence-rules",
        Some(&admin),
        Some(json!({"watcher": "@example.org", "level": "blocked"})),
    );
    assert_eq!(rule.status, 200, "{}", rule.text);
    let bad_level = api.call(
        "POST",
        "/api/v1/users/alice@localhost/presence-rules",
        Some(&admin),
        Some(json!({"watcher": "@example.org", "level": "enemies"})),
    );
    assert_eq!(bad_level.status, 400, "{}", bad_level.text);
    // A backup; then the rule and the group removed; the backup gives them back.
    let taken = api.call("POST", "/api/v1/backups", Some(&admin), None);
    assert_eq!(taken.status, 201, "{}", taken.text);
    let archive = taken.body["path"].as_str().expect("path").to_owned();
    let gone = api.call(
        "DELETE",
        "/api/v1/users/alice@localhost/presence-rules/@example.org",
        Some(&admin),
        None,
    );
    assert_eq!(gone.status, 200, "{}", gone.text);
    let gone = api.call(
        "DELETE",
        "/api/v1/users/alice@localhost/contact-groups/friends",
        Some(&admin),
        None,
    );
    assert_eq!(gone.status, 200, "{}", gone.text);
    let rules = api.call(
        "GET",
        "/api/v1/users/alice@localhost/presence-rules",
        Some(&admin),
        None,
    );
    assert!(!rules.text.contains("blocked"), "{}", rules.text);
    let restored = api.call(
        "POST",
        "/api/v1/backups/restore-users",
        Some(&admin),
        Some(json!({"archive": archive, "users": ["alice@localhost"]})),
    );
    assert_eq!(restored.status, 200, "{}", restored.text);
    let rules = api.call(
        "GET",
        "/api/v1/users/alice@localhost/presence-rules",
        Some(&admin),
        None,
    );
    assert!(rules.text.contains("blocked"), "restored: {}", rules.text);
    // A topology document checked without publishing it.
    let checked = api.call(
        "POST",
        "/api/v1/topology/validate",
        Some(&admin),
        Some(json!({"document": "domains = [\"localhost\"]\n[[pool]]\nname = \"x y\"\n"})),
    );
    assert_eq!(checked.body["valid"], false, "{}", checked.text);

    // Synthetic transactions: refused without test users, run with them.
    let none = api.call(
        "POST",
        "/api/v1/pools/default/tests/registration",
        Some(&admin),
        None,
    );
    assert_eq!(none.status, 409, "{}", none.text);
    let setup = api.call(
        "POST",
        "/api/v1/pools/default/tests/setup?domain=localhost",
        Some(&admin),
        None,
    );
    assert_eq!(setup.status, 201, "{}", setup.text);
    for test in ["registration", "im", "presence"] {
        let r = api.call(
            "POST",
            &format!("/api/v1/pools/default/tests/{test}"),
            Some(&admin),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["passed"], true, "{test}: {}", r.text);
    }

    // Status, metrics and health.
    let status = api.call("GET", "/api/v1/status?audit=true", Some(&admin), None);
    assert_eq!(status.body["audit_intact"], true, "{}", status.text);
    assert!(status.body["last_verified_backup"].is_object());
    let r = udp_options(addr, "metrics-options-1");
    assert_eq!(r.status(), Some(200));
    let metrics = api.call("GET", "/metrics", None, None);
    assert_eq!(metrics.status, 200);
    for line in [
        "confab_sip_requests_total{method=\"OPTIONS\"} ",
        "confab_sip_responses_total{method=\"OPTIONS\",code=\"200\"} ",
        "confab_pool_users{pool=\"default\"} 5",
        "confab_pool_users{pool=\"b\"} 2",
        "confab_store_up 1",
        "confab_changes_awaiting_approval 1",
        "confab_last_backup_age_seconds ",
    ] {
        assert!(metrics.text.contains(line), "{line}:\n{}", metrics.text);
    }
    let families: BTreeSet<&str> = metrics
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for f in [
        "confab_sip_transactions_active",
        "confab_registered_users",
        "confab_presence_subscriptions",
        "confab_store_latency_seconds",
        "confab_emergency_reviews_overdue",
    ] {
        assert!(families.contains(f), "{f} in {families:?}");
    }
    let health = api.call("GET", "/healthz", None, None);
    assert_eq!((health.status, &health.body["status"]), (200, &json!("ok")));
}

/// The migration through the API, as far as it goes without a Kamailio running (the whole
/// migration is `migrate_kamailio.rs`): merge (a normal change), import, plan, the plan phase
/// passed, the routing block, Kamailio's table, a contact added and removed, a rollback of
/// something that is not a move refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_is_driven_through_the_api() {
    use sqlx::Connection as _;
    let server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    let data = server.data_dir();
    let api_addr = server.admin.expect("admin listener");
    let db = data.parent().expect("parent").join("kamailio.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .expect("db");
    sqlx::raw_sql(
        "CREATE TABLE subscriber (id INTEGER PRIMARY KEY, username TEXT NOT NULL DEFAULT '', \
         domain TEXT NOT NULL DEFAULT '', password TEXT NOT NULL DEFAULT '', \
         ha1 TEXT NOT NULL DEFAULT '', ha1b TEXT NOT NULL DEFAULT ''); \
         INSERT INTO subscriber (username, domain, password) VALUES \
         ('k1', 'localhost', 'kamailio-one'), ('k2', 'localhost', 'kamailio-two'), \
         ('k3', 'localhost', 'kamailio-three');",
    )
    .execute(&mut conn)
    .await
    .expect("subscribers");
    conn.close().await.expect("close");
    let db_url = format!("sqlite://{}", db.display());
    // The front-end pool lists its server: Kamailio's routing block relays to it.
    let doc = format!(
        "domains = [\"localhost\"]\n\n[[pool]]\nname = \"default\"\nkind = \"front-end\"\n\
         servers = [\"udp://{}\"]\n",
        server.addr("udp")
    );
    common::store::publish_approved(
        &data,
        &write(data.parent().expect("parent"), "topology.toml", &doc),
        &[],
    );
    let token = admin_token(&data);
    ensure_approver(&data);
    // ureq blocks: the calls run on a thread of their own.
    let report = tokio::task::spawn_blocking(move || {
        let api = Api::new(api_addr);
        let admin = bearer("admin", &token);
        let approver = bearer("approver", APPROVER_TOKEN);
        let merge = api.call(
            "POST",
            "/api/v1/migrations/kamailio/merge",
            Some(&admin),
            Some(json!({"next_hop": "udp://127.0.0.1:9"})),
        );
        assert_eq!(merge.status, 202, "{}", merge.text);
        let id = merge.body["change"]["id"].as_i64().expect("change");
        assert_eq!(
            api.call(
                "POST",
                &format!("/api/v1/changes/{id}/approve"),
                Some(&approver),
                None
            )
            .status,
            200
        );
        assert_eq!(
            api.call(
                "POST",
                &format!("/api/v1/changes/{id}/implement"),
                Some(&admin),
                None
            )
            .status,
            200
        );
        let import = api.call(
            "POST",
            "/api/v1/migrations/kamailio/import",
            Some(&admin),
            Some(json!({ "db": db_url })),
        );
        assert_eq!(import.body["imported"], 3, "{}", import.text);
        let plan = api.call(
            "POST",
            "/api/v1/migrations",
            Some(&admin),
            Some(json!({
                "system": "kamailio", "db": db_url, "legacy_pool": "kamailio",
                "pilot_pool": "default", "legacy_account": "k3@localhost",
                "pilot_account": "k1@localhost", "legacy_password": "kamailio-three",
                "pilot_password": "kamailio-one",
            })),
        );
        assert_eq!(plan.status, 201, "{}", plan.text);
        let advanced = api.call(
            "POST",
            "/api/v1/migrations/kamailio/advance",
            Some(&admin),
            None,
        );
        assert_eq!(advanced.status, 200, "{}", advanced.text);
        assert_eq!(advanced.body["migration"]["phase"], "prepare");
        let refused = api.call(
            "POST",
            "/api/v1/migrations/kamailio/advance",
            Some(&admin),
            None,
        );
        assert_eq!(refused.status, 409, "no verified backup: {}", refused.text);
        let checked = api.call(
            "POST",
            "/api/v1/migrations/kamailio/verify",
            Some(&admin),
            None,
        );
        assert_eq!(checked.body["passed"], false, "{}", checked.text);
        let block = api.call(
            "GET",
            "/api/v1/migrations/kamailio/legacy-config",
            Some(&admin),
            None,
        );
        assert!(
            block.text.contains("route[CONFAB_TARGET]"),
            "{}",
            block.text
        );
        let synced = api.call(
            "POST",
            "/api/v1/migrations/kamailio/sync",
            Some(&admin),
            None,
        );
        assert_eq!(synced.body["rows"], 0, "{}", synced.text);
        let not_a_move = api.call(
            "POST",
            "/api/v1/migrations/kamailio/rollback",
            Some(&admin),
            Some(json!({"change": id, "reason": "x"})),
        );
        assert_eq!(not_a_move.status, 409, "{}", not_a_move.text);
        let added = api.call(
            "POST",
            "/api/v1/users/k1@localhost/contacts",
            Some(&admin),
            Some(json!({"address": "k2@localhost"})),
        );
        assert_eq!(added.status, 201, "{}", added.text);
        let list = api.call(
            "GET",
            "/api/v1/users/k1@localhost/contacts",
            Some(&admin),
            None,
        );
        assert!(list.text.contains("k2@localhost"), "{}", list.text);
        let removed = api.call(
            "DELETE",
            "/api/v1/users/k1@localhost/contacts/k2@localhost",
            Some(&admin),
            None,
        );
        assert_eq!(removed.status, 200, "{}", removed.text);
        api.call("GET", "/api/v1/migrations/kamailio", Some(&admin), None)
    })
    .await
    .expect("the API calls");
    assert_eq!(report.body["phase"], "prepare", "{}", report.text);
    assert!(report.text.contains("advance refused"), "{}", report.text);
}

/// A client that never finishes its request's headers is cut off (after the admin listener's
/// header timeout, 10 s) while others are served meanwhile.
#[test]
fn a_slow_client_is_cut_off_without_holding_the_listener() {
    use std::io::{Read, Write};
    let server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    let addr = server.admin.expect("admin listener");
    let mut slow = std::net::TcpStream::connect(addr).expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: confab\r\n")
        .expect("half a request");
    slow.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    // Others are served meanwhile.
    let api = Api::new(addr);
    assert_eq!(api.call("GET", "/healthz", None, None).status, 200);
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let read = slow.read_to_end(&mut rest);
    assert!(
        read.is_ok() || rest.is_empty(),
        "the connection is closed, not left hanging: {read:?}"
    );
    let text = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || text.starts_with("HTTP/1.1 408"),
        "closed, or told 408: {text}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "cut off by the header timeout, not by the test's own"
    );
}
