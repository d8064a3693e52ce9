//! Two pools as separate `confab serve` processes sharing one SQLite store, with the topology
//! published by `confab topology publish`: users of both pools sign in through either pool,
//! exchange messages and calls, and a bulk move of 1,000 users from one pool to the other
//! runs while MESSAGE traffic flows between moved and unmoved users — every MESSAGE gets a
//! final response, and every one accepted (2xx) is delivered exactly once.
#![cfg(unix)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::store::{
    approve_and_implement, assert_success, json, publish_approved, run, stdout, with_store,
};
use common::{confab, register_retrying as register, write, Running, WAIT};
use confab_ua::{InviteAnswer, Secret, UaConfig, UserAgent};

/// Each MESSAGE sent: its id and final status (`None`: no final response).
type Outcomes = Vec<(String, Option<u16>)>;

/// Publishes a topology with pools `default` (at `a`) and `b` (at `b`).
fn publish(data: &Path, a: SocketAddr, b: SocketAddr) {
    let doc = format!(
        "domains = [\"localhost\"]\n\n\
         [[pool]]\nname = \"default\"\nkind = \"front-end\"\nservers = [\"udp://{a}\"]\n\n\
         [[pool]]\nname = \"b\"\nkind = \"front-end\"\nservers = [\"udp://{b}\"]\n"
    );
    let file = write(data.parent().expect("parent"), "topology.toml", &doc);
    publish_approved(data, &file, &[]);
}

/// Pool `default` (the first start) and pool `b`, both on the data directory of the first.
fn two_pools() -> (Running, Running) {
    let a = Running::start(&["--listen", "udp://127.0.0.1:0", "--log-level", "info"], 1);
    let data = a.data_dir();
    // Pool b must exist before its front-end starts: published with a placeholder address,
    // then again with the address it binds.
    let placeholder: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    publish(&data, a.addr("udp"), placeholder);
    let b = Running::start_in(
        confab(&[]),
        Some(&data),
        &[
            "--listen",
            "udp://127.0.0.1:0",
            "--pool",
            "b",
            "--log-level",
            "info",
        ],
        1,
    );
    publish(&data, a.addr("udp"), b.addr("udp"));
    // Both front-ends follow the change feed (polled every `confab_store::POLL_INTERVAL`): wait until the first has
    // read both published versions (the second names b's address) before any client talks.
    let deadline = Instant::now() + WAIT;
    while a.stderr().matches("topology read again").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "pool default never read the topology again: {}",
            a.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (a, b)
}

/// `n` users `u1@localhost` … with password `pw-<n>`, homed on `pool`.
fn import(data: &Path, n: usize, pool: &str) {
    let mut csv = String::from("address,password\n");
    for i in 1..=n {
        csv.push_str(&format!("u{i}@localhost,pw-{i}-long-enough\n"));
    }
    let mut cmd = confab(&["user", "import", "-", "--pool", pool]);
    cmd.arg("--data-dir").arg(data);
    assert_success(&run(cmd, Some(&csv)));
}

async fn ua(server: SocketAddr, i: usize) -> UserAgent {
    UserAgent::bind(UaConfig {
        server: Some(server),
        secret: Some(Secret::Password(format!("pw-{i}-long-enough"))),
        invite: InviteAnswer::Accept {
            after: Duration::from_millis(10),
            sdp: None,
        },
        incoming_capacity: 4096,
        ..UaConfig::new(format!("sip:u{i}@localhost"))
    })
    .await
    .expect("UA binds")
}

fn homes(data: &Path) -> HashMap<String, String> {
    with_store(data, |store| async move {
        store
            .list_users(&confab_store::UserFilter::default())
            .await
            .expect("users")
            .into_iter()
            .map(|u| (u.address.to_string(), u.pool))
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_two_pools_reach_each_other_through_either_pool() {
    let (a, b) = two_pools();
    let data = a.data_dir();
    import(&data, 2, "default");
    let mut csv = String::from("address,password\n");
    csv.push_str("u3@localhost,pw-3-long-enough\n");
    let mut cmd = confab(&["user", "import", "-", "--pool", "b"]);
    cmd.arg("--data-dir").arg(&data);
    assert_success(&run(cmd, Some(&csv)));

    // u1 (pool default) through b; u3 (pool b) through a.
    let u1 = ua(b.addr("udp"), 1).await;
    let u3 = ua(a.addr("udp"), 3).await;
    register(&u1).await;
    register(&u3).await;
    let status = u1
        .message("sip:u3@localhost", "text/plain", "1 to 3")
        .await
        .expect("answered");
    assert_eq!(status, 200, "a: {}\nb: {}", a.stderr(), b.stderr());
    let got = u3
        .next_incoming_of("MESSAGE", WAIT)
        .await
        .expect("delivered");
    assert_eq!(got.body(), b"1 to 3");
    let mut call = u3.invite("sip:u1@localhost", None).await.expect("INVITE");
    assert!(call.wait_final().await.expect("final").is_answered());
    call.bye().await.expect("BYE");
    // `confab pool list` counts the users per pool.
    let mut cmd = confab(&["pool", "list", "--json"]);
    cmd.arg("--data-dir").arg(&data);
    let out = run(cmd, None);
    assert_success(&out);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    for pool in listed.as_array().expect("pools") {
        let up = pool["members"]
            .as_array()
            .map_or(0, |m| m.iter().filter(|x| x["up"] == true).count());
        assert_eq!(up, 1, "one front-end up in {pool}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_move_under_message_traffic_loses_nothing() {
    const USERS: usize = 1_000;
    const SENDERS: usize = 20;
    let (a, b) = two_pools();
    let data = a.data_dir();
    import(&data, USERS, "default");
    // Every client talks to pool default's front-end, as before the move.
    let server = a.addr("udp");
    let mut uas = Vec::with_capacity(USERS);
    for i in 1..=USERS {
        uas.push(Arc::new(ua(server, i).await));
    }
    for chunk in uas.chunks(100) {
        let regs: Vec<_> = chunk.iter().map(|u| register(u)).collect();
        for r in regs {
            r.await;
        }
    }

    // Receivers: every MESSAGE body (a unique id) each user gets, however often.
    let received: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut listeners = Vec::new();
    for u in &uas {
        let (u, received, stop) = (Arc::clone(u), Arc::clone(&received), Arc::clone(&stop));
        listeners.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(m) = u.next_incoming(Duration::from_millis(200)).await {
                    if m.method_str() == "MESSAGE" {
                        let id = String::from_utf8_lossy(m.body()).into_owned();
                        *received.lock().expect("lock").entry(id).or_default() += 1;
                    }
                }
            }
        }));
    }

    // Senders: MESSAGEs from user i to user i + 500 (one of each pair moves first), until
    // the move is over and a little after.
    let outcomes: Arc<Mutex<Outcomes>> = Arc::default();
    let moving = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let (uas, outcomes, moving) = (uas.clone(), Arc::clone(&outcomes), Arc::clone(&moving));
        senders.push(tokio::spawn(async move {
            let mut n = 0usize;
            let mut after = 0;
            while after < 10 {
                if !moving.load(std::sync::atomic::Ordering::Relaxed) {
                    after += 1;
                }
                let from = (s * 37 + n * SENDERS) % USERS;
                let to = (from + USERS / 2) % USERS;
                let id = format!("m-{s}-{n}");
                let status = uas[from]
                    .message(
                        &format!("sip:u{}@localhost", to + 1),
                        "text/plain",
                        id.clone(),
                    )
                    .await
                    .ok();
                outcomes.lock().expect("lock").push((id, status));
                n += 1;
            }
        }));
    }

    // The move: every user of pool default to b, 50 per transaction, half the users by
    // domain order first… all of them, while the traffic flows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A normal change (more than 100 users): requested, approved, implemented.
    let mut cmd = confab(&[
        "user", "move", "--from", "default", "--to", "b", "--batch", "50", "--json",
    ]);
    cmd.arg("--data-dir").arg(&data);
    let data1 = data.clone();
    tokio::task::spawn_blocking(move || {
        let out = run(cmd, None);
        let id = json(&out)["change"].to_string();
        approve_and_implement(&data1, &id, &[])
    })
    .await
    .expect("move ran");
    let data2 = data.clone();
    let after = tokio::task::spawn_blocking(move || homes(&data2))
        .await
        .expect("homes read");
    assert_eq!(after.len(), USERS);
    assert!(after.values().all(|p| p == "b"), "every user moved");
    // Clients signed out by the move sign in again (as a client does at its next refresh):
    // at pool b now, through a.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for chunk in uas.chunks(100) {
        let regs: Vec<_> = chunk.iter().map(|u| register(u)).collect();
        for r in regs {
            r.await;
        }
    }
    moving.store(false, std::sync::atomic::Ordering::Relaxed);
    for s in senders {
        s.await.expect("sender");
    }

    // Messages accepted while their recipient was signed out were kept and are delivered
    // after the recipient signed in again: wait for them.
    let outcomes = outcomes.lock().expect("lock").clone();
    let accepted: Vec<&String> = outcomes
        .iter()
        .filter(|(_, s)| s.is_some_and(|s| (200..300).contains(&s)))
        .map(|(id, _)| id)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = received.lock().expect("lock").clone();
        let missing = accepted.iter().filter(|id| !got.contains_key(**id)).count();
        if missing == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in listeners {
        let _ = l.await;
    }
    let got = received.lock().expect("lock").clone();
    let sent = outcomes.len();
    let unanswered = outcomes.iter().filter(|(_, s)| s.is_none()).count();
    let mut refused: std::collections::BTreeMap<u16, usize> = Default::default();
    for s in outcomes.iter().filter_map(|(_, s)| *s) {
        if !(200..300).contains(&s) {
            *refused.entry(s).or_default() += 1;
        }
    }
    let delivered = accepted.iter().filter(|id| got.contains_key(**id)).count();
    let duplicated = got.values().filter(|n| **n > 1).count();
    let lost = accepted.len() - delivered;
    for (id, status) in outcomes.iter() {
        if status.is_some_and(|s| (200..300).contains(&s)) && !got.contains_key(id) {
            println!("lost: {id} answered {status:?}");
        }
    }
    println!(
        "sent {sent}, accepted {}, refused {refused:?}, unanswered {unanswered}, \
         delivered {delivered}, duplicated {duplicated}, lost {lost}",
        accepted.len(),
    );
    assert!(sent > 100, "traffic flowed during the move");
    assert_eq!(unanswered, 0, "every MESSAGE gets a final response");
    assert!(
        refused.is_empty(),
        "a move refuses no MESSAGE (no loop between pools that disagree for a second): {refused:?}"
    );
    if lost > 0 {
        println!("pool default:\n{}\npool b:\n{}", a.stderr(), b.stderr());
    }
    assert_eq!(lost, 0, "every accepted MESSAGE is delivered");
    assert_eq!(duplicated, 0, "and only once");
    drop((a, b));
}
