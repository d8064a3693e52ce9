//! The first start of `confab serve`: it creates the data directory, the store and its
//! defaults, and says what to do next; the `domain` setting names the first domain; and users
//! are managed on the store while a server runs on it.
#![cfg(unix)]

mod common;

use common::store::*;
use common::*;

#[test]
fn first_start_creates_the_defaults_and_says_what_to_do_next() {
    let mut server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    let data = server.data_dir();
    let log = server.stderr();
    let udp = server.addr("udp");
    for part in [
        "First start",
        "the SIP domain localhost and the pool default",
        "confab user add alice@localhost --password-stdin",
        &format!("{udp} (UDP)"),
        "domain (realm)",
        "user name",
    ] {
        assert!(log.contains(part), "lacks {part:?}:\n{log}");
    }
    let status = server.signal("TERM");
    assert!(status.success(), "{status:?}; stderr:\n{}", server.stderr());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&data).expect("data dir").permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the data directory is private: {mode:o}");

    let mut list = confab(&["user", "list", "--json"]);
    list.arg("--data-dir").arg(&data);
    assert_eq!(json(&run(list, None)), serde_json::json!([]));
    let mut domains = confab(&["domain", "list", "--json"]);
    domains.arg("--data-dir").arg(&data);
    let domains = json(&run(domains, None));
    assert_eq!(domains[0]["name"], "localhost");
    assert_eq!(domains.as_array().map(Vec::len), Some(1));
}

#[test]
fn the_domain_setting_names_the_first_domain() {
    let mut cmd = confab(&[]);
    cmd.env("CONFAB_DOMAIN", "Sip.Example.TEST");
    let mut server = Running::start_with(cmd, &["--listen", "udp://127.0.0.1:0"], 1);
    let log = server.stderr();
    assert!(
        log.contains("confab user add alice@sip.example.test --password-stdin"),
        "{log}"
    );
    assert!(server.signal("TERM").success());
    let mut domains = confab(&["domain", "list", "--json"]);
    domains.arg("--data-dir").arg(server.data_dir());
    let domains = json(&run(domains, None));
    assert_eq!(domains.as_array().map(Vec::len), Some(1));
    assert_eq!(domains[0]["name"], "sip.example.test");
}

#[test]
fn a_user_is_added_while_a_server_runs() {
    let mut server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    let data = server.data_dir();
    let mut add = confab(&["user", "add", "alice@localhost", "--password-stdin"]);
    add.arg("--data-dir").arg(&data);
    let out = run(add, Some("correct horse battery\n"));
    assert_success(&out);
    let mut list = confab(&["--json", "user", "list"]);
    list.arg("--data-dir").arg(&data);
    let listed = json(&run(list, None));
    assert_eq!(listed[0]["address"], "alice@localhost");
    // The server is unaffected and still answers.
    assert_options_ok(
        &udp_options(server.addr("udp"), "while-adding"),
        "while-adding",
    );
    assert!(server.signal("TERM").success(), "{}", server.stderr());

    // A restart is not a first start, and keeps the user.
    let mut again = Running::start_in(
        confab(&[]),
        Some(&data),
        &["--listen", "udp://127.0.0.1:0"],
        1,
    );
    assert!(
        !again.stderr().contains("First start"),
        "{}",
        again.stderr()
    );
    assert!(again.signal("TERM").success());
    let credentials = with_store(&data, |store| async move {
        store
            .credentials(&addr("alice@localhost"), "localhost")
            .await
            .expect("credentials")
    });
    assert_eq!(credentials.len(), 3);
}
