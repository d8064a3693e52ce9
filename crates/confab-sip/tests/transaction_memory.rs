//! What a completed transaction costs in memory while it lingers to absorb retransmissions.
//!
//! Over UDP a non-INVITE server transaction stays in Completed for Timer J, 64·T1 = 32 s
//! (RFC 3261 §17.2.2), and a non-INVITE client transaction for Timer K, T4 = 5 s: at 20,000
//! transactions a second that is hundreds of thousands alive at once, so what each one keeps
//! decides the server's memory under load. A counting global allocator (the house way, as
//! in `alloc.rs`) follows the live heap bytes of this thread while N transactions are driven
//! to Completed the way a driver does: received, answered, sent, their events drained.
//!
//! The bound: a server transaction keeps its final response, which it must send again when
//! the request is retransmitted, and at most [`BOOKKEEPING`] bytes more — its key (branch,
//! sent-by, method: about 64 bytes in one buffer), its slot in the transaction map (40
//! bytes), its place in the Timer J queue (32 bytes). A client transaction keeps only the
//! bookkeeping. The figures include the map's and the queue's spare capacity, so they depend
//! a little on N (both double as they grow): N = 50,000 fills three quarters of what it
//! grew to. They count the bytes asked of the allocator, not its own overhead.
//!
//! Before the layer compacted completed transactions, the same run kept 2,873 bytes per
//! server transaction and 2,377 per client transaction (the whole request, the key twice,
//! the machine and its timer set); now 536 (373 of them the response) and 151.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use bytes::Bytes;
use confab_sip::builder::{RequestBuilder, ResponseBuilder};
use confab_sip::transaction::{
    Config, Event, Reliability, State, TransactionKey, TransactionLayer,
};
use confab_sip::Message;

struct Counting;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    // try_with: the thread-locals may be gone during thread teardown.
    let _ = ACTIVE.try_with(|a| {
        if a.get() {
            let _ = LIVE.try_with(|l| l.set(l.get() + delta));
        }
    });
}

fn size(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

// SAFETY: delegates to the system allocator; only adds a thread-local byte count.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(size(layout.size()));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-size(layout.size()));
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(size(new_size) - size(layout.size()));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns what it returns, with the heap bytes this thread holds more after
/// it than before.
fn retained<R>(f: impl FnOnce() -> R) -> (R, isize) {
    LIVE.with(|l| l.set(0));
    ACTIVE.with(|a| a.set(true));
    let r = f();
    ACTIVE.with(|a| a.set(false));
    (r, LIVE.with(Cell::get))
}

const N: usize = 50_000;

/// Bytes of bookkeeping a completed transaction may keep beyond its response.
const BOOKKEEPING: usize = 200;

/// A REGISTER as a softphone sends it, in transaction `i` (about 450 octets).
fn register(i: usize) -> Bytes {
    RequestBuilder::new("REGISTER", "sip:example.com")
        .header(
            "Via",
            format!("SIP/2.0/UDP 192.0.2.44:5060;branch=z9hG4bK.{i:08x}a9c31f;rport"),
        )
        .header("Max-Forwards", "70")
        .header("From", "\"Alice\" <sip:alice@example.com>;tag=456248")
        .header("To", "\"Alice\" <sip:alice@example.com>")
        .header("Call-ID", "843817637684230@998sdasdh09")
        .header("CSeq", format!("{} REGISTER", i + 1))
        .header(
            "Contact",
            "<sip:alice@192.0.2.44:5060;transport=udp>;expires=3600;reg-id=1",
        )
        .header("Supported", "path, outbound, gruu")
        .header("User-Agent", "Confab-Bench/1.0")
        .header("Expires", "3600")
        .build()
}

/// The registrar's 200 OK to `request`, about 350 octets.
fn ok(request: &Message) -> Bytes {
    ResponseBuilder::new(request, 200, "OK")
        .to_tag("8a1f0c5e3b2d4796")
        .header(
            "Contact",
            "<sip:alice@192.0.2.44:5060;transport=udp>;expires=3600",
        )
        .header("Date", "Sat, 13 Nov 2010 23:29:00 GMT")
        .build()
}

fn drain(layer: &mut TransactionLayer<u8>) {
    while layer.poll_transmit().is_some() {}
    while layer.poll_event().is_some() {}
}

/// A datagram as the UDP transport hands it on: copied out of the receive buffer, parsed.
fn received(datagram: &[u8]) -> Message {
    Message::parse(Bytes::copy_from_slice(datagram)).expect("parses")
}

/// Live heap bytes per transaction after `run` has driven N of them to Completed in
/// `layer`, less what the keys `run` returns hold on their own.
fn per_transaction(
    layer: &mut TransactionLayer<u8>,
    run: impl FnOnce(&mut TransactionLayer<u8>) -> Vec<TransactionKey>,
) -> usize {
    let (keys, bytes) = retained(|| run(layer));
    assert_eq!(layer.len(), N);
    assert!(keys
        .iter()
        .all(|k| layer.state(k) == Some(State::Completed)));
    // The keys the test holds on to are the test's, not the layer's.
    let (_, freed) = retained(|| drop(keys));
    usize::try_from(bytes + freed).unwrap_or(usize::MAX) / N
}

#[test]
fn a_completed_server_transaction_keeps_its_response_and_little_more() {
    // The datagrams arrive from outside; everything made from them is counted: the parsed
    // request, its key, the response the TU builds, what the layer keeps of them.
    let datagrams: Vec<Bytes> = (0..N).map(register).collect();
    let response_len = ok(&received(&datagrams[0])).len();
    assert!(
        (300..400).contains(&response_len),
        "a realistic 200 OK: {response_len} octets"
    );
    let now = Instant::now();
    let mut layer = TransactionLayer::new(Config::default());
    let per_transaction = per_transaction(&mut layer, |layer| {
        let mut keys = Vec::with_capacity(N);
        for datagram in &datagrams {
            layer
                .handle_message(received(datagram), 1, Reliability::Unreliable, now)
                .expect("a transaction");
            let (key, response) = match layer.poll_event() {
                Some(Event::Request { key, request, .. }) => (key, ok(&request)),
                other => panic!("expected the request, got {other:?}"),
            };
            drain(layer);
            layer.send_response(&key, response, now).expect("sent");
            drain(layer);
            keys.push(key);
        }
        keys
    });
    println!(
        "completed non-INVITE server transaction: {per_transaction} bytes \
         (the response: {response_len} octets)"
    );
    assert!(
        per_transaction <= response_len + BOOKKEEPING,
        "a completed server transaction keeps {per_transaction} bytes, \
         more than its {response_len}-octet response and {BOOKKEEPING} bytes of bookkeeping"
    );
}

#[test]
fn a_completed_client_transaction_keeps_only_bookkeeping() {
    let datagrams: Vec<Bytes> = (0..N).map(|i| ok(&received(&register(i)))).collect();
    let now = Instant::now();
    let mut layer = TransactionLayer::new(Config::default());
    let per_transaction = per_transaction(&mut layer, |layer| {
        let mut keys = Vec::with_capacity(N);
        for (i, datagram) in datagrams.iter().enumerate() {
            let key = layer
                .send_request(register(i), 1, Reliability::Unreliable, now)
                .expect("sent");
            drain(layer);
            layer
                .handle_message(received(datagram), 1, Reliability::Unreliable, now)
                .expect("matched");
            drain(layer);
            keys.push(key);
        }
        keys
    });
    println!("completed non-INVITE client transaction: {per_transaction} bytes");
    assert!(
        per_transaction <= BOOKKEEPING,
        "a completed client transaction keeps {per_transaction} bytes, \
         more than {BOOKKEEPING} bytes of bookkeeping"
    );
}
