//! A short smoke run of the load generator (`confab_ua::load`, the library behind
//! `confab-load`) against the real `confab serve`: 20 users added with `confab user add`
//! register with digest authentication, send each other messages (every one accepted and
//! delivered once) and call each other (INVITE, 407, INVITE, 180, 200, ACK, BYE, 200), with
//! no failure; on a server that shows unknown watchers their presentity, 30 users subscribe
//! to each other's presence and publish, every NOTIFY expected counted. CI runs this; `scripts/load-smoke.sh` runs the binary the same way, and the
//! full comparison is under `bench/`.

mod common;

use std::time::Duration;

use common::store::{assert_success, run};
use common::{confab, Running};
use confab_ua::load::{self, LoadConfig, LoadError, LoadReport, Pace, Scenario};

const USERS: usize = 20;

fn add_users(data: &std::path::Path, users: usize) {
    for n in 1..=users {
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

fn assert_clean(r: &LoadReport, count: u64) {
    assert_eq!(r.attempted, count, "{r:?}");
    assert_eq!(r.succeeded, count, "{r:?}");
    assert!(r.failures.is_empty(), "{r:?}");
    let latency = r.latency.expect("latency reported");
    assert!(latency.p50_us <= latency.p99_us && latency.p99_us <= latency.max_us);
    assert!(r.rate_per_s > 0.0, "{r:?}");
    assert!(r.cpu_s.is_some(), "own CPU time reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_registers_messages_and_calls_through_the_binary() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    add_users(&server.data_dir(), USERS);
    let addr = server.addr("udp");
    let base = LoadConfig {
        duration: Duration::from_secs(30),
        sockets: 2,
        ..LoadConfig::new(addr, "localhost", USERS)
    };

    // Every user once, then a second round at a rate: the same Call-ID, a higher CSeq.
    for pace in [Pace::Concurrency(4), Pace::Rate(400.0)] {
        let register = load::run(LoadConfig {
            scenario: Scenario::Register,
            pace,
            count: USERS as u64,
            ..base.clone()
        })
        .await
        .expect("the register run runs");
        assert_clean(&register, USERS as u64);
        assert_eq!(register.sockets, 2);
    }

    let message = load::run(LoadConfig {
        scenario: Scenario::Message,
        pace: Pace::Rate(200.0),
        count: 2 * USERS as u64,
        ..base.clone()
    })
    .await
    .expect("the message run runs");
    assert_clean(&message, 2 * USERS as u64);
    assert_eq!(message.delivered, message.succeeded, "{message:?}");

    let call = load::run(LoadConfig {
        scenario: Scenario::Call,
        pace: Pace::Concurrency(4),
        count: 2 * USERS as u64,
        ..base.clone()
    })
    .await
    .expect("the call run runs");
    assert_clean(&call, 2 * USERS as u64);

    // A wrong password is counted as a failure by status, not an error of the run.
    let wrong = load::run(LoadConfig {
        password_template: "not-{n}".into(),
        count: 3,
        ..LoadConfig::new(addr, "localhost", 3)
    })
    .await
    .expect("the run runs");
    assert_eq!(wrong.succeeded, 0, "{wrong:?}");
    assert_eq!(wrong.failures.get("401"), Some(&3), "{wrong:?}");

    // Users who cannot register stop the message scenario before it starts.
    let setup = load::run(LoadConfig {
        scenario: Scenario::Message,
        users_prefix: "nobody".into(),
        ..LoadConfig::new(addr, "localhost", 2)
    })
    .await
    .expect_err("setup fails");
    assert!(
        matches!(setup, LoadError::Setup { failed: 2, .. }),
        "{setup}"
    );

    // This server leaves unknown watchers pending: the subscribe scenario says how to fix it.
    let pending = load::run(LoadConfig {
        scenario: Scenario::Subscribe,
        presentities: 1,
        ..LoadConfig::new(addr, "localhost", 3)
    })
    .await
    .expect_err("the watchers stay pending");
    assert!(
        matches!(pending, LoadError::Setup { failed: 2, .. }),
        "{pending}"
    );
    assert!(
        pending
            .to_string()
            .contains("--presence-unknown-watchers colleagues"),
        "{pending}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_publishes_to_subscribed_watchers() {
    const WATCHING: usize = 30;
    let server = Running::start(
        &[
            "--listen",
            "udp://127.0.0.1:0",
            "--presence-unknown-watchers",
            "colleagues",
        ],
        1,
    );
    add_users(&server.data_dir(), WATCHING);
    let config = LoadConfig {
        scenario: Scenario::Subscribe,
        presentities: 3,
        watch: 2,
        pace: Pace::Rate(20.0),
        count: 30,
        duration: Duration::from_secs(30),
        sockets: 2,
        ..LoadConfig::new(server.addr("udp"), "localhost", WATCHING)
    };
    let r = load::run(config.clone())
        .await
        .expect("the subscribe run runs");
    assert_clean(&r, 30);
    // 27 watchers, 2 presentities each; 10 PUBLISHes per presentity, 18 watchers each.
    assert_eq!(r.subscriptions, 27 * 2, "{r:?}");
    assert_eq!(r.notifies_expected, 30 * 18, "{r:?}");
    assert_eq!(r.notifies, r.notifies_expected, "{r:?}");
    let l = r.notify_latency.expect("NOTIFY latency reported");
    assert!(l.p50_us <= l.p99_us && l.p99_us <= l.max_us, "{l:?}");
    assert_eq!((r.delivered, r.stray), (0, 0), "{r:?}");

    // Again on the same server: new subscriptions beside the last run's (whose NOTIFYs now
    // go nowhere), new publications beside the last run's. At a modest rate: a presentity
    // publishing again before its watchers have answered makes the server send only the
    // latest state, and NOTIFYs show as missing.
    let again = load::run(LoadConfig {
        pace: Pace::Rate(30.0),
        ..config
    })
    .await
    .expect("the second subscribe run runs");
    assert_clean(&again, 30);
    assert_eq!(again.subscriptions, 27 * 2, "{again:?}");
    assert_eq!(again.notifies, again.notifies_expected, "{again:?}");
    assert!(again.notifies > 0, "{again:?}");
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
