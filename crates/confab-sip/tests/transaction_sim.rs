//! Transaction timers under a simulated network and clock: every RFC 3261 timer (A, B, D, E,
//! F, G, H, I, J, K), the RFC 6026 timers (L, M), the automatic 100 Trying, and what changes
//! on reliable transports, and responses sent statelessly. One-way latency is 5 ms; times
//! are ms since the start.

mod sim;

use std::time::Duration;

use confab_sip::builder::ResponseBuilder;
use confab_sip::transaction::{
    Config, Event, Reliability, State, Timer, TimerConfig, TransactionError, TransactionKey,
    TransactionLayer,
};
use confab_sip::Message;
use sim::{ack_for_2xx, schedule, Side, Sim};

use Reliability::{Reliable, Unreliable};

#[test]
fn timer_a_doubles_and_timer_b_times_out_the_invite() {
    let mut sim = Sim::new(Unreliable);
    sim.drop_all(Side::Client, "INVITE");
    let key = sim.send("INVITE");
    let armed = sim.client.timers(&key);
    assert_eq!(
        armed,
        vec![(Timer::A, sim.at(500)), (Timer::B, sim.at(32_000))]
    );
    sim.run_until(40_000);
    // Timer A: T1, 2·T1, 4·T1 … with no T2 cap, until Timer B at 64·T1.
    assert_eq!(
        sim.sent(Side::Client, "INVITE"),
        schedule(0, &[500, 1000, 2000, 4000, 8000, 16_000])
    );
    assert_eq!(sim.timeouts(Side::Client), vec![(32_000, Timer::B)]);
    assert_eq!(sim.terminated(Side::Client, &key), Some(32_000));
    assert!(sim.server_events.is_empty());
}

#[test]
fn reliable_invite_is_never_retransmitted_but_timer_b_still_runs() {
    let mut sim = Sim::new(Reliable);
    sim.drop_all(Side::Client, "INVITE");
    let key = sim.send("INVITE");
    assert_eq!(sim.client.timers(&key), vec![(Timer::B, sim.at(32_000))]);
    sim.run_until(40_000);
    assert_eq!(sim.sent(Side::Client, "INVITE"), vec![0]);
    assert_eq!(sim.timeouts(Side::Client), vec![(32_000, Timer::B)]);
}

#[test]
fn timer_b_stops_once_proceeding() {
    let mut sim = Sim::new(Unreliable);
    let key = sim.send("INVITE");
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 180);
    sim.run_until(60_000);
    assert_eq!(sim.client_state(&key), Some(State::Proceeding));
    assert!(sim.client.timers(&key).is_empty());
    assert!(sim.timeouts(Side::Client).is_empty());
    assert_eq!(sim.sent(Side::Client, "INVITE"), vec![0]);
}

#[test]
fn timer_e_doubles_to_t2_and_timer_f_times_out() {
    let mut sim = Sim::new(Unreliable);
    sim.drop_all(Side::Client, "OPTIONS");
    let key = sim.send("OPTIONS");
    sim.run_until(40_000);
    // Timer E: 500, 1000, 2000, then capped at T2 = 4 s, until Timer F at 32 s.
    let four = [4000; 7];
    let mut steps = vec![500, 1000, 2000];
    steps.extend_from_slice(&four);
    assert_eq!(sim.sent(Side::Client, "OPTIONS"), schedule(0, &steps));
    assert_eq!(sim.timeouts(Side::Client), vec![(32_000, Timer::F)]);
    assert_eq!(sim.terminated(Side::Client, &key), Some(32_000));

    let mut sim = Sim::new(Reliable);
    sim.drop_all(Side::Client, "OPTIONS");
    sim.send("OPTIONS");
    sim.run_until(40_000);
    assert_eq!(sim.sent(Side::Client, "OPTIONS"), vec![0]);
    assert_eq!(sim.timeouts(Side::Client), vec![(32_000, Timer::F)]);
}

#[test]
fn timer_e_uses_t2_once_proceeding() {
    let mut sim = Sim::new(Unreliable);
    let key = sim.send("OPTIONS");
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 100);
    sim.run_until(40_000);
    // The 100 arrives at 10 ms; E (armed for 500) fires once more, then every T2.
    assert_eq!(
        sim.sent(Side::Client, "OPTIONS"),
        schedule(0, &[500, 4000, 4000, 4000, 4000, 4000, 4000, 4000])
    );
    assert_eq!(sim.timeouts(Side::Client), vec![(32_000, Timer::F)]);
    // §17.1.2.2: every provisional response in Proceeding goes up to the TU.
    let hundreds: Vec<_> = sim.responses(&key).iter().map(|r| r.0).collect();
    assert_eq!(
        hundreds,
        schedule(10, &[500, 4000, 4000, 4000, 4000, 4000, 4000, 4000])
    );
    // The server answers each retransmission with its latest provisional response, and the
    // TU hears of the request once.
    assert_eq!(
        sim.sent(Side::Server, "100"),
        schedule(5, &[500, 4000, 4000, 4000, 4000, 4000, 4000, 4000])
    );
    assert_eq!(sim.server_requests().len(), 1);
}

#[test]
fn timer_k_and_timer_j_linger_only_on_unreliable_transports() {
    for (rel, k_end, j_end) in [(Unreliable, 10 + 5000, 5 + 32_000), (Reliable, 10, 5)] {
        let mut sim = Sim::new(rel);
        let key = sim.send("OPTIONS");
        sim.run_until(5);
        let skey = sim.server_key();
        sim.respond(&skey, 200);
        assert_eq!(
            sim.terminated(Side::Server, &skey).is_some(),
            rel == Reliable
        );
        sim.run_until(10);
        if rel == Unreliable {
            assert_eq!(sim.client_state(&key), Some(State::Completed));
            assert_eq!(sim.client.timers(&key), vec![(Timer::K, sim.at(5010))]);
            assert_eq!(sim.server.timers(&skey), vec![(Timer::J, sim.at(32_005))]);
        }
        sim.run_to_end();
        assert_eq!(sim.terminated(Side::Client, &key), Some(k_end), "{rel:?}");
        assert_eq!(sim.terminated(Side::Server, &skey), Some(j_end), "{rel:?}");
        assert_eq!(sim.responses(&key), vec![(10, 200)]);
        assert_eq!(sim.sent(Side::Client, "OPTIONS"), vec![0]);
    }
}

#[test]
fn timer_g_retransmits_the_final_response_until_timer_h() {
    let mut sim = Sim::new(Unreliable);
    sim.drop_all(Side::Client, "ACK");
    let key = sim.send("INVITE");
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 486);
    sim.run_until(60_000);
    // G: T1, 2·T1, 4·T1, then T2, until H at 64·T1 after the 486.
    let steps = [500, 1000, 2000, 4000, 4000, 4000, 4000, 4000, 4000, 4000];
    assert_eq!(sim.sent(Side::Server, "486"), schedule(5, &steps));
    assert_eq!(sim.timeouts(Side::Server), vec![(32_005, Timer::H)]);
    assert_eq!(sim.terminated(Side::Server, &skey), Some(32_005));
    // The client answers every copy with its ACK and tells its TU once; Timer D ends it.
    assert_eq!(sim.sent(Side::Client, "ACK"), schedule(10, &steps));
    assert_eq!(sim.responses(&key), vec![(10, 486)]);
    assert_eq!(sim.terminated(Side::Client, &key), Some(32_010));
}

#[test]
fn reliable_final_response_is_not_retransmitted_but_timer_h_runs() {
    let mut sim = Sim::new(Reliable);
    sim.drop_all(Side::Client, "ACK");
    sim.send("INVITE");
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 486);
    assert_eq!(sim.server.timers(&skey), vec![(Timer::H, sim.at(32_005))]);
    sim.run_until(60_000);
    assert_eq!(sim.sent(Side::Server, "486"), vec![5]);
    assert_eq!(sim.timeouts(Side::Server), vec![(32_005, Timer::H)]);
}

#[test]
fn timer_i_absorbs_acks_then_ends_and_timer_d_ends_the_client() {
    for (rel, i_end, d_end) in [(Unreliable, 15 + 5000, 10 + 32_000), (Reliable, 15, 10)] {
        let mut sim = Sim::new(rel);
        if rel == Unreliable {
            // Every ACK arrives twice: the second copy is absorbed in Confirmed.
            sim.duplicate_where(usize::MAX, 0, |w| w.label == "ACK");
        }
        let key = sim.send("INVITE");
        sim.run_until(5);
        let skey = sim.server_key();
        sim.respond(&skey, 486);
        sim.run_until(15);
        if rel == Unreliable {
            assert_eq!(sim.server_state(&skey), Some(State::Confirmed));
            assert_eq!(sim.server.timers(&skey), vec![(Timer::I, sim.at(5015))]);
            assert_eq!(sim.client.timers(&key), vec![(Timer::D, sim.at(32_010))]);
        }
        sim.run_to_end();
        assert_eq!(sim.terminated(Side::Server, &skey), Some(i_end), "{rel:?}");
        assert_eq!(sim.terminated(Side::Client, &key), Some(d_end), "{rel:?}");
        assert_eq!(sim.sent(Side::Server, "486"), vec![5]);
        assert!(
            sim.server_acks().is_empty(),
            "ACK for a 486 stays in the layer"
        );
        assert!(sim.timeouts(Side::Server).is_empty());
    }
}

#[test]
fn timers_l_and_m_keep_accepted_invites_for_64_t1() {
    for rel in [Unreliable, Reliable] {
        let mut sim = Sim::new(rel);
        // A copy of the INVITE arrives 600 ms late, in Accepted, where it must be absorbed
        // rather than seen as a new request.
        sim.duplicate_where(1, 600, |w| w.label == "INVITE");
        let key = sim.send("INVITE");
        sim.run_until(5);
        let skey = sim.server_key();
        sim.respond(&skey, 200);
        assert_eq!(sim.server.timers(&skey), vec![(Timer::L, sim.at(32_005))]);
        sim.run_until(10);
        assert_eq!(sim.client_state(&key), Some(State::Accepted));
        assert_eq!(sim.client.timers(&key), vec![(Timer::M, sim.at(32_010))]);
        // The UAS core retransmits its 2xx through the transaction; the client passes every
        // 2xx up (RFC 6026), and the UAC core ACKs outside the transaction.
        sim.run_until(505);
        sim.respond(&skey, 200);
        let invite = sim.client.request(&key).expect("invite").clone();
        let ok = match &sim.client_events[0].1 {
            Event::Response { response, .. } => response.clone(),
            e => panic!("expected the 200, got {e:?}"),
        };
        sim.put(Side::Client, ack_for_2xx(&invite, &ok, "z9hG4bKack1"));
        sim.run_to_end();
        assert_eq!(sim.responses(&key), vec![(10, 200), (510, 200)], "{rel:?}");
        assert_eq!(sim.server_requests().len(), 1);
        assert_eq!(sim.server_acks(), vec![(510, None)]);
        assert_eq!(sim.terminated(Side::Server, &skey), Some(32_005));
        assert_eq!(sim.terminated(Side::Client, &key), Some(32_010));
        // Only the TU's two 2xx went out: the duplicate INVITE drew nothing from the layer.
        assert_eq!(sim.sent(Side::Server, "200"), vec![5, 505]);
    }
}

#[test]
fn hundred_trying_after_200_ms_unless_the_tu_answers() {
    // The TU is silent: the transaction sends 100 Trying at 200 ms; the client stops
    // retransmitting.
    let mut sim = Sim::new(Unreliable);
    let key = sim.send("INVITE");
    sim.run_until(2000);
    assert_eq!(sim.sent(Side::Server, "100"), vec![205]);
    assert_eq!(sim.client_state(&key), Some(State::Proceeding));
    assert_eq!(sim.sent(Side::Client, "INVITE"), vec![0]);

    // The TU rings at 100 ms: no 100 Trying.
    let mut sim = Sim::new(Unreliable);
    sim.send("INVITE");
    sim.run_until(100);
    let skey = sim.server_key();
    sim.respond(&skey, 180);
    sim.run_until(2000);
    assert!(sim.sent(Side::Server, "100").is_empty());
    assert_eq!(sim.sent(Side::Server, "180"), vec![100]);

    // Left to the TU: nothing is sent, and retransmitted INVITEs are absorbed silently.
    let config = Config::default().with_auto_trying(None);
    let mut sim = Sim::with_config(Unreliable, config);
    sim.send("INVITE");
    sim.run_until(2000);
    assert!(sim.wire.iter().all(|w| w.from == Side::Client));
    assert_eq!(sim.sent(Side::Client, "INVITE"), vec![0, 500, 1500]);
    assert_eq!(sim.server_requests().len(), 1);

    // Zero delay: at once.
    let config = Config::default().with_auto_trying(Some(Duration::ZERO));
    let mut sim = Sim::with_config(Unreliable, config);
    sim.send("INVITE");
    sim.run_until(100);
    assert_eq!(sim.sent(Side::Server, "100"), vec![5]);
}

#[test]
fn custom_timer_base_values_scale_every_timer() {
    let ms = Duration::from_millis;
    let timers = TimerConfig::new(ms(100), ms(400), ms(1000)).expect("valid");
    let mut sim = Sim::with_config(Unreliable, Config::new(timers));
    sim.drop_all(Side::Client, "INVITE");
    sim.drop_all(Side::Client, "MESSAGE");
    sim.send("INVITE");
    sim.send("MESSAGE");
    sim.run_until(10_000);
    assert_eq!(
        sim.sent(Side::Client, "INVITE"),
        schedule(0, &[100, 200, 400, 800, 1600, 3200])
    );
    let mut steps = vec![100, 200];
    steps.extend_from_slice(&[400; 15]);
    assert_eq!(sim.sent(Side::Client, "MESSAGE"), schedule(0, &steps));
    assert_eq!(
        sim.timeouts(Side::Client),
        vec![(6400, Timer::B), (6400, Timer::F)]
    );
    // Timer D never drops below 32 s, even with a small T1.
    assert_eq!(timers.timer_d(), Duration::from_secs(32));
    assert!(TimerConfig::new(Duration::ZERO, ms(1), ms(1)).is_err());
    assert!(TimerConfig::new(ms(500), ms(100), ms(1)).is_err());
}

#[test]
fn poll_timeout_is_the_earliest_deadline_and_early_handle_timeout_does_nothing() {
    let mut layer: TransactionLayer<u8> = TransactionLayer::new(Config::default());
    let t0 = std::time::Instant::now();
    let mut sim = Sim::new(Unreliable);
    let invite = sim.request("INVITE");
    let options = sim.request("OPTIONS");
    layer
        .send_request(invite, 1, Unreliable, t0)
        .expect("invite");
    layer
        .send_request(options, 1, Unreliable, t0 + Duration::from_millis(100))
        .expect("options");
    assert_eq!(layer.poll_timeout(), Some(t0 + Duration::from_millis(500)));
    while layer.poll_transmit().is_some() {}
    layer.handle_timeout(t0 + Duration::from_millis(499));
    assert!(layer.poll_transmit().is_none());
    layer.handle_timeout(t0 + Duration::from_millis(600));
    let sent: Vec<_> = std::iter::from_fn(|| layer.poll_transmit())
        .map(|t| {
            Message::parse(t.bytes)
                .expect("parse")
                .method_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        sent,
        vec![Some("INVITE".to_owned()), Some("OPTIONS".to_owned())]
    );
    // Timers re-arm relative to the handle_timeout call: A (2·T1) and E (2·T1) from 600 ms.
    assert_eq!(layer.poll_timeout(), Some(t0 + Duration::from_millis(1600)));
    assert_eq!(layer.len(), 2);
}

/// The server TU answers `key` with a challenge, statelessly, now.
fn challenge(sim: &mut Sim, key: &TransactionKey, status: u16) {
    let request = sim.server.request(key).expect("live transaction").clone();
    let bytes = ResponseBuilder::new(&request, status, "Unauthorized")
        .to_tag("srv1")
        .build();
    sim.server
        .send_response_stateless(key, bytes)
        .expect("sent statelessly");
    sim.flush();
}

#[test]
fn a_stateless_challenge_ends_the_server_transaction_and_a_retransmission_is_new() {
    let mut sim = Sim::new(Unreliable);
    sim.drop_first(Side::Server, "401");
    let key = sim.send("REGISTER");
    sim.run_until(5);
    let first = sim.server_key();
    challenge(&mut sim, &first, 401);
    assert!(sim.server.is_empty(), "no Completed state, no Timer J");
    assert_eq!(sim.terminated(Side::Server, &first), Some(5));
    // The challenge is lost; Timer E brings the request again, and the TU hears of it anew.
    sim.run_until(505);
    let requests = sim.server_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1], first,
        "the same transaction identity, a new transaction"
    );
    challenge(&mut sim, &requests[1], 401);
    assert!(sim.server.is_empty());
    sim.run_to_end();
    assert_eq!(sim.sent(Side::Server, "401"), vec![5, 505]);
    assert_eq!(sim.responses(&key), vec![(510, 401)]);
    assert_eq!(sim.sent(Side::Client, "REGISTER"), vec![0, 500]);
}

#[test]
fn a_stateless_challenge_to_an_invite_is_not_retransmitted_and_its_ack_goes_to_the_tu() {
    let mut sim = Sim::new(Unreliable);
    let key = sim.send("INVITE");
    sim.run_until(5);
    let skey = sim.server_key();
    challenge(&mut sim, &skey, 407);
    assert!(sim.server.is_empty(), "no Timer G, no Timer H");
    sim.run_to_end();
    assert_eq!(sim.sent(Side::Server, "407"), vec![5]);
    assert_eq!(sim.responses(&key), vec![(10, 407)]);
    // The client transaction acknowledges it; the ACK finds no transaction, so it is the
    // TU's to drop.
    assert_eq!(sim.sent(Side::Client, "ACK"), vec![10]);
    assert_eq!(sim.server_acks(), vec![(15, None)]);
    assert!(sim.timeouts(Side::Server).is_empty());
}

#[test]
fn a_stateless_response_must_be_final_and_the_transaction_still_open() {
    let mut sim = Sim::new(Unreliable);
    sim.send("OPTIONS");
    sim.run_until(5);
    let skey = sim.server_key();
    let request = sim.server.request(&skey).expect("live").clone();
    let build = |status| {
        ResponseBuilder::new(&request, status, "X")
            .to_tag("t")
            .build()
    };
    assert_eq!(
        sim.server.send_response_stateless(&skey, build(180)),
        Err(TransactionError::InvalidState {
            state: State::Trying,
            status: 180
        }),
        "a provisional response ends nothing"
    );
    sim.respond(&skey, 200);
    assert_eq!(
        sim.server.send_response_stateless(&skey, build(401)),
        Err(TransactionError::InvalidState {
            state: State::Completed,
            status: 401
        })
    );
    assert_eq!(sim.server_state(&skey), Some(State::Completed));
}
