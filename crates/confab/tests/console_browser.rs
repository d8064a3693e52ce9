//! The web console in a real browser: headless Chromium (Debian's package) driven by
//! playwright-core from npm (`tests/browser/console.mjs`). A deployment with 150 users on
//! pool `default` and a pool `b`; in the browser the administrator signs in and moves the
//! users of `default` to `b` — a normal change, since it is more than 100 — the approver
//! approves it in a session of its own, the administrator implements it and watches the users
//! arrive on `b`. The store is checked afterwards, and the screenshots are printed into the
//! log (base64 PNG between markers) and kept nowhere else.
//!
//! `#[ignore]`d: it needs Chromium and Node with playwright-core; `scripts/console-browser.sh`
//! installs them and runs it.
#![cfg(unix)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::store::{
    admin_token, assert_success, ensure_approver, publish_approved, run, with_data_dir,
    APPROVER_TOKEN,
};
use common::{write, Running};

const USERS: usize = 150;

#[test]
#[ignore = "needs Chromium and playwright-core: run scripts/console-browser.sh"]
fn an_operator_moves_users_through_the_console_in_chromium() {
    let dir: PathBuf = std::env::var_os("CONSOLE_BROWSER_DIR")
        .map(PathBuf::from)
        .expect(
            "CONSOLE_BROWSER_DIR: where playwright-core is installed (scripts/console-browser.sh)",
        );
    let server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    let data = server.data_dir();
    let mut csv = String::from("address,password\n");
    for i in 1..=USERS {
        csv.push_str(&format!("web{i}@localhost,browser-user-password-{i}\n"));
    }
    assert_success(&run(
        with_data_dir(&["user", "import", "-"], &data),
        Some(&csv),
    ));
    let doc = format!(
        "domains = [\"localhost\"]\n\n[[pool]]\nname = \"default\"\nkind = \"front-end\"\n\
         servers = [\"udp://{}\"]\n\n[[pool]]\nname = \"b\"\nkind = \"front-end\"\n\
         servers = [\"udp://127.0.0.1:9\"]\n",
        server.addr("udp")
    );
    let parent = data.parent().expect("parent").to_path_buf();
    publish_approved(&data, &write(&parent, "topology.toml", &doc), &[]);
    ensure_approver(&data);

    // The driver runs from the directory that has its node_modules.
    let script = dir.join("console.mjs");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/console.mjs"),
        &script,
    )
    .expect("copy the driver");
    let shots = parent.join("screenshots");
    let out = Command::new("node")
        .arg(&script)
        .args([
            "--base",
            &format!("http://{}", server.admin.expect("admin listener")),
        ])
        .args(["--admin-token", &admin_token(&data)])
        .args(["--approver-token", APPROVER_TOKEN])
        .args(["--users", &USERS.to_string()])
        .arg("--shots")
        .arg(&shots)
        .current_dir(&dir)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    // The screenshots, into the log only.
    let mut names: Vec<_> = std::fs::read_dir(&shots)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    for png in &names {
        use base64::Engine as _;
        let bytes = std::fs::read(png).expect("screenshot");
        println!(
            "----- screenshot {} ({} bytes, base64 PNG) -----\n{}\n----- end -----",
            png.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            bytes.len(),
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        );
    }
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{stderr}\nserver:\n{}",
        server.stderr()
    );
    assert!(stdout.contains("every check passed"), "{stdout}");
    assert_eq!(names.len(), 5, "{names:?}");

    // What the browser saw is what the store holds.
    let users = common::store::json(&run(
        with_data_dir(&["user", "list", "--pool", "b", "--json"], &data),
        None,
    ));
    assert_eq!(users.as_array().map(Vec::len), Some(USERS));
    let changes = common::store::json(&run(
        with_data_dir(&["change", "list", "--json"], &data),
        None,
    ));
    let change = changes
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["title"] == format!("move {USERS} user(s) to pool b"))
        .expect("the move's change")
        .clone();
    assert_eq!(change["state"], "implemented", "{change:#}");
    assert_eq!(change["approvals"][0]["approver"], "approver", "{change:#}");
}
