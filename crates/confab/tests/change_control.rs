//! Change control as an operator meets it: the first administrator and its credentials file,
//! each change a record and an audit entry, roles that refuse (saying which role would do,
//! changing nothing), a wrong token refused, and `confab audit verify` finding an entry edited
//! straight in the SQLite file.
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::store::*;
use confab_store::Role;

/// `confab ARGS` on `d` as administrator `name` with `token` (environment, not the file).
fn run_as(
    d: &Deployment,
    name: &str,
    token: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    let mut cmd = with_data_dir(args, &d.data);
    cmd.env("CONFAB_ADMIN", name)
        .env("CONFAB_ADMIN_TOKEN", token);
    run(cmd, stdin)
}

/// Adds administrator `name` with `roles` straight into the store; returns its token.
fn add_admin(d: &Deployment, name: &str, roles: &[Role]) -> String {
    let token = format!("{name}-secret-token-0123456789");
    let hash = confab_ops::control::token_hash(&token);
    let (name, roles) = (name.to_owned(), roles.to_vec());
    with_store(&d.data, |store| async move {
        store
            .add_administrator(&name, &roles, &hash, Some("admin"))
            .await
            .expect("administrator added");
    });
    token
}

#[test]
fn the_first_administrator_records_every_change() {
    let d = Deployment::new();
    let file = d.data.join("admin.credentials");
    let text = std::fs::read_to_string(&file).expect("credentials written");
    assert!(text.contains("name = \"admin\""), "{text}");
    let mode = std::fs::metadata(&file).expect("file").permissions().mode();
    assert_eq!(mode & 0o077, 0, "only its owner reads it: {mode:o}");
    let admins = json(&d.run(&["admin", "list", "--json"], None));
    assert_eq!(admins[0]["name"], "admin");
    assert_eq!(
        admins[0]["roles"],
        serde_json::json!(["viewer", "user-admin", "admin", "approver", "emergency"])
    );

    d.add("alice@localhost", "password 1");
    assert_success(&d.run(&["user", "disable", "alice@localhost"], None));
    let changes = json(&d.run(&["change", "list", "--json"], None));
    let titles: Vec<&str> = changes
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["title"].as_str().expect("title"))
        .collect();
    assert_eq!(
        titles,
        ["disable user alice@localhost", "add user alice@localhost"]
    );
    for c in changes.as_array().expect("changes") {
        assert_eq!(c["class"], "standard");
        assert_eq!(c["state"], "implemented");
        assert_eq!(c["requested_by"], "admin");
    }
    let disable = &changes[0];
    assert_eq!(disable["before"], "{\"enabled\":true}");
    assert_eq!(disable["after"], "{\"enabled\":false}");
    let shown = stdout(&d.run(&["change", "show", &disable["id"].to_string()], None));
    assert!(shown.contains("disable user alice@localhost"), "{shown}");
    let audit = json(&d.run(&["audit", "list", "--json"], None));
    let actions: Vec<&str> = audit
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    // Each command signed in, and each sign-in is in the log, by name.
    assert!(
        audit
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["action"] == "login"
                && e["actor"] == "admin"
                && e["detail"].as_str().is_some_and(|d| d.contains("cli"))),
        "{audit}"
    );
    let actions: Vec<&str> = actions.into_iter().filter(|a| *a != "login").collect();
    assert_eq!(
        actions,
        [
            "admin.add",
            "change.request",
            "change.implement",
            "change.request",
            "change.implement"
        ]
    );
    let out = d.run(&["audit", "verify"], None);
    assert_success(&out);
    // The five above and the sign-ins of the four commands before this one.
    assert!(
        stdout(&out).contains("intact: 9 entries"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn roles_refuse_what_they_do_not_grant_and_nothing_changes() {
    let d = Deployment::new();
    d.add("alice@localhost", "password 1");
    let viewer = add_admin(&d, "vera", &[Role::Viewer]);
    let user_admin = add_admin(&d, "uma", &[Role::UserAdmin]);
    let approver = add_admin(&d, "apollo", &[Role::Approver]);
    let responder = add_admin(&d, "erin", &[Role::Emergency]);
    let admin = add_admin(&d, "adam", &[Role::Admin]);
    // Another administrator's request, for the approvals below.
    let out = run_as(
        &d,
        "adam",
        &admin,
        &[
            "change",
            "request",
            "--reason",
            "r",
            "--json",
            "--",
            "source",
            "block",
            "192.0.2.0/24",
        ],
        None,
    );
    let requested = json(&out)["id"].to_string();
    let before = (d.changes(), d.state());

    let out = run_as(
        &d,
        "vera",
        &viewer,
        &["user", "disable", "alice@localhost"],
        None,
    );
    assert_fails(&out, 1, "administrator 'vera' may not manage users");
    assert!(
        stderr(&out).contains("user-admin"),
        "names the role: {}",
        stderr(&out)
    );
    for (name, token, args, refusal) in [
        (
            "uma",
            user_admin.as_str(),
            &["domain", "add", "example.org"][..],
            "may not change the topology",
        ),
        (
            "uma",
            user_admin.as_str(),
            &["change", "approve", &requested][..],
            "may not approve changes",
        ),
        (
            "uma",
            user_admin.as_str(),
            &[
                "change",
                "emergency",
                "--reason",
                "r",
                "--",
                "user",
                "disable",
                "alice@localhost",
            ][..],
            "may not make emergency changes",
        ),
        (
            "vera",
            viewer.as_str(),
            &["change", "review", &requested, "--comment", "c"][..],
            "may not approve changes",
        ),
        (
            "apollo",
            approver.as_str(),
            &["user", "disable", "alice@localhost"][..],
            "may not manage users",
        ),
        (
            "apollo",
            approver.as_str(),
            &["change", "implement", &requested][..],
            "is requested, not approved",
        ),
        // The emergency role alone does not make the operation's right: both are needed.
        (
            "erin",
            responder.as_str(),
            &[
                "change",
                "emergency",
                "--reason",
                "r",
                "--",
                "user",
                "disable",
                "alice@localhost",
            ][..],
            "may not manage users",
        ),
        (
            "erin",
            responder.as_str(),
            &["admin", "add", "eve", "--roles", "admin"][..],
            "may not manage administrators",
        ),
        (
            "adam",
            admin.as_str(),
            &["change", "approve", &requested][..],
            "may not approve changes",
        ),
        (
            "adam",
            admin.as_str(),
            &[
                "change",
                "emergency",
                "--reason",
                "r",
                "--",
                "source",
                "block",
                "192.0.2.1",
            ][..],
            "may not make emergency changes",
        ),
        (
            "uma",
            "not uma's token",
            &["user", "disable", "alice@localhost"][..],
            "cannot sign in as administrator 'uma'",
        ),
        (
            "nobody",
            "x",
            &["user", "disable", "alice@localhost"][..],
            "cannot sign in as administrator 'nobody'",
        ),
    ] {
        assert_fails(&run_as(&d, name, token, args, None), 1, refusal);
    }
    assert_eq!((d.changes(), d.state()), before, "refusals change nothing");
    // …but the refused sign-ins are on record, with why.
    let audit = json(&d.run(&["audit", "list", "--json"], None));
    let refused: Vec<(&str, &str)> = audit
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "login.refused")
        .map(|e| {
            (
                e["actor"].as_str().expect("actor"),
                e["detail"].as_str().expect("detail"),
            )
        })
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    let logins = audit
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "login")
        .count();
    assert!(
        logins >= 10,
        "the refused commands' sign-ins are recorded: {logins}"
    );
    assert!(refused[0].0 == "uma" && refused[0].1.contains("wrong token"));
    assert!(refused[1].0 == "nobody" && refused[1].1.contains("no such administrator"));

    // What the role grants works, recorded under the administrator's name.
    let out = run_as(
        &d,
        "uma",
        &user_admin,
        &["user", "disable", "alice@localhost"],
        None,
    );
    assert_success(&out);
    let changes = json(&d.run(&["change", "list", "--json"], None));
    assert_eq!(changes[0]["requested_by"], "uma");
    // A viewer reads.
    assert_success(&run_as(&d, "vera", &viewer, &["user", "list"], None));
}

#[test]
fn audit_verify_finds_an_entry_edited_in_the_file() {
    let d = Deployment::new();
    d.add("alice@localhost", "password 1");
    d.add("bob@localhost", "password 2");
    assert_success(&d.run(&["audit", "verify"], None));
    // What someone with the file and sqlite3 would do: rewrite an old entry.
    sql_on_file_blocking(
        &d.data,
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2",
    );
    let out = d.run(&["audit", "verify"], None);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("BROKEN at entry 2"),
        "{}",
        stdout(&out)
    );
    let out = d.run(&["audit", "verify", "--json"], None);
    assert_eq!(out.status.code(), Some(1));
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(verdict["intact"], false);
    assert_eq!(verdict["first_bad"], 2);
}

#[test]
fn a_normal_change_waits_for_another_administrator() {
    let d = Deployment::new();
    // The first administrator adds a second, an approver; its token is shown once.
    let out = d.run(
        &[
            "admin",
            "add",
            "olga",
            "--roles",
            "approver,viewer",
            "--json",
        ],
        None,
    );
    assert_success(&out);
    let olga = json(&out)["token"].as_str().expect("token").to_owned();
    let refused = d.run(&["admin", "add", "olga", "--roles", "viewer"], None);
    assert_fails(&refused, 1, "already exists");
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = common::write(
        dir.path(),
        "topology.toml",
        "domains = [\"localhost\", \"example.org\"]\n\n[[pool]]\nname = \"default\"\n\
         kind = \"front-end\"\nservers = []\n",
    );
    let doc = doc.display().to_string();
    let head = d.changes();

    // Requested, then rejected: nothing published.
    let first = json(&d.run(&["topology", "publish", &doc, "--json"], None));
    assert_eq!(first["class"], "normal");
    assert_eq!(first["state"], "requested");
    let id = first["change"].to_string();
    let out = run_as(
        &d,
        "olga",
        &olga,
        &["change", "reject", &id, "--comment", "not today"],
        None,
    );
    assert_success(&out);
    assert_fails(
        &d.run(&["change", "implement", &id], None),
        1,
        "is rejected",
    );
    assert_eq!(d.changes(), head, "nothing published");

    // Requested again, approved by olga, implemented by admin, reviewed by olga.
    let second = json(&d.run(&["topology", "publish", &doc, "--json"], None));
    let id = second["change"].to_string();
    assert_success(&run_as(
        &d,
        "olga",
        &olga,
        &["change", "approve", &id],
        None,
    ));
    // An approver does not implement what needs the admin role.
    let out = run_as(&d, "olga", &olga, &["change", "implement", &id], None);
    assert_fails(&out, 1, "may not change the topology");
    let out = d.run(&["change", "implement", &id], None);
    assert_success(&out);
    assert!(
        stdout(&out).contains("published topology version 1"),
        "{}",
        stdout(&out)
    );
    assert_eq!(d.changes(), head + 1);
    let out = run_as(
        &d,
        "olga",
        &olga,
        &["change", "review", &id, "--comment", "fine"],
        None,
    );
    assert_success(&out);
    let shown = json(&d.run(&["change", "show", &id, "--json"], None));
    assert_eq!(shown["state"], "reviewed");
    assert_eq!(shown["approvals"][0]["approver"], "olga");
    let audit = json(&d.run(&["audit", "list", "--json"], None));
    let actions: Vec<&str> = audit
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    for action in [
        "change.reject",
        "change.approve",
        "change.implement",
        "change.review",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    assert_success(&d.run(&["audit", "verify"], None));
}

#[test]
fn a_topology_publication_and_a_block_are_rolled_back() {
    let d = Deployment::new();
    d.add("alice@localhost", "password 1");
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = |name: &str, domains: &str| {
        common::write(
            dir.path(),
            name,
            &format!(
                "domains = [{domains}]\n\n[[pool]]\nname = \"default\"\nkind = \"front-end\"\n\
                 servers = []\n"
            ),
        )
    };
    let v1 = doc("v1.toml", "\"localhost\"");
    let v2 = doc("v2.toml", "\"localhost\", \"example.org\"");
    publish_approved(&d.data, &v1, &[]);
    publish_approved(&d.data, &v2, &[]);
    let domains =
        |d: &Deployment| json(&d.run(&["topology", "show", "--json"], None))["domains"].clone();
    assert_eq!(domains(&d), serde_json::json!(["example.org", "localhost"]));
    let changes = json(&d.run(
        &["change", "list", "--json", "--state", "implemented"],
        None,
    ));
    let second = changes[0]["id"].as_i64().expect("id");
    let first = changes[1]["id"].as_i64().expect("id");

    // The first publication has nothing before it to go back to.
    let out = d.run(
        &[
            "change",
            "rollback",
            &first.to_string(),
            "--reason",
            "try",
            "--emergency",
        ],
        None,
    );
    assert_fails(&out, 1, "the first publication");

    // The second, rolled back at once: version 1's document is published again.
    let out = d.run(
        &[
            "change",
            "rollback",
            &second.to_string(),
            "--reason",
            "example.org broke routing",
            "--emergency",
            "--json",
        ],
        None,
    );
    assert_success(&out);
    let undo = json(&out);
    assert_eq!(undo["class"], "emergency");
    assert_eq!(undo["rolls_back"], second);
    assert_eq!(domains(&d), serde_json::json!(["localhost"]));
    let shown = json(&d.run(&["topology", "show", "--json"], None));
    assert_eq!(
        shown["version"]["version"], 3,
        "a new version, the old document"
    );
    let rolled = json(&d.run(&["change", "show", &second.to_string(), "--json"], None));
    assert_eq!(rolled["state"], "rolled-back");
    assert_eq!(rolled["rolled_back_by"], undo["id"]);
    // Rolled back once.
    let out = d.run(
        &[
            "change",
            "rollback",
            &second.to_string(),
            "--reason",
            "again",
            "--emergency",
        ],
        None,
    );
    assert_fails(&out, 1, "only a change that was made is rolled back");

    // A user disabled by a standard change, re-enabled through a normal rollback.
    assert_success(&d.run(&["user", "disable", "alice@localhost"], None));
    let changes = json(&d.run(&["change", "list", "--json"], None));
    let disable = changes[0]["id"].to_string();
    let out = d.run(
        &[
            "change",
            "rollback",
            &disable,
            "--reason",
            "disabled by mistake",
            "--json",
        ],
        None,
    );
    assert_success(&out);
    let request = json(&out);
    assert_eq!(request["state"], "requested");
    assert_eq!(request["class"], "normal");
    let id = request["id"].to_string();
    let mut approve = common::confab(&["change", "approve", &id, "--data-dir"]);
    approve
        .arg(&d.data)
        .env("CONFAB_ADMIN", "approver")
        .env("CONFAB_ADMIN_TOKEN", APPROVER_TOKEN);
    assert_success(&run(approve, None));
    assert_success(&d.run(&["change", "implement", &id], None));
    assert!(d.user("alice@localhost").expect("alice").enabled);
    let rolled = json(&d.run(&["change", "show", &disable, "--json"], None));
    assert_eq!(rolled["state"], "rolled-back");
    assert_success(&d.run(&["audit", "verify"], None));
}

#[test]
fn role_changes_wait_for_approval() {
    let d = Deployment::new();
    let out = d.run(
        &["admin", "add", "olga", "--roles", "approver", "--json"],
        None,
    );
    assert_success(&out);
    let olga = json(&out)["token"].as_str().expect("token").to_owned();
    let out = d.run(
        &["admin", "add", "pat", "--roles", "approver", "--json"],
        None,
    );
    assert_success(&out);
    let pat = json(&out)["token"].as_str().expect("token").to_owned();
    assert_fails(
        &d.run(&["admin", "roles", "nobody", "--roles", "viewer"], None),
        1,
        "no administrator 'nobody'",
    );

    // olga loses the approver role: requested, approved by pat, implemented.
    let out = d.run(
        &["admin", "roles", "olga", "--roles", "viewer", "--json"],
        None,
    );
    assert_success(&out);
    let request = json(&out);
    assert_eq!(request["class"], "normal");
    let id = request["id"].to_string();
    let admins = json(&d.run(&["admin", "list", "--json"], None));
    let roles_of = |admins: &serde_json::Value, name: &str| {
        admins
            .as_array()
            .expect("admins")
            .iter()
            .find(|a| a["name"] == name)
            .expect("listed")["roles"]
            .clone()
    };
    assert_eq!(
        roles_of(&admins, "olga"),
        serde_json::json!(["approver"]),
        "unchanged until implemented"
    );
    assert_success(&run_as(&d, "pat", &pat, &["change", "approve", &id], None));
    assert_success(&d.run(&["change", "implement", &id], None));
    let admins = json(&d.run(&["admin", "list", "--json"], None));
    assert_eq!(roles_of(&admins, "olga"), serde_json::json!(["viewer"]));

    // The role change is rolled back from its record (the roles before it), as a normal
    // change of its own; then made again.
    let out = d.run(
        &["change", "rollback", &id, "--reason", "too soon", "--json"],
        None,
    );
    let rollback = json(&out)["id"].to_string();
    assert_success(&run_as(
        &d,
        "pat",
        &pat,
        &["change", "approve", &rollback],
        None,
    ));
    assert_success(&d.run(&["change", "implement", &rollback], None));
    let admins = json(&d.run(&["admin", "list", "--json"], None));
    assert_eq!(roles_of(&admins, "olga"), serde_json::json!(["approver"]));
    let shown = json(&d.run(&["change", "show", &id, "--json"], None));
    assert_eq!(shown["state"], "rolled-back");
    // The same again through `change request`.
    let out = d.run(
        &[
            "change",
            "request",
            "--reason",
            "olga moves team",
            "--json",
            "--",
            "admin",
            "roles",
            "olga",
            "viewer",
        ],
        None,
    );
    let id = json(&out)["id"].to_string();
    assert_success(&run_as(&d, "pat", &pat, &["change", "approve", &id], None));
    assert_success(&d.run(&["change", "implement", &id], None));
    let admins = json(&d.run(&["admin", "list", "--json"], None));
    assert_eq!(roles_of(&admins, "olga"), serde_json::json!(["viewer"]));

    // olga approves nothing any more; disabling pat waits for approval too.
    let out = d.run(&["admin", "disable", "pat", "--json"], None);
    let id = json(&out)["id"].to_string();
    assert_fails(
        &run_as(&d, "olga", &olga, &["change", "approve", &id], None),
        1,
        "may not approve changes",
    );
    assert_success(&run_as(&d, "pat", &pat, &["change", "approve", &id], None));
    assert_success(&d.run(&["change", "implement", &id], None));
    let out = run_as(
        &d,
        "pat",
        &pat,
        &["user", "disable", "nobody@localhost"],
        None,
    );
    assert_fails(&out, 1, "administrator 'pat' is disabled");
    let audit = json(&d.run(&["audit", "list", "--json"], None));
    assert!(audit
        .as_array()
        .expect("entries")
        .iter()
        .any(|e| e["action"] == "admin.roles" && e["subject"] == "olga"));
}

#[test]
fn change_request_checks_its_operation_and_changes_nothing_when_refused() {
    let d = Deployment::new();
    d.add("alice@localhost", "password 1");
    let before = (d.changes(), d.state());
    for (args, code, says) in [
        (
            &[
                "change", "request", "--reason", "r", "--", "user", "delete", "x",
            ][..],
            2,
            "no operation `user delete x`",
        ),
        (
            &[
                "change",
                "request",
                "--reason",
                "r",
                "--",
                "pool",
                "maintenance",
                "on",
                "nowhere",
            ][..],
            1,
            "no pool 'nowhere'",
        ),
        (
            &[
                "change",
                "request",
                "--reason",
                "r",
                "--",
                "pool",
                "maintenance",
                "on",
                "default",
            ][..],
            1,
            "has no paired pool",
        ),
        (
            &[
                "change", "request", "--reason", "r", "--", "admin", "roles", "admin", "boss",
            ][..],
            2,
            "boss",
        ),
        (
            &["change", "rollback", "first", "--reason", "r"][..],
            2,
            "`last`",
        ),
    ] {
        let out = d.run(args, None);
        assert_fails(&out, code, says);
    }
    assert_eq!((d.changes(), d.state()), before, "nothing changed");
    // A user disabled through a request, then the last change rolled back at once.
    let out = d.run(
        &[
            "change",
            "request",
            "--reason",
            "leaver",
            "--impact",
            "alice signed out",
            "--json",
            "--",
            "user",
            "disable",
            "alice@localhost",
        ],
        None,
    );
    let id = json(&out)["id"].to_string();
    assert_eq!(json(&out)["impact"], "alice signed out");
    approve_and_implement(&d.data, &id, &[]);
    assert!(!d.user("alice@localhost").expect("alice").enabled);
    let out = d.run(
        &[
            "change",
            "rollback",
            "last",
            "--emergency",
            "--reason",
            "wrong alice",
        ],
        None,
    );
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!("change {id} rolled back")),
        "{}",
        stdout(&out)
    );
    assert!(d.user("alice@localhost").expect("alice").enabled);
}

#[test]
fn the_catalogue_lists_the_standard_changes_and_whom_they_need() {
    let d = Deployment::new();
    let listed = json(&d.run(&["change", "catalogue", "--json"], None));
    let ops: Vec<&str> = listed
        .as_array()
        .expect("templates")
        .iter()
        .map(|t| t["op"].as_str().expect("op"))
        .collect();
    for op in ["user.add", "user.passwd", "user.disable", "user.move"] {
        assert!(ops.contains(&op), "{op} in {ops:?}");
    }
    for op in ["topology.publish", "admin.roles", "pool.maintenance"] {
        assert!(!ops.contains(&op), "{op} is not a standard change");
    }
    let add = listed
        .as_array()
        .expect("templates")
        .iter()
        .find(|t| t["op"] == "user.add")
        .expect("user.add");
    assert_eq!(add["roles"], serde_json::json!(["user-admin", "admin"]));
    // Each standard change made is recorded under one of the catalogue's operations.
    d.add("alice@localhost", "password 1");
    assert_success(&d.run(&["user", "disable", "alice@localhost"], None));
    for change in json(&d.run(&["change", "list", "--json"], None))
        .as_array()
        .expect("changes")
    {
        let op: serde_json::Value =
            serde_json::from_str(change["operation"].as_str().expect("operation")).expect("JSON");
        assert!(ops.contains(&op["op"].as_str().expect("op")), "{change}");
    }
}

#[test]
fn a_credentials_file_of_its_own_names_the_administrator() {
    let d = Deployment::new();
    let token = add_admin(&d, "uma", &[Role::UserAdmin]);
    let file = d.data.parent().expect("parent").join("uma.credentials");
    std::fs::write(&file, format!("name = \"uma\"\ntoken = \"{token}\"\n")).expect("written");
    let path = file.to_str().expect("utf-8");
    let out = d.run(
        &[
            "user",
            "add",
            "bob@localhost",
            "--password-stdin",
            "--credentials",
            path,
        ],
        Some("password 2\n"),
    );
    assert_success(&out);
    let changes = json(&d.run(&["change", "list", "--json"], None));
    assert_eq!(changes[0]["requested_by"], "uma");
    let before = d.state();
    let missing = d.data.join("nobody.credentials");
    let out = d.run(
        &[
            "user",
            "disable",
            "bob@localhost",
            "--credentials",
            missing.to_str().expect("utf-8"),
        ],
        None,
    );
    assert_fails(&out, 1, "cannot read the credentials file");
    std::fs::write(&file, "token = \"x\"\n").expect("written");
    let out = d.run(
        &["user", "disable", "bob@localhost", "--credentials", path],
        None,
    );
    assert_fails(&out, 1, "needs name = \"…\" and token = \"…\"");
    assert_eq!(d.state(), before, "nothing changed");
}
