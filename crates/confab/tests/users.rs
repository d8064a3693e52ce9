//! `confab user …` and `confab domain …` as an operator and a script run them: the built
//! binary on a data directory in a temporary directory, without a terminal (so passwords come
//! with --password-stdin and removals need --yes) and, for the prompts, on a terminal of its
//! own; every change checked through the management store itself.
#![cfg(unix)]

mod common;

use common::confab;
use common::store::*;
use common::terminal::Terminal;

#[test]
fn add_reads_the_password_from_stdin_and_stores_only_ha1() {
    let d = Deployment::new();
    let out = d.run(
        &[
            "user",
            "add",
            "alice@LocalHost",
            "--display-name",
            "Alice Liddell",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    );
    assert_success(&out);
    assert!(
        stdout(&out).contains("added alice@localhost"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).is_empty(), "no warning: {}", stderr(&out));

    let user = d.user("alice@localhost").expect("added");
    assert_eq!(user.pool, "default");
    assert_eq!(user.display_name.as_deref(), Some("Alice Liddell"));
    assert!(user.enabled);
    let credentials = d.credentials("alice@localhost");
    let mut algorithms: Vec<&str> = credentials.iter().map(|c| c.algorithm.as_str()).collect();
    algorithms.sort_unstable();
    assert_eq!(algorithms, ["MD5", "SHA-256", "SHA-512-256"]);
    for c in &credentials {
        assert_eq!(c.realm, "localhost");
        assert_eq!(c.ha1, expected_ha1(c, "alice", "correct horse battery"));
    }
    let files = d.store_files();
    assert!(
        !files
            .windows("correct horse battery".len())
            .any(|w| w == b"correct horse battery"),
        "the password itself is in the store's files"
    );

    // --json: the user as `show` gives it; the trailing CR LF of a Windows file is dropped.
    let added = json(&d.run(
        &["user", "add", "bob@localhost", "--password-stdin", "--json"],
        Some("bobs password\r\n"),
    ));
    assert_eq!(added["address"], "bob@localhost");
    assert_eq!(added["credentials"].as_array().map(Vec::len), Some(3));
    for c in d.credentials("bob@localhost") {
        assert_eq!(c.ha1, expected_ha1(&c, "bob", "bobs password"));
    }
}

#[test]
fn a_duplicate_user_is_refused_and_keeps_its_password() {
    let d = Deployment::new();
    d.add("alice@localhost", "first password");
    let before = d.credentials("alice@localhost");
    let head = d.changes();
    let out = d.run(
        &["user", "add", "alice@LOCALHOST", "--password-stdin"],
        Some("second password\n"),
    );
    assert_fails(&out, 1, "exists already");
    assert!(
        stderr(&out).contains("confab user passwd alice@localhost"),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.credentials("alice@localhost"), before);
    assert_eq!(d.changes(), head, "nothing changed");
}

#[test]
fn list_as_a_table_and_as_json_with_filters() {
    let d = Deployment::new();
    assert_success(&d.run(&["domain", "add", "example.com"], None));
    d.add("bob@localhost", "password 1");
    d.add("alice@localhost", "password 2");
    d.add("carol@example.com", "password 3");
    assert_success(&d.run(&["user", "disable", "bob@localhost"], None));

    let out = d.run(&["user", "list"], None);
    assert_success(&out);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("USER") && lines[0].contains("POOL"),
        "{text}"
    );
    assert!(lines[1].starts_with("carol@example.com"), "{text}");
    assert!(lines[2].starts_with("alice@localhost"), "{text}");
    assert!(
        lines[3].starts_with("bob@localhost") && lines[3].contains("no"),
        "{text}"
    );

    let all = json(&d.run(&["user", "list", "--json"], None));
    let names: Vec<&str> = all
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|u| u["address"].as_str())
        .collect();
    assert_eq!(
        names,
        ["carol@example.com", "alice@localhost", "bob@localhost"]
    );
    assert_eq!(all[2]["enabled"], false);
    assert_eq!(all[0]["pool"], "default");

    let local = json(&d.run(&["--json", "user", "list", "--domain", "LOCALHOST"], None));
    assert_eq!(local.as_array().map(Vec::len), Some(2));
    let pooled = json(&d.run(
        &[
            "user",
            "list",
            "--pool",
            "default",
            "--domain",
            "example.com",
            "--json",
        ],
        None,
    ));
    assert_eq!(pooled.as_array().map(Vec::len), Some(1));
    assert_eq!(pooled[0]["address"], "carol@example.com");

    let out = d.run(&["user", "list", "--pool", "defualt"], None);
    assert_fails(&out, 1, "its pools: default");
    let out = d.run(&["user", "list", "--domain", "example.net", "--json"], None);
    assert_fails(&out, 1, "no SIP domain 'example.net'");
    assert!(out.stdout.is_empty(), "no partial output");

    let empty = Deployment::new();
    let none = json(&empty.run(&["user", "list", "--json"], None));
    assert_eq!(none, serde_json::json!([]));
    assert_eq!(stdout(&empty.run(&["user", "list"], None)), "no users\n");
}

#[test]
fn show_never_prints_ha1_or_password() {
    let d = Deployment::new();
    d.add("alice@localhost", "correct horse battery");
    let credentials = d.credentials("alice@localhost");
    for args in [
        &["user", "show", "alice@localhost"][..],
        &["user", "show", "alice@localhost", "--json"][..],
    ] {
        let out = d.run(args, None);
        assert_success(&out);
        let everything = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!everything.contains("correct horse"), "{everything}");
        for c in &credentials {
            assert!(!everything.contains(&c.ha1), "{everything}");
        }
        assert!(
            !everything.to_ascii_lowercase().contains("ha1"),
            "{everything}"
        );
    }
    let text = stdout(&d.run(&["user", "show", "alice@localhost"], None));
    for part in [
        "alice@localhost",
        "pool:",
        "default",
        "enabled:",
        "MD5, SHA-256, SHA-512-256 (realm localhost)",
        "0 active",
    ] {
        assert!(text.contains(part), "lacks {part:?}: {text}");
    }
    let shown = json(&d.run(&["user", "show", "alice@localhost", "--json"], None));
    assert_eq!(shown["registrations"], 0);
    assert_eq!(shown["enabled"], true);
    assert_eq!(shown["credentials"][0]["realm"], "localhost");

    let out = d.run(&["user", "show", "nobody@localhost"], None);
    assert_fails(&out, 1, "no user nobody@localhost");
    assert!(
        stderr(&out).contains("confab user list"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn passwd_replaces_the_stored_ha1() {
    let d = Deployment::new();
    d.add("alice@localhost", "old password");
    let old = d.credentials("alice@localhost");
    let out = d.run(
        &["user", "passwd", "alice@localhost", "--password-stdin"],
        Some("new password\n"),
    );
    assert_success(&out);
    assert!(
        stdout(&out).contains("password of alice@localhost set"),
        "{}",
        stdout(&out)
    );
    let new = d.credentials("alice@localhost");
    assert_eq!(new.len(), 3);
    for c in &new {
        assert_eq!(c.ha1, expected_ha1(c, "alice", "new password"));
        assert!(
            !old.iter().any(|o| o.ha1 == c.ha1),
            "{} unchanged",
            c.algorithm
        );
    }

    let head = d.changes();
    let out = d.run(&["user", "passwd", "alice@localhost"], None);
    assert_fails(&out, 2, "--password-stdin");
    let out = d.run(
        &["user", "passwd", "nobody@localhost", "--password-stdin"],
        Some("whatever it is\n"),
    );
    assert_fails(&out, 1, "no user nobody@localhost");
    let out = d.run(
        &["user", "passwd", "alice@localhost", "--password-stdin"],
        Some(""),
    );
    assert_fails(&out, 1, "empty");
    assert_eq!(d.credentials("alice@localhost"), new);
    assert_eq!(d.changes(), head, "nothing changed");
}

#[test]
fn disable_and_enable() {
    let d = Deployment::new();
    d.add("alice@localhost", "a password");
    let out = d.run(&["user", "disable", "alice@localhost"], None);
    assert_success(&out);
    assert!(
        stdout(&out).contains("disabled alice@localhost"),
        "{}",
        stdout(&out)
    );
    assert!(!d.user("alice@localhost").expect("user").enabled);
    assert_eq!(d.credentials("alice@localhost").len(), 3, "kept");

    let again = json(&d.run(&["user", "disable", "alice@localhost", "--json"], None));
    assert_eq!(
        again,
        serde_json::json!({"address": "alice@localhost", "enabled": false, "changed": false})
    );
    let on = json(&d.run(&["user", "enable", "alice@localhost", "--json"], None));
    assert_eq!(on["changed"], true);
    assert!(d.user("alice@localhost").expect("user").enabled);
    assert_fails(
        &d.run(&["user", "enable", "nobody@localhost"], None),
        1,
        "no user nobody@localhost",
    );
}

#[test]
fn remove_needs_yes_without_a_terminal() {
    let d = Deployment::new();
    d.add("alice@localhost", "a password");
    let head = d.changes();
    let out = d.run(&["user", "remove", "alice@localhost"], None);
    assert_fails(&out, 2, "--yes");
    assert!(d.user("alice@localhost").is_some(), "not removed");
    assert_eq!(d.credentials("alice@localhost").len(), 3);
    assert_eq!(d.changes(), head);

    let out = d.run(&["user", "remove", "alice@localhost", "--yes"], None);
    assert_success(&out);
    assert!(
        stdout(&out).contains("removed alice@localhost"),
        "{}",
        stdout(&out)
    );
    assert!(d.user("alice@localhost").is_none());
    assert!(d.credentials("alice@localhost").is_empty());
    assert_fails(
        &d.run(&["user", "remove", "alice@localhost", "-y"], None),
        1,
        "no user alice@localhost",
    );

    d.add("bob@localhost", "a password");
    let removed = json(&d.run(
        &["user", "remove", "bob@localhost", "--yes", "--json"],
        None,
    ));
    assert_eq!(
        removed,
        serde_json::json!({"address": "bob@localhost", "removed": true})
    );
}

#[test]
fn an_unknown_domain_says_how_to_fix_it_and_changes_nothing() {
    let d = Deployment::new();
    let head = d.changes();
    let out = d.run(
        &["user", "add", "bob@example.org", "--password-stdin"],
        Some("a password\n"),
    );
    assert_fails(&out, 1, "`confab domain add example.org`");
    assert!(
        stderr(&out).contains("its domains: localhost"),
        "{}",
        stderr(&out)
    );
    assert!(d.user("bob@example.org").is_none());
    assert_eq!(d.changes(), head, "nothing changed");

    let out = d.run(
        &[
            "user",
            "add",
            "bob@localhost",
            "--pool",
            "pool-b",
            "--password-stdin",
        ],
        Some("a password\n"),
    );
    assert_fails(&out, 1, "no pool 'pool-b'");
    assert_eq!(d.changes(), head, "nothing changed");

    // The fix works.
    assert_success(&d.run(&["domain", "add", "example.org"], None));
    d.add("bob@example.org", "a password");
    let c = d.credentials("bob@example.org");
    assert!(c.iter().all(|c| c.realm == "example.org"), "{c:?}");
}

#[test]
fn a_bad_address_is_a_usage_error() {
    let d = Deployment::new();
    let head = d.changes();
    for bad in [
        "bob",
        "@localhost",
        "bob@",
        "bo b@localhost",
        "bob@exa mple.com",
    ] {
        let out = d.run(
            &["user", "add", bad, "--password-stdin"],
            Some("a password\n"),
        );
        assert_fails(&out, 2, "USER@DOMAIN");
        let out = d.run(&["user", "show", bad], None);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
    }
    // A password is never an argument.
    let out = d.run(&["user", "add", "bob@localhost", "secret"], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(d.changes(), head, "nothing changed");
}

#[test]
fn passwords_empty_short_and_on_several_lines() {
    let d = Deployment::new();
    let head = d.changes();
    for (input, says) in [
        ("", "empty"),
        ("\n", "empty"),
        ("two\nlines\n", "line break"),
    ] {
        let out = d.run(
            &["user", "add", "bob@localhost", "--password-stdin"],
            Some(input),
        );
        assert_fails(&out, 1, says);
    }
    let out = d.run(&["user", "add", "bob@localhost"], None);
    assert_fails(&out, 2, "--password-stdin");
    assert!(d.user("bob@localhost").is_none());
    assert_eq!(d.changes(), head, "nothing changed");

    let out = d.run(
        &["user", "add", "bob@localhost", "--password-stdin"],
        Some("abc\n"),
    );
    assert_success(&out);
    assert!(
        stderr(&out).contains("warning: the password has only 3"),
        "{}",
        stderr(&out)
    );
    for c in d.credentials("bob@localhost") {
        assert_eq!(c.ha1, expected_ha1(&c, "bob", "abc"));
    }
}

#[test]
fn domain_add_and_list() {
    let d = Deployment::new();
    let out = d.run(&["domain", "add", "Example.COM"], None);
    assert_success(&out);
    assert!(
        stdout(&out).contains("confab user add USER@example.com"),
        "{}",
        stdout(&out)
    );
    let added = json(&d.run(&["domain", "add", "example.net", "--json"], None));
    assert_eq!(added["name"], "example.net");
    assert_fails(
        &d.run(&["domain", "add", "example.com"], None),
        1,
        "already exists",
    );
    assert_fails(
        &d.run(&["domain", "add", "bad domain"], None),
        1,
        "e.g. example.com",
    );

    let text = stdout(&d.run(&["domain", "list"], None));
    let names: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["example.com", "example.net", "localhost"], "{text}");
    let listed = json(&d.run(&["domain", "list", "--json"], None));
    assert_eq!(listed.as_array().map(Vec::len), Some(3));
    assert_eq!(listed[2]["name"], "localhost");
}

#[test]
fn management_commands_never_create_a_deployment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("typo");
    for args in [&["user", "list"][..], &["domain", "add", "example.com"][..]] {
        let mut cmd = confab(args);
        cmd.arg("--data-dir").arg(&data);
        let out = run(cmd, None);
        assert_fails(&out, 1, "no management store at sqlite:");
        assert!(
            stderr(&out).contains("confab serve --data-dir"),
            "{}",
            stderr(&out)
        );
        assert!(!data.exists(), "nothing created");
    }
    // The same through CONFAB_DATA_DIR, as a script's environment gives it.
    let mut cmd = confab(&["user", "list"]);
    cmd.env("CONFAB_DATA_DIR", &data);
    assert_fails(&run(cmd, None), 1, "no management store");
    // A store URL that is not one is a usage error, and its password is not echoed.
    let mut cmd = confab(&["user", "list"]);
    cmd.env("CONFAB_STORE", "mysql://root:hunter2@db/confab");
    let out = run(cmd, None);
    assert_fails(&out, 2, "postgres://");
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));
}

#[test]
fn on_a_terminal_passwords_are_asked_twice_without_echo_and_removal_is_confirmed() {
    let d = Deployment::new();
    let data = d.data.to_str().expect("a UTF-8 path");
    let Some(mut tty) = Terminal::confab(&["user", "add", "alice@localhost", "--data-dir", data])
    else {
        return;
    };
    tty.expect("Password for alice@localhost: ");
    tty.type_line("typed secret 1");
    tty.expect("Repeat the password: ");
    tty.type_line("typed secret 1");
    let (code, shown) = tty.finish();
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("added alice@localhost"), "{shown}");
    assert!(!shown.contains("typed secret"), "echoed: {shown}");
    for c in d.credentials("alice@localhost") {
        assert_eq!(c.ha1, expected_ha1(&c, "alice", "typed secret 1"));
    }

    let head = d.changes();
    let mut tty = Terminal::confab(&["user", "add", "bob@localhost", "--data-dir", data])
        .expect("script ran before");
    tty.expect("Password for bob@localhost: ");
    tty.type_line("one password");
    tty.expect("Repeat the password: ");
    tty.type_line("another password");
    let (code, shown) = tty.finish();
    assert_eq!(code, Some(1), "{shown}");
    assert!(shown.contains("the two passwords differ"), "{shown}");
    assert!(d.user("bob@localhost").is_none());

    let mut tty = Terminal::confab(&["user", "remove", "alice@localhost", "--data-dir", data])
        .expect("script ran before");
    tty.expect("[y/N] ");
    tty.type_line("n");
    let (code, shown) = tty.finish();
    assert_eq!(code, Some(1), "{shown}");
    assert!(shown.contains("not removed"), "{shown}");
    assert!(d.user("alice@localhost").is_some());
    assert_eq!(d.changes(), head, "nothing changed");

    let mut tty = Terminal::confab(&["user", "remove", "alice@localhost", "--data-dir", data])
        .expect("script ran before");
    tty.expect("[y/N] ");
    tty.type_line("y");
    let (code, shown) = tty.finish();
    assert_eq!(code, Some(0), "{shown}");
    assert!(d.user("alice@localhost").is_none());
}

/// Writes `text` to a file beside the deployment's data directory, with `mode`.
fn csv_file(d: &Deployment, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = d.data.parent().expect("a parent").join(name);
    std::fs::write(&path, text).expect("write the CSV file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

#[test]
fn import_adds_every_user_with_credentials_as_add_does() {
    let d = Deployment::new();
    assert_success(&d.run(&["domain", "add", "example.com"], None));
    let file = csv_file(
        &d,
        "users.csv",
        "address,password,display_name\r\n\
         alice@localhost,correct horse battery,Alice Liddell\r\n\
         bob@Example.COM,\"a password, with a comma\",\"Bob \"\"the builder\"\"\"\r\n\
         carol@localhost,carols password\r\n",
        0o600,
    );
    let out = d.run(&["user", "import", file.to_str().expect("utf-8")], None);
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains("imported 3 users on pool default"), "{text}");
    assert!(text.contains("delete it"), "{text}");
    assert!(stderr(&out).is_empty(), "no warning: {}", stderr(&out));

    let bob = d.user("bob@example.com").expect("imported");
    assert_eq!(bob.pool, "default");
    assert_eq!(bob.display_name.as_deref(), Some("Bob \"the builder\""));
    assert!(d
        .user("carol@localhost")
        .expect("imported")
        .display_name
        .is_none());
    for (address, user, password) in [
        ("alice@localhost", "alice", "correct horse battery"),
        ("bob@example.com", "bob", "a password, with a comma"),
        ("carol@localhost", "carol", "carols password"),
    ] {
        let credentials = d.credentials(address);
        let mut algorithms: Vec<&str> = credentials.iter().map(|c| c.algorithm.as_str()).collect();
        algorithms.sort_unstable();
        assert_eq!(algorithms, ["MD5", "SHA-256", "SHA-512-256"], "{address}");
        for c in &credentials {
            assert_eq!(c.ha1, expected_ha1(c, user, password), "{address}");
        }
    }
    let files = d.store_files();
    assert!(
        !files
            .windows("carols password".len())
            .any(|w| w == b"carols password"),
        "a password itself is in the store's files"
    );

    // From standard input, with --json; a short password is accepted with a warning.
    let report = d.run(
        &["user", "import", "-", "--json"],
        Some("address,password\ndave@localhost,short\n"),
    );
    assert!(
        stderr(&report).contains("fewer than 8 characters (line 2)"),
        "{}",
        stderr(&report)
    );
    let report = json(&report);
    assert_eq!(report["imported"], 1);
    assert_eq!(report["skipped"], 0);
    assert_eq!(report["pool"], "default");
    assert_eq!(report["weak_passwords"], 1);
    assert!(d.user("dave@localhost").is_some());
}

#[test]
fn import_reports_every_bad_row_and_changes_nothing() {
    let d = Deployment::new();
    d.add("erin@localhost", "erins password");
    let head = d.changes();
    let file = csv_file(
        &d,
        "bad.csv",
        "address,password\n\
         ok1@localhost,fine password\n\
         not-an-address,fine password\n\
         frank@elsewhere.example,fine password\n\
         gina@localhost,\n\
         ok1@localhost,another password\n\
         erin@localhost,fine password\n\
         hana@localhost,fine password,extra field\n\
         ok2@localhost,fine password\n",
        0o644,
    );
    let out = d.run(&["user", "import", file.to_str().expect("utf-8")], None);
    assert_fails(&out, 1, "6 row(s) cannot be imported; nothing was changed");
    let err = stderr(&out);
    // The file is readable by others: a warning, before the refusal.
    assert!(err.contains("chmod 600"), "{err}");
    for (line, fragment) in [
        (3, "write USER@DOMAIN"),
        (4, "confab domain add elsewhere.example"),
        (5, "the password cannot be used"),
        (6, "first on line 2"),
        (7, "exists already"),
        (8, "3 field(s) where the header has 2"),
    ] {
        let want = format!("line {line}: ");
        let found = err
            .lines()
            .find(|l| l.trim_start().starts_with(&want))
            .unwrap_or_else(|| panic!("no {want:?} in {err}"));
        assert!(found.contains(fragment), "line {line}: {found}");
    }
    assert!(
        !err.contains("fine password"),
        "a password in a message: {err}"
    );
    assert_eq!(d.changes(), head, "nothing changed");
    assert!(d.user("ok1@localhost").is_none());
    assert!(d.user("ok2@localhost").is_none());

    // A pool that does not exist, and a file without its header.
    let good = csv_file(
        &d,
        "good.csv",
        "address,password\nok1@localhost,fine password\n",
        0o600,
    );
    let good = good.to_str().expect("utf-8");
    let out = d.run(&["user", "import", good, "--pool", "nowhere"], None);
    assert_fails(&out, 1, "no pool 'nowhere'");
    let out = d.run(
        &["user", "import", "-"],
        Some("ok1@localhost,fine password\n"),
    );
    assert_fails(
        &out,
        1,
        "must be the header row address,password[,display_name]",
    );
    let out = d.run(&["user", "import", "-"], Some("address,password\n"));
    assert_fails(&out, 1, "no users to import");
    assert_eq!(d.changes(), head, "nothing changed");
}

#[test]
fn import_with_skip_existing_leaves_existing_users_as_they_are() {
    let d = Deployment::new();
    d.add("alice@localhost", "alices first password");
    let before = d.credentials("alice@localhost");
    let out = d.run(
        &["user", "import", "-", "--skip-existing"],
        Some("address,password\nalice@localhost,another password\nbob@localhost,bobs password\n"),
    );
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains("imported 1 users"), "{text}");
    assert!(
        text.contains("1 existing user(s) left as they were"),
        "{text}"
    );
    assert_eq!(d.credentials("alice@localhost"), before);
    assert!(d.user("bob@localhost").is_some());
}

#[test]
fn import_stores_many_users_in_batches() {
    let d = Deployment::new();
    // More than two of the import's store transactions.
    let mut text = String::from("address,password\n");
    for n in 1..=2500 {
        text.push_str(&format!("user{n}@localhost,pw-{n}-long-enough\n"));
    }
    let head = d.changes();
    let report = json(&d.run(&["user", "import", "-", "--json"], Some(&text)));
    assert_eq!(report["imported"], 2500);
    // As `user add` one by one: user.added and user.credentials for each.
    assert_eq!(d.changes(), head + 5000);
    let listed = json(&d.run(&["user", "list", "--json"], None));
    assert_eq!(listed.as_array().map(Vec::len), Some(2500));
    for c in d.credentials("user2500@localhost") {
        assert_eq!(c.ha1, expected_ha1(&c, "user2500", "pw-2500-long-enough"));
    }
}
