//! Criterion benchmarks of the message hot paths: parsing, typed access of the core
//! headers, the proxy edit, and digest verification. Results and method: BENCHMARKS.md.

use std::hint::black_box;

use bytes::Bytes;
use confab_sip::auth::Credentials;
use confab_sip::digest;
use confab_sip::edit::Edit;
use confab_sip::headers::{NameAddr, Via};
use confab_sip::validate::{check_request, Policy};
use confab_sip::{HeaderName, Message, Uri};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

static INVITE: &[u8] = include_bytes!("../tests/data/bench/invite.sip");
static REGISTER: &[u8] = include_bytes!("../tests/data/bench/register.sip");
static OK: &[u8] = include_bytes!("../tests/data/bench/ok.sip");

fn core_headers(m: &Message) {
    let via = m.via().expect("via");
    black_box((via.branch(), via.host(), via.port()));
    let from = m.from().expect("from");
    black_box((from.tag(), from.uri().user()));
    let to = m.to().expect("to");
    black_box((to.tag(), to.uri().user()));
    black_box(m.call_id().expect("call-id"));
    black_box(m.cseq().expect("cseq"));
    for c in m.contacts() {
        black_box(c.expect("contact").expires());
    }
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for (name, msg) in [
        ("invite_1.3k", INVITE),
        ("register_auth", REGISTER),
        ("200_ok", OK),
    ] {
        g.throughput(Throughput::Bytes(msg.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| Message::parse(Bytes::from_static(black_box(msg))).expect("parse"))
        });
    }
    g.finish();
}

fn access(c: &mut Criterion) {
    let mut g = c.benchmark_group("access");
    g.bench_function("invite_parse_and_core_headers", |b| {
        b.iter(|| {
            let m = Message::parse(Bytes::from_static(black_box(INVITE))).expect("parse");
            core_headers(&m);
        })
    });
    let m = Message::parse(Bytes::from_static(INVITE)).expect("parse");
    g.bench_function("invite_core_headers_only", |b| {
        b.iter(|| core_headers(black_box(&m)))
    });
    g.bench_function("invite_validate", |b| {
        b.iter(|| check_request(black_box(&m), &Policy::default()).expect("valid"))
    });
    g.finish();
}

fn headers(c: &mut Criterion) {
    let mut g = c.benchmark_group("header");
    g.bench_function("uri", |b| {
        b.iter(|| {
            Uri::parse(black_box(
                "sip:alice@pc33.atlanta.example.com:5060;transport=udp",
            ))
        })
    });
    g.bench_function("name_addr", |b| {
        b.iter(|| {
            NameAddr::parse(black_box(
                "\"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774",
            ))
        })
    });
    g.bench_function("via", |b| {
        b.iter(|| {
            Via::parse(black_box(
                "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport",
            ))
        })
    });
    g.bench_function("header_name", |b| {
        b.iter(|| HeaderName::from_bytes(black_box(b"Content-Type")))
    });
    g.finish();
}

fn proxy_edit(c: &mut Criterion) {
    let m = Message::parse(Bytes::from_static(INVITE)).expect("parse");
    c.bench_function("proxy_edit/invite", |b| {
        b.iter(|| {
            let mut e = Edit::new(black_box(&m));
            e.push_via("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK.confab.1")
                .push_record_route("<sip:192.0.2.10:5060;lr>")
                .decrement_max_forwards()
                .and_then(|e| e.pop_route())
                .and_then(|e| e.set_request_uri("sip:bob@192.0.2.20:5060"))
                .expect("edits");
            e.apply().expect("apply")
        })
    });
}

fn digest_verify(c: &mut Criterion) {
    let m = Message::parse(Bytes::from_static(REGISTER)).expect("parse");
    let creds: Credentials<'_> = m.authorization().next().expect("auth").expect("parses");
    let ha1 = digest::ha1(digest::Algorithm::Sha256, "alice", "example.com", "secret");
    c.bench_function("digest/verify_sha256", |b| {
        b.iter(|| digest::verify(black_box(&creds), "REGISTER", black_box(&ha1)))
    });
}

criterion_group!(benches, parse, access, headers, proxy_edit, digest_verify);
criterion_main!(benches);
