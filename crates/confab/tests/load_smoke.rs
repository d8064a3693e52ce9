//! A short smoke run of the load generator (`confab_ua::load`, the library behind
//! `confab-load`) against the real `confab serve`: 20 users added with `confab user add`
//! register with digest authentication, then send each other 20 messages, every one
//! accepted and delivered. CI runs this; the full comparison is `bench/compare.sh`.

mod common;

use std::time::Duration;

use common::store::{assert_success, run};
use common::{confab, Running};
use confab_ua::load::{self, LoadConfig, LoadError, Pace, Scenario};

const USERS: usize = 20;

fn add_users(data: &std::path::Path) {
    for n in 1..=USERS {
        let mut cmd = confab(&[
            "user",
            "add",
            &format!("user{n}@localhost"),
            "--password-stdin",
        ]);
        cmd.arg("--data-dir").arg(data);
        assert_success(&run(cmd, Some(&format!("pw-{n}\n"))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_registers_and_messages_through_the_binary() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    add_users(&server.data_dir());
    let addr = server.addr("udp");

    let register = load::run(LoadConfig {
        scenario: Scenario::Register,
        pace: Pace::Concurrency(4),
        count: USERS as u64,
        duration: Duration::from_secs(20),
        ..LoadConfig::new(addr, "localhost", USERS)
    })
    .await
    .expect("the register run runs");
    assert_eq!(register.attempted, USERS as u64, "{register:?}");
    assert_eq!(register.succeeded, USERS as u64, "{register:?}");
    assert!(register.failures.is_empty(), "{register:?}");
    let latency = register.latency.expect("latency reported");
    assert!(latency.p50_us <= latency.p99_us && latency.p99_us <= latency.max_us);
    assert!(register.rate_per_s > 0.0);
    assert!(register.cpu_s.is_some(), "own CPU time reported");

    let message = load::run(LoadConfig {
        scenario: Scenario::Message,
        pace: Pace::Rate(200.0),
        count: USERS as u64,
        duration: Duration::from_secs(20),
        ..LoadConfig::new(addr, "localhost", USERS)
    })
    .await
    .expect("the message run runs");
    assert_eq!(message.succeeded, USERS as u64, "{message:?}");
    assert!(message.failures.is_empty(), "{message:?}");
    assert_eq!(message.delivered, USERS as u64, "{message:?}");
    assert!(message.latency.is_some());

    // A wrong password is counted as a failure by status, not an error of the run.
    let wrong = load::run(LoadConfig {
        password_template: "not-{n}".into(),
        count: 3,
        ..LoadConfig::new(addr, "localhost", 3)
    })
    .await
    .expect("the run runs");
    assert_eq!(wrong.succeeded, 0, "{wrong:?}");
    assert_eq!(wrong.failed(), 3, "{wrong:?}");
}

#[tokio::test]
async fn load_is_only_sent_to_loopback() {
    let err = load::run(LoadConfig::new(
        "192.0.2.1:5060".parse().expect("addr"),
        "localhost",
        1,
    ))
    .await
    .expect_err("refused");
    assert!(matches!(err, LoadError::NotLoopback(_)), "{err}");
    assert!(err.to_string().contains("loopback"), "{err}");
}
