//! A pool of two front-ends (`confab serve` processes) sharing its users through a PostgreSQL
//! store: every user is owned by one live member, requests reach the owner through either
//! member, and when one member is killed (SIGKILL: no goodbye, nothing flushed at exit) the
//! other takes its users over — their registrations and presence subscriptions, from the
//! store — within ten seconds.
//!
//! Ignored in a plain `cargo test`: it needs PostgreSQL (`scripts/store-postgres.sh` starts a
//! throwaway server and runs it with `CONFAB_TEST_POSTGRES_URL` set).
#![cfg(unix)]

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::store::{assert_success, run};
use common::{confab, Running, WAIT};
use confab_store::{Store, StoreLocation};
use confab_ua::{InviteAnswer, Secret, SubscriptionState, UaConfig, UserAgent};

const URL_VAR: &str = "CONFAB_TEST_POSTGRES_URL";
/// Users of the pool.
const USERS: usize = 20;
/// The promise: a dead member's users are reachable through the other within this.
const TAKE_OVER_WITHIN: Duration = Duration::from_secs(10);

fn url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| {
        panic!(
            "set {URL_VAR}=postgres://USER:PASSWORD@HOST:PORT/DB, or run scripts/store-postgres.sh"
        )
    })
}

/// `confab ARGS --store URL --data-dir DATA` (the data directory of the first front-end,
/// whose first start wrote the administrator's credentials there), successful.
fn cli(url: &str, data: &std::path::Path, args: &[&str], stdin: Option<&str>) {
    let mut cmd = confab(args);
    cmd.arg("--store").arg(url).arg("--data-dir").arg(data);
    assert_success(&run(cmd, stdin));
}

/// A front-end of pool `default` on the store at `url`.
fn member(url: &str) -> Running {
    Running::start(
        &[
            "--store",
            url,
            "--listen",
            "udp://127.0.0.1:0",
            "--log-level",
            "info",
        ],
        1,
    )
}

/// Runs `f` on the store at `url`.
fn with_store<T, Fut: std::future::Future<Output = T>>(
    url: &str,
    f: impl FnOnce(Store) -> Fut,
) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let location = StoreLocation::resolve("unused".as_ref(), Some(url)).expect("location");
        let store = Store::open(&location).await.expect("store opens");
        let out = f(store.clone()).await;
        store.close().await;
        out
    })
}

fn aor(i: usize) -> String {
    format!("u{i}@localhost")
}

async fn client(server: SocketAddr, i: usize) -> UserAgent {
    UserAgent::bind(UaConfig {
        server: Some(server),
        secret: Some(Secret::Password(format!("pw-{i}-long-enough"))),
        t1: Duration::from_millis(100),
        invite: InviteAnswer::Manual,
        ..UaConfig::new(format!("sip:{}", aor(i)))
    })
    .await
    .expect("user agent binds")
}

#[test]
#[ignore = "needs PostgreSQL: run scripts/store-postgres.sh"]
fn a_killed_members_users_are_reached_through_the_other_within_ten_seconds() {
    let url = url();
    // The first start creates the domain `localhost` and the pool `default`.
    let mut a = member(&url);
    let b = member(&url);
    let keys = [
        format!("udp://{}", a.addr("udp")),
        format!("udp://{}", b.addr("udp")),
    ];
    let mut csv = String::from("address,password\n");
    for i in 1..=USERS {
        csv.push_str(&format!("{},pw-{i}-long-enough\n", aor(i)));
    }
    cli(
        &url,
        &a.data_dir(),
        &["user", "import", "-", "--pool", "default"],
        Some(&csv),
    );
    // Each member reads the other's heartbeat within a second or two.
    let deadline = Instant::now() + WAIT;
    while !(a.stderr().contains(&keys[1]) && b.stderr().contains(&keys[0])) {
        assert!(
            Instant::now() < deadline,
            "the members never saw each other:\nA:\n{}\nB:\n{}",
            a.stderr(),
            b.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let owned_by_a: Vec<usize> = (1..=USERS)
        .filter(|&i| {
            confab_server::pools::owner(keys.iter().map(String::as_str), &aor(i))
                == Some(keys[0].as_str())
        })
        .collect();
    let owned_by_b: Vec<usize> = (1..=USERS).filter(|i| !owned_by_a.contains(i)).collect();
    assert!(
        !owned_by_a.is_empty() && !owned_by_b.is_empty(),
        "both members own users: A {owned_by_a:?}"
    );
    let (watcher, watched) = (owned_by_b[0], owned_by_a[0]);
    cli(
        &url,
        &a.data_dir(),
        &["contacts", "add", &aor(watched), &aor(watcher)],
        None,
    );
    let b_addr = b.addr("udp");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // Every client talks to B; the users A owns are registered at A, through B.
        let mut clients = Vec::new();
        for i in 1..=USERS {
            let ua = client(b_addr, i).await;
            let reg = ua.register(600).await.expect("registered through B");
            assert_eq!(reg.status, 200);
            clients.push(ua);
        }
        let ua = |i: usize| &clients[i - 1];
        let mut sub = ua(watcher)
            .subscribe(
                &format!("sip:{}", aor(watched)),
                "presence",
                "application/pidf+xml",
                600,
            )
            .await
            .expect("subscribed, at A");
        let first = sub.next_notify(WAIT).await.expect("first NOTIFY");
        assert_eq!(first.state, SubscriptionState::Active);
        // A message to a user A owns, through B, before anything happens.
        let status = ua(watcher)
            .message(&format!("sip:{}", aor(watched)), "text/plain", "before")
            .await
            .expect("answered");
        assert_eq!(status, 200);
        ua(watched)
            .next_incoming_of("MESSAGE", WAIT)
            .await
            .expect("delivered through A");

        // Wait until A has written its users' state behind.
        let deadline = Instant::now() + WAIT;
        loop {
            let (bindings, subscriptions) = {
                let url = url.clone();
                tokio::task::spawn_blocking(move || {
                    with_store(&url, |s| async move {
                        let users: HashSet<String> = s
                            .all_registrations()
                            .await
                            .expect("registrations")
                            .into_iter()
                            .map(|r| r.user.to_string())
                            .collect();
                        let subs = s
                            .presence_state()
                            .await
                            .expect("presence")
                            .subscriptions
                            .len();
                        (users.len(), subs)
                    })
                })
                .await
                .expect("store read")
            };
            if bindings == USERS && subscriptions == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "never written behind: {bindings} users, {subscriptions} subscriptions"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // A dies.
        let killed = a.signal("KILL");
        assert!(!killed.success());
        let t0 = Instant::now();

        // B's own users are reached at once.
        let status = ua(owned_by_b[1 % owned_by_b.len()])
            .message(
                &format!("sip:{}", aor(watcher)),
                "text/plain",
                "B still serves",
            )
            .await
            .expect("answered");
        assert_eq!(status, 200);
        ua(watcher)
            .next_incoming_of("MESSAGE", WAIT)
            .await
            .expect("delivered by B");

        // A's users: try each every half second (a try still forwarded to the dead A gets
        // no answer: abandoned after one second) until it is delivered.
        let mut reached: Vec<(usize, Duration, u32)> = Vec::new();
        let mut tries = 0;
        let mut pending: Vec<usize> = owned_by_a.clone();
        while !pending.is_empty() && t0.elapsed() < TAKE_OVER_WITHIN + Duration::from_secs(5) {
            let mut still = Vec::new();
            for &i in &pending {
                tries += 1;
                let body = format!("after the kill, try {tries}");
                let sent = tokio::time::timeout(
                    Duration::from_secs(1),
                    ua(watcher).message(&format!("sip:{}", aor(i)), "text/plain", body.as_str()),
                )
                .await;
                let delivered = match sent {
                    Ok(Ok(200)) => ua(i)
                        .next_incoming_of("MESSAGE", Duration::from_secs(2))
                        .await
                        .is_ok_and(|m| m.body() == body.as_bytes()),
                    _ => false,
                };
                if delivered {
                    reached.push((i, t0.elapsed(), tries));
                } else {
                    still.push(i);
                }
            }
            pending = still;
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        let slowest = reached.iter().map(|r| r.1).max().unwrap_or_default();
        println!(
            "pool of two over PostgreSQL: {} users, {} owned by the killed member; reached \
             through the survivor: {}, slowest {:.1} s after the kill ({} tries)",
            USERS,
            owned_by_a.len(),
            reached.len(),
            slowest.as_secs_f64(),
            tries
        );
        assert!(
            pending.is_empty(),
            "not reached: {pending:?}; B's log:\n{}",
            b.stderr()
        );
        assert!(
            slowest <= TAKE_OVER_WITHIN,
            "took {slowest:?}; B's log:\n{}",
            b.stderr()
        );
        // The watcher's subscription was taken over too: B sends a fresh NOTIFY.
        let deadline = t0 + TAKE_OVER_WITHIN;
        let fresh = sub
            .next_notify(deadline.saturating_duration_since(Instant::now()))
            .await
            .expect("a fresh NOTIFY from B");
        assert_eq!(fresh.state, SubscriptionState::Active);
        println!(
            "subscription taken over: fresh NOTIFY {:.1} s after the kill",
            t0.elapsed().as_secs_f64()
        );
        // A's users' clients sign in again through B: B now serves them itself.
        for &i in &owned_by_a {
            assert_eq!(
                ua(i).register(600).await.expect("re-registered").status,
                200
            );
        }
    });
    assert!(
        b.stderr().contains("users now owned here taken over"),
        "{}",
        b.stderr()
    );
}
