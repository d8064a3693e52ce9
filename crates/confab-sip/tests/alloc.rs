//! Proves the hot path allocation-free: parsing the benchmark INVITE and reading
//! Via/From/To/Call-ID/CSeq/Contact performs no heap allocation. A counting global allocator
//! counts allocations made by this thread while the measured closure runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use confab_sip::Message;

struct Counting;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // try_with: the thread-local may be gone during thread teardown.
    let _ = ACTIVE.try_with(|a| {
        if a.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: delegates to the system allocator; only adds a thread-local counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations(f: impl FnOnce()) -> usize {
    COUNT.with(|c| c.set(0));
    ACTIVE.with(|a| a.set(true));
    f();
    ACTIVE.with(|a| a.set(false));
    COUNT.with(|c| c.get())
}

static INVITE: &[u8] = include_bytes!("data/bench/invite.sip");
static REGISTER: &[u8] = include_bytes!("data/bench/register.sip");

#[test]
fn counter_sees_allocations() {
    // The instrument works: a Vec allocates.
    let n = allocations(|| {
        let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(64));
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
}

#[test]
fn parse_and_core_headers_do_not_allocate() {
    let n = allocations(|| {
        let m = Message::parse(Bytes::from_static(INVITE)).expect("parse");
        let via = m.via().expect("via");
        std::hint::black_box((via.branch(), via.host(), via.port(), via.rport()));
        let from = m.from().expect("from");
        std::hint::black_box((from.tag(), from.uri().user(), from.uri().host()));
        let to = m.to().expect("to");
        std::hint::black_box((to.tag(), to.uri().user()));
        std::hint::black_box(m.call_id().expect("call-id"));
        std::hint::black_box(m.cseq().expect("cseq"));
        for c in m.contacts() {
            let c = c.expect("contact");
            std::hint::black_box((c.q(), c.expires(), c.address().map(|a| a.uri().host())));
        }
        std::hint::black_box(m.max_forwards().expect("mf"));
        std::hint::black_box(m.body().len());
        drop(m);
    });
    assert_eq!(
        n, 0,
        "parsing the INVITE and reading its core headers allocated {n} times"
    );
}

#[test]
fn register_with_authorization_does_not_allocate() {
    let n = allocations(|| {
        let m = Message::parse(Bytes::from_static(REGISTER)).expect("parse");
        let creds = m
            .authorization()
            .next()
            .expect("authorization")
            .expect("parses");
        std::hint::black_box((
            creds.username(),
            creds.nonce(),
            creds.response(),
            creds.nc(),
        ));
        std::hint::black_box(m.expires().expect("expires"));
        std::hint::black_box(m.contacts().count());
    });
    assert_eq!(n, 0, "parsing the REGISTER allocated {n} times");
}

#[test]
fn validation_of_a_valid_request_does_not_allocate() {
    let m = Message::parse(Bytes::from_static(INVITE)).expect("parse");
    let policy = confab_sip::validate::Policy::default();
    let n = allocations(|| {
        std::hint::black_box(confab_sip::validate::check_request(&m, &policy)).expect("valid");
    });
    assert_eq!(n, 0);
}
