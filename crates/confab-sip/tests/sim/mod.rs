//! A simulated network and clock for driving a client transaction layer and a server
//! transaction layer against each other: fixed one-way latency, and rules that drop,
//! duplicate or delay chosen packets. Deterministic: no sockets, no sleeps, no randomness.
//! Time is reported in milliseconds since the start of the simulation.

// Each test binary uses a different subset of the helpers.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_sip::builder::{RequestBuilder, ResponseBuilder};
use confab_sip::transaction::{
    Config, Event, KeyError, Reliability, State, Timer, TransactionKey, TransactionLayer,
};
use confab_sip::Message;

/// One end of the simulated link; also the peer token the layers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// What the network did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    Dropped,
    /// Delivered, and a second copy this many ms later.
    Duplicated(u64),
    Delayed(u64),
}

/// One packet put on the wire.
#[derive(Debug, Clone)]
pub struct Wire {
    /// Position in the order of sending, from 0.
    pub seq: usize,
    /// When it was sent (ms).
    pub at: u64,
    pub from: Side,
    /// The method of a request or the status code of a response (`INVITE`, `486`).
    pub label: String,
    pub fate: Fate,
    pub bytes: Bytes,
}

enum Action {
    Drop,
    Duplicate(Duration),
    Delay(Duration),
}

struct Rule {
    pred: Box<dyn FnMut(&Wire) -> bool>,
    action: Action,
    remaining: usize,
}

struct Packet {
    deliver_at: Instant,
    order: u64,
    from: Side,
    bytes: Bytes,
}

/// The label of a message: method or status code.
pub fn label(bytes: &Bytes) -> String {
    match Message::parse(bytes.clone()) {
        Ok(m) => match (m.method_str(), m.status()) {
            (Some(method), _) => method.to_owned(),
            (None, Some(code)) => code.to_string(),
            (None, None) => "?".to_owned(),
        },
        Err(_) => "unparseable".to_owned(),
    }
}

/// A client layer and a server layer on one simulated link.
pub struct Sim {
    pub start: Instant,
    pub now: Instant,
    pub latency: Duration,
    pub reliability: Reliability,
    pub client: TransactionLayer<Side>,
    pub server: TransactionLayer<Side>,
    pub wire: Vec<Wire>,
    pub client_events: Vec<(u64, Event<Side>)>,
    pub server_events: Vec<(u64, Event<Side>)>,
    /// Messages a layer refused, with the reason.
    pub refused: Vec<(u64, Side, KeyError)>,
    in_flight: Vec<Packet>,
    order: u64,
    rules: Vec<Rule>,
    next_branch: u64,
}

impl Sim {
    /// RFC default timers, 5 ms one-way latency.
    pub fn new(reliability: Reliability) -> Sim {
        Sim::with_config(reliability, Config::default())
    }

    pub fn with_config(reliability: Reliability, config: Config) -> Sim {
        let start = Instant::now();
        Sim {
            start,
            now: start,
            latency: Duration::from_millis(5),
            reliability,
            client: TransactionLayer::new(config),
            server: TransactionLayer::new(config),
            wire: Vec::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            refused: Vec::new(),
            in_flight: Vec::new(),
            order: 0,
            rules: Vec::new(),
            next_branch: 0,
        }
    }

    /// Milliseconds since the start.
    pub fn ms(&self) -> u64 {
        self.ms_of(self.now)
    }

    pub fn ms_of(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.start).as_millis()).expect("ms")
    }

    pub fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    // ---- faults ----

    fn rule(&mut self, count: usize, action: Action, pred: impl FnMut(&Wire) -> bool + 'static) {
        self.rules.push(Rule {
            pred: Box::new(pred),
            action,
            remaining: count,
        });
    }

    /// Drops the first `count` packets matching `pred`.
    pub fn drop_where(&mut self, count: usize, pred: impl FnMut(&Wire) -> bool + 'static) {
        self.rule(count, Action::Drop, pred);
    }

    /// Drops every packet from `from` labelled `label`.
    pub fn drop_all(&mut self, from: Side, label: &'static str) {
        self.drop_where(usize::MAX, move |w| w.from == from && w.label == label);
    }

    /// Drops the first packet from `from` labelled `label`.
    pub fn drop_first(&mut self, from: Side, label: &'static str) {
        self.drop_where(1, move |w| w.from == from && w.label == label);
    }

    /// Drops the `n`th packet put on the wire (from 0).
    pub fn drop_nth(&mut self, n: usize) {
        self.drop_where(1, move |w| w.seq == n);
    }

    /// Delivers the first `count` packets matching `pred` twice, the copy `later_ms` after
    /// the original.
    pub fn duplicate_where(
        &mut self,
        count: usize,
        later_ms: u64,
        pred: impl FnMut(&Wire) -> bool + 'static,
    ) {
        let d = Duration::from_millis(later_ms);
        self.rule(count, Action::Duplicate(d), pred);
    }

    /// Delays the first `count` packets matching `pred` by `extra_ms` on top of the latency,
    /// so that later packets overtake them.
    pub fn delay_where(
        &mut self,
        count: usize,
        extra_ms: u64,
        pred: impl FnMut(&Wire) -> bool + 'static,
    ) {
        let d = Duration::from_millis(extra_ms);
        self.rule(count, Action::Delay(d), pred);
    }

    // ---- the network ----

    /// Puts `bytes` on the wire from `from`, subject to the rules.
    pub fn put(&mut self, from: Side, bytes: Bytes) {
        let mut wire = Wire {
            seq: self.wire.len(),
            at: self.ms(),
            from,
            label: label(&bytes),
            fate: Fate::Delivered,
            bytes: bytes.clone(),
        };
        let mut action = None;
        for r in &mut self.rules {
            if r.remaining > 0 && (r.pred)(&wire) {
                r.remaining -= 1;
                action = Some(&r.action);
                break;
            }
        }
        let deliver_at = self.now + self.latency;
        let copies = match action {
            Some(Action::Drop) => {
                wire.fate = Fate::Dropped;
                vec![]
            }
            Some(Action::Duplicate(d)) => {
                wire.fate = Fate::Duplicated(u64::try_from(d.as_millis()).expect("fits"));
                vec![deliver_at, deliver_at + *d]
            }
            Some(Action::Delay(d)) => {
                wire.fate = Fate::Delayed(u64::try_from(d.as_millis()).expect("delay fits in u64"));
                vec![deliver_at + *d]
            }
            None => vec![deliver_at],
        };
        for at in copies {
            self.order += 1;
            self.in_flight.push(Packet {
                deliver_at: at,
                order: self.order,
                from,
                bytes: bytes.clone(),
            });
        }
        self.wire.push(wire);
    }

    fn layer(&mut self, side: Side) -> &mut TransactionLayer<Side> {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// Moves everything both layers want to send onto the wire and records their events.
    pub fn flush(&mut self) {
        let ms = self.ms();
        for side in [Side::Client, Side::Server] {
            while let Some(t) = self.layer(side).poll_transmit() {
                assert_eq!(t.peer, side.other(), "a layer sends to the other side");
                self.put(side, t.bytes);
            }
            while let Some(e) = self.layer(side).poll_event() {
                match side {
                    Side::Client => self.client_events.push((ms, e)),
                    Side::Server => self.server_events.push((ms, e)),
                }
            }
        }
    }

    fn deliver(&mut self, p: Packet) {
        let to = p.from.other();
        let msg = Message::parse(p.bytes).expect("simulated packets parse");
        let (now, reliability) = (self.now, self.reliability);
        if let Err(e) = self.layer(to).handle_message(msg, p.from, reliability, now) {
            let ms = self.ms();
            self.refused.push((ms, to, e));
        }
        self.flush();
    }

    /// Runs the simulation until `ms`, delivering packets and firing timers on the way.
    pub fn run_until(&mut self, ms: u64) {
        let limit = self.at(ms);
        for _ in 0..1_000_000 {
            self.flush();
            let next = [
                self.client.poll_timeout(),
                self.server.poll_timeout(),
                self.in_flight.iter().map(|p| p.deliver_at).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= limit => {
                    self.now = self.now.max(t);
                    while let Some(i) = self.due_packet() {
                        let p = self.in_flight.remove(i);
                        self.deliver(p);
                    }
                    let now = self.now;
                    self.client.handle_timeout(now);
                    self.server.handle_timeout(now);
                }
                _ => {
                    self.now = self.now.max(limit);
                    self.flush();
                    return;
                }
            }
        }
        panic!("simulation did not settle");
    }

    /// Runs for another `ms` milliseconds.
    pub fn run_for(&mut self, ms: u64) {
        let until = self.ms() + ms;
        self.run_until(until);
    }

    /// Runs until nothing is in flight and no timer is armed (at most ten minutes).
    pub fn run_to_end(&mut self) {
        self.run_until(self.ms() + 600_000);
        assert!(self.client.is_empty() && self.server.is_empty());
    }

    fn due_packet(&self) -> Option<usize> {
        self.in_flight
            .iter()
            .enumerate()
            .filter(|(_, p)| p.deliver_at <= self.now)
            .min_by_key(|(_, p)| (p.deliver_at, p.order))
            .map(|(i, _)| i)
    }

    // ---- messages and TU actions ----

    /// A new request from the client with a fresh branch and Call-ID.
    pub fn request(&mut self, method: &str) -> Bytes {
        self.next_branch += 1;
        let n = self.next_branch;
        let transport = if self.reliability == Reliability::Reliable {
            "TCP"
        } else {
            "UDP"
        };
        RequestBuilder::new(method, "sip:bob@server.example")
            .via(transport, "client.example:5060", &format!("z9hG4bKsim{n}"))
            .header("Max-Forwards", "70")
            .header("From", "<sip:alice@client.example>;tag=a1")
            .header("To", "<sip:bob@server.example>")
            .header("Call-ID", format!("call{n}@client.example"))
            .header("CSeq", format!("1 {method}"))
            .build()
    }

    /// The client starts a transaction for a new `method` request, now.
    pub fn send(&mut self, method: &str) -> TransactionKey {
        let req = self.request(method);
        let (now, rel) = (self.now, self.reliability);
        let key = self
            .client
            .send_request(req, Side::Server, rel, now)
            .expect("send_request");
        self.flush();
        key
    }

    /// The server TU answers transaction `key` with `status`, now.
    pub fn respond(&mut self, key: &TransactionKey, status: u16) {
        let req = self.server.request(key).expect("live transaction").clone();
        let bytes = ResponseBuilder::new(&req, status, reason(status))
            .to_tag("srv1")
            .build();
        let now = self.now;
        self.server
            .send_response(key, bytes, now)
            .expect("send_response");
        self.flush();
    }

    /// Keys of the server transactions the TU was told about, in order (Request and Cancel).
    pub fn server_requests(&self) -> Vec<TransactionKey> {
        self.server_events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Request { key, .. } | Event::Cancel { key, .. } => Some(key.clone()),
                _ => None,
            })
            .collect()
    }

    /// The only server transaction the TU was told about.
    pub fn server_key(&self) -> TransactionKey {
        let keys = self.server_requests();
        assert_eq!(
            keys.len(),
            1,
            "exactly one new server transaction: {keys:?}"
        );
        keys.into_iter().next().expect("one key")
    }

    /// When `from` sent packets labelled `label` (whatever became of them).
    pub fn sent(&self, from: Side, label: &str) -> Vec<u64> {
        self.wire
            .iter()
            .filter(|w| w.from == from && w.label == label)
            .map(|w| w.at)
            .collect()
    }

    pub fn events(&self, side: Side) -> &[(u64, Event<Side>)] {
        match side {
            Side::Client => &self.client_events,
            Side::Server => &self.server_events,
        }
    }

    /// Responses the client TU received on `key`: (ms, status).
    pub fn responses(&self, key: &TransactionKey) -> Vec<(u64, u16)> {
        self.client_events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::Response { key: k, response } if k == key => {
                    Some((*t, response.status().expect("status")))
                }
                _ => None,
            })
            .collect()
    }

    /// Timeouts reported on `side`: (ms, timer).
    pub fn timeouts(&self, side: Side) -> Vec<(u64, Timer)> {
        self.events(side)
            .iter()
            .filter_map(|(t, e)| match e {
                Event::Timeout { timer, .. } => Some((*t, *timer)),
                _ => None,
            })
            .collect()
    }

    /// When transaction `key` on `side` terminated.
    pub fn terminated(&self, side: Side, key: &TransactionKey) -> Option<u64> {
        self.events(side).iter().find_map(|(t, e)| match e {
            Event::Terminated { key: k } if k == key => Some(*t),
            _ => None,
        })
    }

    /// ACKs handed to the server TU: (ms, matched key).
    pub fn server_acks(&self) -> Vec<(u64, Option<TransactionKey>)> {
        self.server_events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::Ack { key, .. } => Some((*t, key.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn server_state(&self, key: &TransactionKey) -> Option<State> {
        self.server.state(key)
    }

    pub fn client_state(&self, key: &TransactionKey) -> Option<State> {
        self.client.state(key)
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        200 => "OK",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        _ => "Whatever",
    }
}

/// The ACK a UAC core sends for a 2xx (RFC 3261 §13.2.2.4): a new branch, not part of the
/// INVITE transaction.
pub fn ack_for_2xx(invite: &Message, response: &Message, branch: &str) -> Bytes {
    let via = invite.via().expect("via");
    let sent_by = match via.port() {
        Some(p) => format!("{}:{p}", via.host_str()),
        None => via.host_str().to_owned(),
    };
    RequestBuilder::new("ACK", invite.request_uri_str().expect("uri"))
        .via(via.transport(), &sent_by, branch)
        .header("Max-Forwards", "70")
        .header(
            "From",
            invite.header(confab_sip::HeaderName::From).expect("from"),
        )
        .header(
            "To",
            response.header(confab_sip::HeaderName::To).expect("to"),
        )
        .header(
            "Call-ID",
            invite.header(confab_sip::HeaderName::CallId).expect("cid"),
        )
        .header("CSeq", format!("{} ACK", invite.cseq().expect("cseq").seq))
        .build()
}

/// Reads an RFC 4475 torture message.
pub fn rfc4475(name: &str) -> Bytes {
    let path = format!(
        "{}/tests/data/rfc4475/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).expect("RFC 4475 file"))
}

/// Milliseconds from the RFC schedule: every element of `steps` added cumulatively to `start`.
pub fn schedule(start: u64, steps: &[u64]) -> Vec<u64> {
    let mut t = start;
    let mut out = vec![t];
    for s in steps {
        t += s;
        out.push(t);
    }
    out
}
