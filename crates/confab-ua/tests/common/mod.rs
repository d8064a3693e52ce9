//! Helpers shared by the integration tests: user agents with fast timers on loopback.

// Each test binary uses a different subset of the helpers.
#![allow(dead_code)]

use std::time::Duration;

use confab_ua::{InviteAnswer, Transport, UaConfig, UserAgent};

/// Every wait in a test is bounded by this.
pub const WAIT: Duration = Duration::from_secs(5);

/// A configuration on 127.0.0.1 with T1 = 25 ms, so that a transaction gives up after
/// 1.6 s and a lost datagram is resent after 25 ms.
pub fn fast(aor: &str, transport: Transport) -> UaConfig {
    UaConfig {
        transport,
        t1: Duration::from_millis(25),
        t2: Duration::from_millis(200),
        t4: Duration::from_millis(200),
        ..UaConfig::new(aor)
    }
}

/// Binds a user agent, failing the test with the reason if it cannot.
pub async fn bind(config: UaConfig) -> UserAgent {
    match UserAgent::bind(config).await {
        Ok(ua) => ua,
        Err(e) => panic!("bind: {e}"),
    }
}

/// Alice and Bob on the same transport, talking directly (no server); Bob answers INVITE
/// per `invite`.
pub async fn pair(transport: Transport, invite: InviteAnswer) -> (UserAgent, UserAgent) {
    let alice = bind(fast("sip:alice@example.com", transport)).await;
    let bob = bind(UaConfig {
        invite,
        ..fast("sip:bob@example.com", transport)
    })
    .await;
    (alice, bob)
}

/// Both transports, for tests that run on each.
pub const TRANSPORTS: [Transport; 2] = [Transport::Udp, Transport::Tcp];
