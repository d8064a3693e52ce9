//! The first usable server, end to end through the real binary: users added with `confab
//! user add` on the data directory of a running `confab serve`, two confab-ua clients that
//! register with their passwords, an instant message online and one kept while the
//! recipient is offline, a call set up and torn down through the proxy, and an operator's
//! `confab user disable` taking effect on the running server.

mod common;

use std::time::Duration;

use common::store::{assert_success, run, with_store};
use common::{confab, Running, WAIT};
use confab_store::{Address, NewOfflineMessage};
use confab_ua::{CallOutcome, InviteAnswer, Secret, UaConfig, UserAgent};

fn add_user(data: &std::path::Path, address: &str, password: &str) {
    let mut cmd = confab(&["user", "add", address, "--password-stdin"]);
    cmd.arg("--data-dir").arg(data);
    assert_success(&run(cmd, Some(&format!("{password}\n"))));
}

fn user_cmd(data: &std::path::Path, args: &[&str]) {
    let mut cmd = confab(args);
    cmd.arg("--data-dir").arg(data);
    assert_success(&run(cmd, None));
}

async fn ua(
    server: std::net::SocketAddr,
    user: &str,
    password: &str,
    invite: InviteAnswer,
) -> UserAgent {
    let config = UaConfig {
        server: Some(server),
        username: Some(user.to_owned()),
        secret: Some(Secret::Password(password.to_owned())),
        invite,
        ..UaConfig::new(format!("sip:{user}@localhost"))
    };
    UserAgent::bind(config).await.expect("the UA binds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_register_message_call_and_are_disabled_through_the_binary() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    let data = server.data_dir();
    add_user(&data, "alice@localhost", "alice-secret-1");
    add_user(&data, "bob@localhost", "bob-secret-22");
    let addr = server.addr("udp");

    let alice = ua(addr, "alice", "alice-secret-1", InviteAnswer::Manual).await;
    let answer = InviteAnswer::Accept {
        after: Duration::from_millis(50),
        sdp: None,
    };
    let bob = ua(addr, "bob", "bob-secret-22", answer).await;
    assert_eq!(
        alice.register(300).await.expect("alice registers").status,
        200
    );

    // bob is offline: the message is accepted and kept.
    let status = alice
        .message(
            "sip:bob@localhost",
            "text/plain",
            b"hello while you were out".to_vec(),
        )
        .await
        .expect("message sent");
    assert_eq!(status, 202);

    // bob signs in and gets it.
    assert_eq!(bob.register(300).await.expect("bob registers").status, 200);
    let kept = bob
        .next_incoming_of("MESSAGE", WAIT)
        .await
        .expect("the kept message is delivered");
    assert_eq!(kept.body(), b"hello while you were out");

    // Online: delivered at once.
    let status = alice
        .message("sip:bob@localhost", "text/plain", b"and now live".to_vec())
        .await
        .expect("message sent");
    assert_eq!(status, 200);
    let live = bob
        .next_incoming_of("MESSAGE", WAIT)
        .await
        .expect("delivered");
    assert_eq!(live.body(), b"and now live");

    // A call through the proxy: bob answers, alice hangs up.
    let mut call = alice
        .invite("sip:bob@localhost", None)
        .await
        .expect("INVITE sent");
    match call.wait_final().await.expect("a final response") {
        CallOutcome::Answered(_) => {}
        other => panic!("bob should answer: {other:?}"),
    }
    assert_eq!(call.bye().await.expect("BYE").status(), Some(200));

    // A wrong password does not register.
    let mallory = ua(addr, "bob", "not-bobs-password", InviteAnswer::Manual).await;
    assert!(
        mallory.register(300).await.is_err(),
        "a wrong password is refused"
    );

    // The operator disables bob while the server runs: he is signed out within a second,
    // and a message to him is refused rather than delivered.
    user_cmd(&data, &["user", "disable", "bob@localhost"]);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let status = alice
            .message(
                "sip:bob@localhost",
                "text/plain",
                b"are you there?".to_vec(),
            )
            .await
            .expect("message sent");
        if status == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bob still reachable after disable (last status {status})"
        );
        // Drain what reached bob meanwhile.
        while bob.try_next_incoming().is_some() {}
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        bob.register(300).await.is_err(),
        "a disabled user cannot register"
    );
}

/// A message kept by another front-end sharing the store (here: written to the store
/// directly) reaches a user signed in to this one, through the change feed, without waiting
/// for the user's next REGISTER.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_kept_elsewhere_reaches_a_signed_in_user() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    let data = server.data_dir();
    add_user(&data, "carol@localhost", "carol-secret-3");
    let carol = ua(
        server.addr("udp"),
        "carol",
        "carol-secret-3",
        InviteAnswer::Manual,
    )
    .await;
    assert_eq!(
        carol.register(300).await.expect("carol registers").status,
        200
    );
    let received_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let dir = data.clone();
    tokio::task::spawn_blocking(move || {
        with_store(&dir, |store| async move {
            let message = NewOfflineMessage {
                to_user: Address::new("carol", "localhost").expect("an address"),
                from_uri: "<sip:dave@localhost>;tag=elsewhere".to_owned(),
                content_type: "text/plain".to_owned(),
                body: b"kept by another front-end".to_vec(),
                received_at,
            };
            store
                .store_offline_message(&message, 10, Duration::from_secs(3600))
                .await
                .expect("kept")
        })
    })
    .await
    .expect("the store task runs");
    let kept = carol
        .next_incoming_of("MESSAGE", WAIT)
        .await
        .expect("the kept message is delivered while carol is signed in");
    assert_eq!(kept.body(), b"kept by another front-end");
}
