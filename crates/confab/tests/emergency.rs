//! The emergency path end to end on a running server: a user who is signed in and in a call
//! is blocked with `confab change emergency`; within a second its registration is gone and a
//! new REGISTER is refused; the change is recorded as an emergency with the snapshot taken
//! first, `confab status` shows it awaiting review (and overdue once its time has passed), and
//! the review is recorded. An administrator without the emergency role is refused. A source
//! address (127.0.0.2, loopback) blocked at ingress goes unanswered within a second while
//! others are served, and answered again once the block is rolled back.
#![cfg(unix)]

mod common;

use std::time::{Duration, Instant};

use common::store::{assert_fails, assert_success, json, run, stdout};
use common::{confab, Running, WAIT};
use confab_ua::{InviteAnswer, Secret, UaConfig, UserAgent};

fn cli(data: &std::path::Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut cmd = confab(args);
    cmd.arg("--data-dir").arg(data);
    run(cmd, stdin)
}

/// `confab --data-dir DATA change emergency --reason … --json -- user disable USER` (the
/// options before the operation, which takes every word after `--`).
fn emergency(data: &std::path::Path, user: &str) -> std::process::Command {
    let mut cmd = confab(&[]);
    cmd.arg("--data-dir").arg(data).args([
        "--json",
        "change",
        "emergency",
        "--reason",
        "stolen password",
        "--",
        "user",
        "disable",
        user,
    ]);
    cmd
}

async fn client(server: std::net::SocketAddr, user: &str, answer: InviteAnswer) -> UserAgent {
    UserAgent::bind(UaConfig {
        server: Some(server),
        secret: Some(Secret::Password(format!("{user}-password-long"))),
        t1: Duration::from_millis(100),
        invite: answer,
        ..UaConfig::new(format!("sip:{user}@localhost"))
    })
    .await
    .expect("user agent binds")
}

#[test]
fn an_emergency_block_of_a_user_in_a_call() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0", "--log-level", "info"], 1);
    let data = server.data_dir();
    for user in ["alice", "bob"] {
        let out = cli(
            &data,
            &[
                "user",
                "add",
                &format!("{user}@localhost"),
                "--password-stdin",
            ],
            Some(&format!("{user}-password-long\n")),
        );
        assert_success(&out);
    }
    let addr = server.addr("udp");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let accept = || InviteAnswer::Accept {
            after: Duration::from_millis(10),
            sdp: None,
        };
        // The users reach the server through the change feed: retry the first sign-in.
        let alice = client(addr, "alice", accept()).await;
        let bob = client(addr, "bob", accept()).await;
        let deadline = Instant::now() + WAIT;
        while alice.register(300).await.is_err() || bob.register(300).await.is_err() {
            assert!(Instant::now() < deadline, "{}", server.stderr());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut call = alice
            .invite("sip:bob@localhost", None)
            .await
            .expect("INVITE sent");
        assert!(call.wait_final().await.expect("final").is_answered());
        let status = bob
            .message("sip:alice@localhost", "text/plain", "before")
            .await
            .expect("answered");
        assert_eq!(status, 200, "alice is reachable before the block");

        // An administrator without the emergency role is refused, nothing changed.
        let out = cli(
            &data,
            &["admin", "add", "ann", "--roles", "admin", "--json"],
            None,
        );
        assert_success(&out);
        let ann = json(&out)["token"].as_str().expect("token").to_owned();
        let mut cmd = emergency(&data, "alice@localhost");
        cmd.env("CONFAB_ADMIN", "ann")
            .env("CONFAB_ADMIN_TOKEN", &ann);
        assert_fails(&run(cmd, None), 1, "may not make emergency changes");

        // The emergency block.
        let out = run(emergency(&data, "alice@localhost"), None);
        assert_success(&out);
        // The change is committed: running front-ends act on it within a second.
        let t0 = Instant::now();
        let change = json(&out);
        assert_eq!(change["class"], "emergency");
        assert_eq!(change["state"], "implemented");
        let snapshot = change["snapshot"].as_str().expect("a snapshot").to_owned();
        assert!(std::path::Path::new(&snapshot).is_file(), "{snapshot}");
        let due = change["review_due"].as_i64().expect("review due");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        assert!((now + 23 * 3600..=now + 25 * 3600).contains(&due), "{due}");
        let id = change["id"].to_string();

        // Within a second the server has dropped her binding: bob reaches her no more.
        let deadline = t0 + Duration::from_secs(1);
        loop {
            let status = bob
                .message("sip:alice@localhost", "text/plain", "are you there?")
                .await
                .expect("answered");
            if status == 404 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "alice still reachable a second after the block ({status})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "emergency block effective {:.2} s after the command returned",
            t0.elapsed().as_secs_f64()
        );
        assert!(
            alice.register(300).await.is_err(),
            "a new REGISTER is refused"
        );

        // Awaiting review; overdue once its time has passed; then reviewed.
        let out = cli(&data, &["status"], None);
        assert_success(&out);
        assert!(
            stdout(&out).contains(&format!("emergency changes awaiting review: 1 ({id})")),
            "{}",
            stdout(&out)
        );
        common::store::sql_on_file(
            &data,
            &format!("UPDATE change_records SET review_due = 1 WHERE id = {id}"),
        )
        .await;
        let out = cli(&data, &["status"], None);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert!(stdout(&out).contains("OVERDUE reviews"), "{}", stdout(&out));
        let out = cli(
            &data,
            &[
                "change",
                "review",
                &id,
                "--comment",
                "password reset with the user",
            ],
            None,
        );
        assert_success(&out);
        let shown = json(&cli(&data, &["change", "show", &id, "--json"], None));
        assert_eq!(shown["state"], "reviewed");
        let out = cli(&data, &["status"], None);
        assert_success(&out);
        assert!(
            stdout(&out).contains("emergency changes awaiting review: none"),
            "{}",
            stdout(&out)
        );
        assert_success(&cli(&data, &["audit", "verify"], None));
        drop(call);
    });
}

/// Sends an OPTIONS from `from` to `server`; true when it is answered within `within`.
fn answered(
    from: &std::net::UdpSocket,
    server: std::net::SocketAddr,
    n: u32,
    within: Duration,
) -> bool {
    let local = from.local_addr().expect("local");
    let call_id = format!("block-test-{}-{n}", local.port());
    from.send_to(&common::options("UDP", local, &call_id), server)
        .expect("sent");
    from.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = vec![0u8; 65_535];
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match from.recv_from(&mut buf) {
            Ok((len, _)) => {
                if String::from_utf8_lossy(&buf[..len]).contains(&call_id) {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn an_emergency_block_of_a_source_network() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0", "--log-level", "info"], 1);
    let data = server.data_dir();
    let target = server.addr("udp");
    // The attacker at 127.0.0.2, a bystander at 127.0.0.1: both answered at first.
    let attacker = std::net::UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let bystander = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    assert!(answered(&attacker, target, 0, WAIT));
    assert!(answered(&bystander, target, 0, WAIT));

    let mut cmd = confab(&[]);
    cmd.arg("--data-dir").arg(&data).args([
        "--json",
        "change",
        "emergency",
        "--reason",
        "SIP scanner",
        "--",
        "source",
        "block",
        "127.0.0.2/32",
    ]);
    let out = run(cmd, None);
    assert_success(&out);
    let change = json(&out);
    assert_eq!(change["class"], "emergency");
    let t0 = Instant::now();
    // Within a second the attacker's requests are dropped unanswered; the bystander's are not.
    let mut n = 1;
    while answered(&attacker, target, n, Duration::from_millis(200)) {
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "still answered a second later"
        );
        n += 1;
    }
    println!(
        "source block effective {:.2} s after the command returned",
        t0.elapsed().as_secs_f64()
    );
    for i in 1..=3 {
        assert!(!answered(
            &attacker,
            target,
            100 + i,
            Duration::from_millis(300)
        ));
        assert!(answered(&bystander, target, i, WAIT));
    }
    let status = stdout(&cli(&data, &["status"], None));
    assert!(status.contains("blocked source 127.0.0.2/32"), "{status}");

    // Rolled back at once: answered again.
    let id = change["id"].to_string();
    let mut cmd = confab(&[]);
    cmd.arg("--data-dir").arg(&data).args([
        "change",
        "rollback",
        &id,
        "--reason",
        "the scanner is gone",
        "--emergency",
    ]);
    assert_success(&run(cmd, None));
    let deadline = Instant::now() + WAIT;
    let mut n = 1000;
    while !answered(&attacker, target, n, Duration::from_millis(300)) {
        assert!(
            Instant::now() < deadline,
            "never unblocked: {}",
            server.stderr()
        );
        n += 1;
    }
}
