//! A pool in maintenance, end to end on running front-ends: pool `default` and pool `b`,
//! paired, on one store. `default` goes into maintenance as an emergency change: within a
//! second its users are served by `b` — their registrations taken over from the store, so
//! they are reached without signing in again — and `default`'s front-end can be stopped while
//! they keep registering and messaging at `b`. Rolling the change back (`change rollback
//! last --emergency`) hands them back to `default` when it starts again.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::store::{approve_and_implement, assert_success, json, run, stdout};
use common::{confab, register_retrying as register, write, Running, WAIT};
use confab_ua::{UaConfig, UserAgent};

/// Publishes pools `default` (at `a`) and `b` (at `b`), paired with each other.
fn publish(data: &Path, a: SocketAddr, b: SocketAddr) {
    let doc = format!(
        "domains = [\"localhost\"]\n\n\
         [[pool]]\nname = \"default\"\nkind = \"front-end\"\nservers = [\"udp://{a}\"]\n\
         pair = \"b\"\n\n\
         [[pool]]\nname = \"b\"\nkind = \"front-end\"\nservers = [\"udp://{b}\"]\n\
         pair = \"default\"\n"
    );
    let file = write(data.parent().expect("parent"), "topology.toml", &doc);
    let mut cmd = confab(&["topology", "publish"]);
    cmd.arg(&file).arg("--data-dir").arg(data).arg("--json");
    let id = json(&run(cmd, None))["change"].to_string();
    approve_and_implement(data, &id, &[]);
}

fn front_end(data: Option<&Path>, listen: &str, pool: &str) -> Running {
    Running::start_in(
        confab(&[]),
        data,
        &["--listen", listen, "--pool", pool, "--log-level", "info"],
        1,
    )
}

fn cli(data: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = confab(args);
    cmd.env("CONFAB_DATA_DIR", data);
    run(cmd, None)
}

async fn ua(server: SocketAddr, i: usize) -> UserAgent {
    UserAgent::bind(UaConfig {
        server: Some(server),
        secret: Some(confab_ua::Secret::Password(format!("pw-{i}-long-enough"))),
        ..UaConfig::new(format!("sip:u{i}@localhost"))
    })
    .await
    .expect("UA binds")
}

/// Sends MESSAGEs from `from` to `to` until one is answered 200 and one of them arrives at
/// `at`; returns how long that took. (A MESSAGE of an earlier attempt may arrive late, and
/// one of an earlier call is told apart by its text.)
async fn reaches(from: &UserAgent, to: &str, at: &UserAgent, text: &str) -> Duration {
    let start = Instant::now();
    let deadline = start + WAIT * 2;
    let mut n = 0;
    let mut last = None;
    loop {
        n += 1;
        let status = from
            .message(to, "text/plain", format!("{text} #{n}"))
            .await
            .ok();
        last = status.or(last);
        let wait_for = Duration::from_millis(if status == Some(200) { 500 } else { 50 });
        while let Ok(got) = at.next_incoming_of("MESSAGE", wait_for).await {
            if got.body().starts_with(format!("{text} #").as_bytes()) {
                return start.elapsed();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{to} is not reached ({text}): last status {last:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_in_maintenance_is_served_by_its_pair_and_back() {
    let mut a = front_end(None, "udp://127.0.0.1:0", "default");
    let data = a.data_dir();
    let a_addr = a.addr("udp");
    publish(&data, a_addr, "127.0.0.1:9".parse().expect("addr"));
    let b = front_end(Some(&data), "udp://127.0.0.1:0", "b");
    publish(&data, a_addr, b.addr("udp"));
    for (users, pool) in [(&[1, 2][..], "default"), (&[3][..], "b")] {
        let mut csv = String::from("address,password\n");
        for i in users {
            csv.push_str(&format!("u{i}@localhost,pw-{i}-long-enough\n"));
        }
        let mut cmd = confab(&["user", "import", "-", "--pool", pool]);
        cmd.arg("--data-dir").arg(&data);
        assert_success(&run(cmd, Some(&csv)));
    }
    // u1 signs in at its own pool; u3 (pool b) at b.
    let u1 = ua(a_addr, 1).await;
    let u3 = ua(b.addr("udp"), 3).await;
    register(&u1).await;
    register(&u3).await;
    reaches(&u3, "sip:u1@localhost", &u1, "before").await;

    // A pool without a pair, or one that does not exist, is refused and nothing changes.
    let out = cli(
        &data,
        &[
            "change",
            "emergency",
            "--reason",
            "x",
            "--",
            "pool",
            "maintenance",
            "on",
            "nowhere",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no pool 'nowhere'")
            || String::from_utf8_lossy(&out.stderr).contains("nowhere"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Into maintenance, at once.
    let started = Instant::now();
    let out = cli(
        &data,
        &[
            "change",
            "emergency",
            "--reason",
            "upgrade of the default pool's servers",
            "--",
            "pool",
            "maintenance",
            "on",
            "default",
        ],
    );
    assert_success(&out);
    assert!(
        stdout(&out).contains("its users are served by pool b"),
        "{}",
        stdout(&out)
    );
    // Both front-ends act on the feed: the pool hands its users over, its pair takes them.
    let deadline = Instant::now() + WAIT;
    while !(a
        .stderr()
        .contains("users now served by another pool forgotten here")
        && b.stderr().contains("users now served here taken over"))
    {
        assert!(
            Instant::now() < deadline,
            "a: {}\nb: {}",
            a.stderr(),
            b.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "both front-ends regrouped {} ms after the emergency change",
        started.elapsed().as_millis()
    );
    let status = cli(&data, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert_eq!(status["pools_in_maintenance"][0]["pool"], "default");
    assert_eq!(status["pools_in_maintenance"][0]["served_by"], "b");
    let metrics = stdout(&cli(&data, &["status", "--prometheus"]));
    assert!(
        metrics.contains("confab_pools_in_maintenance 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("confab_emergency_changes_awaiting_review 1"),
        "{metrics}"
    );

    // The pool's front-end stops; its users are served by b without signing in again.
    a.signal("TERM");
    a.wait();
    let took = reaches(&u3, "sip:u1@localhost", &u1, "in maintenance").await;
    println!(
        "u1 reached through b {} ms after the pool stopped",
        took.as_millis()
    );
    // A new registration of a user of the pool is taken at b.
    let u2 = ua(b.addr("udp"), 2).await;
    register(&u2).await;
    reaches(&u2, "sip:u1@localhost", &u1, "u2 to u1").await;
    reaches(&u3, "sip:u2@localhost", &u2, "u3 to u2").await;
    // (u1's client still sends to the stopped front-end it was configured with: a client
    // reaches the pair when its DNS, or its configuration, lists it.)

    // Out of maintenance again: the last change rolled back at once. b hands the users back;
    // the pool's front-end starts again and takes them from the store.
    let out = cli(
        &data,
        &[
            "change",
            "rollback",
            "last",
            "--emergency",
            "--reason",
            "upgrade done",
        ],
    );
    assert_success(&out);
    assert!(
        stdout(&out).contains("pool default is out of maintenance"),
        "{}",
        stdout(&out)
    );
    // (b regrouped once already, when the pool went into maintenance.)
    let deadline = Instant::now() + WAIT;
    while b
        .stderr()
        .matches("users now served by another pool forgotten here")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "b: {}", b.stderr());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a = front_end(Some(&data), &format!("udp://{a_addr}"), "default");
    // u2 signed in at b during the maintenance: now reached through a, from the store.
    reaches(&u3, "sip:u2@localhost", &u2, "after").await;
    reaches(&u3, "sip:u1@localhost", &u1, "after").await;
    let status = cli(&data, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert_eq!(status["pools_in_maintenance"], serde_json::json!([]));
    let changes = json(&cli(&data, &["change", "list", "--json"]));
    let rollback = &changes[0];
    assert_eq!(rollback["class"], "emergency");
    assert!(rollback["rolls_back"].is_i64(), "{rollback}");
    assert_eq!(changes[1]["state"], "rolled-back");
    drop(a);
}
