//! `confab test …`: synthetic transactions against a running front-end — test users set up,
//! then registration, instant messaging and presence exercised with real SIP, each step timed;
//! a wrong password or an unreachable front-end is a failure with exit status 1.
#![cfg(unix)]

mod common;

use common::store::{json, publish_approved, run, with_data_dir};
use common::{write, Running};

#[test]
fn a_pool_is_exercised_with_real_sip() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0", "--pool", "default"], 1);
    let data = server.data_dir();
    let dir = data.parent().expect("parent").to_path_buf();
    let doc = format!(
        "domains = [\"localhost\"]\n\n[[pool]]\nname = \"default\"\nkind = \"front-end\"\n\
         servers = [\"udp://{}\"]\n",
        server.addr("udp")
    );
    publish_approved(&data, &write(&dir, "topology.toml", &doc), &[]);
    let setup = json(&run(
        with_data_dir(&["test", "setup", "--pool", "default", "--json"], &data),
        None,
    ));
    assert_eq!(
        setup["users"],
        serde_json::json!(["confab-test-1@localhost", "confab-test-2@localhost"])
    );
    let file = data.join("test-users/default.toml");
    let mode = std::fs::metadata(&file).expect("file").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    for test in ["registration", "im", "presence"] {
        // The front-end learns of the new users within a second: retried once if need be.
        let mut report = serde_json::Value::Null;
        for _ in 0..3 {
            let out = run(
                with_data_dir(&["test", test, "--pool", "default", "--json"], &data),
                None,
            );
            report = serde_json::from_slice(&out.stdout).expect("a report");
            if report["passed"] == true {
                assert!(out.status.success());
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(700));
        }
        assert_eq!(report["passed"], true, "{test}: {report:#}");
        let steps = report["steps"].as_array().expect("steps");
        assert!(steps.iter().all(|s| s["ms"].is_u64()), "{report}");
        println!("{test}: {} ms ({} steps)", report["ms"], steps.len());
    }
    // A wrong password fails, with the step that failed.
    let mut cmd = with_data_dir(
        &[
            "test",
            "registration",
            "--pool",
            "default",
            "--user",
            "confab-test-1@localhost",
        ],
        &data,
    );
    cmd.env("CONFAB_TEST_PASSWORD", "not the password");
    let out = run(cmd, None);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL") && text.contains("register confab-test-1@localhost"),
        "{text}"
    );
    // A pool nobody answers for fails too.
    let out = run(
        with_data_dir(
            &[
                "test",
                "registration",
                "--pool",
                "default",
                "--server",
                "udp://127.0.0.1:9",
            ],
            &data,
        ),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL registration"));
}
