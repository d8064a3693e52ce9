//! Recovery from a lossy, duplicating, reordering network: the loss of each message of an
//! INVITE transaction (INVITE, 100, 180, 486, ACK, and the 200 on the accepted path), of each
//! message of a non-INVITE transaction, and absorption of duplicates. UDP, RFC timers, 5 ms
//! one-way latency; times are ms since the start.

mod sim;

use std::collections::BTreeSet;

use confab_sip::transaction::{Config, Event, Reliability, State, TransactionKey};
use sim::{ack_for_2xx, Fate, Side, Sim};

use Reliability::Unreliable;

#[test]
fn lost_invite_is_retransmitted_by_timer_a() {
    let mut sim = Sim::new(Unreliable);
    sim.drop_nth(0);
    let key = sim.send("INVITE");
    sim.run_until(505);
    let skey = sim.server_key();
    assert!(matches!(sim.server_events[0], (505, Event::Request { .. })));
    sim.respond(&skey, 486);
    sim.run_until(1000);
    assert_eq!(sim.wire[0].fate, Fate::Dropped);
    assert_eq!(sim.sent(Side::Client, "INVITE"), vec![0, 500]);
    assert_eq!(sim.responses(&key), vec![(510, 486)]);
    assert_eq!(sim.server_state(&skey), Some(State::Confirmed));
}

#[test]
fn lost_100_trying_is_resent_on_the_invite_retransmission() {
    let mut sim = Sim::new(Unreliable);
    sim.drop_first(Side::Server, "100");
    let key = sim.send("INVITE");
    sim.run_until(3000);
    assert_eq!(sim.sent(Side::Server, "100"), vec![205, 505]);
    assert_eq!(sim.sent(Side::Client, "INVITE"), vec![0, 500]);
    assert_eq!(sim.responses(&key), vec![(510, 100)]);
    assert_eq!(sim.client_state(&key), Some(State::Proceeding));
    assert_eq!(sim.server_requests().len(), 1);
}

#[test]
fn lost_180_is_resent_on_the_invite_retransmission() {
    let mut sim = Sim::new(Unreliable);
    sim.drop_first(Side::Server, "180");
    let key = sim.send("INVITE");
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 180);
    sim.run_until(3000);
    assert_eq!(sim.sent(Side::Server, "180"), vec![5, 505]);
    assert!(sim.sent(Side::Server, "100").is_empty());
    assert_eq!(sim.responses(&key), vec![(510, 180)]);
    assert_eq!(sim.sent(Side::Client, "INVITE"), vec![0, 500]);
}

#[test]
fn lost_final_response_is_resent_by_timer_g() {
    let mut sim = Sim::new(Unreliable);
    sim.drop_first(Side::Server, "486");
    let key = sim.send("INVITE");
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 180);
    sim.run_until(100);
    sim.respond(&skey, 486);
    sim.run_until(1000);
    // Proceeding: the client does not retransmit; the server's Timer G recovers.
    assert_eq!(sim.sent(Side::Client, "INVITE"), vec![0]);
    assert_eq!(sim.sent(Side::Server, "486"), vec![100, 600]);
    assert_eq!(sim.responses(&key), vec![(10, 180), (605, 486)]);
    assert_eq!(sim.sent(Side::Client, "ACK"), vec![605]);
    assert_eq!(sim.server_state(&skey), Some(State::Confirmed));
}

#[test]
fn lost_ack_is_resent_on_the_final_response_retransmission() {
    let mut sim = Sim::new(Unreliable);
    sim.drop_first(Side::Client, "ACK");
    let key = sim.send("INVITE");
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 486);
    sim.run_until(1000);
    assert_eq!(sim.sent(Side::Client, "ACK"), vec![10, 510]);
    assert_eq!(sim.sent(Side::Server, "486"), vec![5, 505]);
    assert_eq!(sim.responses(&key), vec![(10, 486)]);
    assert_eq!(sim.server_state(&skey), Some(State::Confirmed));
    sim.run_to_end();
    assert_eq!(sim.terminated(Side::Server, &skey), Some(515 + 5000));
    assert!(sim.timeouts(Side::Server).is_empty());
}

/// Plays the two cores around an accepted INVITE until `end`: the UAS core retransmits its
/// 2xx at T1, 2·T1 … T2 from `first_2xx` until an ACK arrives (RFC 3261 §13.3.1.4), and the
/// UAC core ACKs every 2xx it receives (§13.2.2.4).
fn run_2xx_cores(sim: &mut Sim, key: &TransactionKey, skey: &TransactionKey, first: u64, end: u64) {
    let (mut next, mut interval) = (first + 500, 500);
    let mut acked = 0;
    for t in sim.ms()..=end {
        sim.run_until(t);
        let oks: Vec<_> = sim
            .client_events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Response { key: k, response } if k == key => Some(response.clone()),
                _ => None,
            })
            .filter(|r| r.status() == Some(200))
            .collect();
        for ok in oks.iter().skip(acked) {
            let invite = sim.client.request(key).expect("invite").clone();
            sim.put(Side::Client, ack_for_2xx(&invite, ok, "z9hG4bKack2xx"));
        }
        acked = oks.len();
        if t == next && sim.server_acks().is_empty() {
            sim.respond(skey, 200);
            interval = (interval * 2).min(4000);
            next += interval;
        }
    }
}

#[test]
fn lost_200_in_proceeding_is_recovered_by_the_uas_core() {
    let mut sim = Sim::new(Unreliable);
    sim.drop_first(Side::Server, "200");
    let key = sim.send("INVITE");
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 180);
    sim.run_until(100);
    sim.respond(&skey, 200);
    run_2xx_cores(&mut sim, &key, &skey, 100, 5000);
    assert_eq!(sim.sent(Side::Server, "200"), vec![100, 600]);
    assert_eq!(sim.responses(&key), vec![(10, 180), (605, 200)]);
    assert_eq!(sim.client_state(&key), Some(State::Accepted));
    assert_eq!(sim.server_acks(), vec![(610, None)]);
    assert_eq!(sim.sent(Side::Client, "INVITE"), vec![0]);
}

#[test]
fn lost_200_in_calling_the_server_absorbs_invite_retransmissions() {
    let config = Config::default().with_auto_trying(None);
    let mut sim = Sim::with_config(Unreliable, config);
    sim.drop_first(Side::Server, "200");
    let key = sim.send("INVITE");
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 200);
    run_2xx_cores(&mut sim, &key, &skey, 5, 5000);
    // The retransmitted INVITE reaches the server in Accepted at 505 and draws nothing: only
    // the UAS core's two 2xx go out.
    assert_eq!(sim.sent(Side::Client, "INVITE"), vec![0, 500]);
    assert_eq!(sim.sent(Side::Server, "200"), vec![5, 505]);
    assert_eq!(sim.responses(&key), vec![(510, 200)]);
    assert_eq!(sim.server_requests().len(), 1);
    assert_eq!(sim.server_acks(), vec![(515, None)]);
    sim.run_to_end();
}

#[test]
fn non_invite_recovers_from_a_lost_request_and_a_lost_response() {
    let mut sim = Sim::new(Unreliable);
    sim.drop_first(Side::Client, "OPTIONS");
    sim.drop_first(Side::Server, "200");
    let key = sim.send("OPTIONS");
    sim.run_until(505);
    let skey = sim.server_key();
    sim.respond(&skey, 200);
    sim.run_until(3000);
    // Timer E resends at 500 (lost request) and 1500 (lost response, which the server's
    // Completed state answers with its 200 again).
    assert_eq!(sim.sent(Side::Client, "OPTIONS"), vec![0, 500, 1500]);
    assert_eq!(sim.sent(Side::Server, "200"), vec![505, 1505]);
    assert_eq!(sim.responses(&key), vec![(1510, 200)]);
    assert_eq!(sim.client_state(&key), Some(State::Completed));
    assert_eq!(sim.server_requests().len(), 1);
}

#[test]
fn server_absorbs_retransmissions_while_the_tu_thinks() {
    let mut sim = Sim::new(Unreliable);
    let key = sim.send("MESSAGE");
    sim.run_until(2000);
    assert_eq!(sim.sent(Side::Client, "MESSAGE"), vec![0, 500, 1500]);
    assert!(sim.wire.iter().all(|w| w.from == Side::Client));
    let skey = sim.server_key();
    assert_eq!(sim.server_state(&skey), Some(State::Trying));
    sim.respond(&skey, 200);
    sim.run_until(3000);
    assert_eq!(sim.responses(&key), vec![(2005, 200)]);
    assert_eq!(sim.server_requests().len(), 1);
}

#[test]
fn every_packet_duplicated_changes_nothing_the_tus_rely_on() {
    let mut sim = Sim::new(Unreliable);
    sim.duplicate_where(usize::MAX, 0, |_| true);
    let key = sim.send("INVITE");
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 180);
    sim.run_until(50);
    sim.respond(&skey, 486);
    sim.run_to_end();
    assert_eq!(sim.server_requests().len(), 1);
    let statuses: Vec<_> = sim.responses(&key).iter().map(|r| r.1).collect();
    // Provisional responses go up every time (§17.1.1.2); the final response once.
    assert_eq!(statuses.iter().filter(|s| **s >= 200).count(), 1);
    assert_eq!(statuses.last(), Some(&486));
    // The duplicate 486 drew a second ACK; both ACK copies were absorbed.
    assert_eq!(sim.sent(Side::Client, "ACK"), vec![55, 55]);
    assert!(sim.server_acks().is_empty());
    assert!(sim.timeouts(Side::Server).is_empty() && sim.timeouts(Side::Client).is_empty());
    assert!(sim.refused.is_empty());
    assert!(sim
        .events(Side::Client)
        .iter()
        .all(|(_, e)| !matches!(e, Event::StrayResponse { .. })));
}

#[test]
fn a_provisional_overtaken_by_the_final_response_is_ignored() {
    let mut sim = Sim::new(Unreliable);
    sim.delay_where(1, 50, |w| w.label == "180");
    let key = sim.send("INVITE");
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 180);
    sim.run_until(6);
    sim.respond(&skey, 486);
    sim.run_until(1000);
    assert_eq!(sim.responses(&key), vec![(11, 486)]);
    assert_eq!(sim.client_state(&key), Some(State::Completed));
    assert_eq!(sim.server_state(&skey), Some(State::Confirmed));
}

/// What a run put on the wire (time, sender, label, fate) and every event, as text.
type Trace = (Vec<(u64, Side, String, Fate)>, BTreeSet<String>);

#[test]
fn the_same_faults_replay_the_same_run() {
    fn run() -> Trace {
        let mut sim = Sim::new(Unreliable);
        sim.drop_nth(0);
        sim.drop_nth(3);
        sim.duplicate_where(2, 7, |w| w.from == Side::Server);
        sim.delay_where(1, 30, |w| w.label == "ACK");
        sim.send("INVITE");
        sim.run_until(505);
        let skey = sim.server_key();
        sim.respond(&skey, 180);
        sim.run_until(700);
        sim.respond(&skey, 603);
        sim.run_to_end();
        let wire = sim
            .wire
            .iter()
            .map(|w| (w.at, w.from, w.label.clone(), w.fate))
            .collect();
        let events = sim
            .client_events
            .iter()
            .chain(&sim.server_events)
            .map(|(t, e)| format!("{t} {e:?}"))
            .collect();
        (wire, events)
    }
    let first = run();
    assert_eq!(first, run());
    assert!(first.0.iter().any(|w| w.3 == Fate::Dropped));
}
