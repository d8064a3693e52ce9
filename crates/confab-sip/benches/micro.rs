use confab_sip::headers::{Contact, NameAddr, Via};
use confab_sip::HeaderName;
use confab_sip::Uri;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
fn b(c: &mut Criterion) {
    c.bench_function("uri", |b| {
        b.iter(|| {
            Uri::parse(black_box(
                "sip:alice@pc33.atlanta.example.com:5060;transport=udp",
            ))
            .unwrap()
        })
    });
    c.bench_function("nameaddr", |b| {
        b.iter(|| {
            NameAddr::parse(black_box(
                "\"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774",
            ))
            .unwrap()
            .tag()
        })
    });
    c.bench_function("via", |b| {
        b.iter(|| {
            Via::parse(black_box(
                "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport",
            ))
            .unwrap()
            .branch()
        })
    });
    c.bench_function("contact", |b| b.iter(|| Contact::parse(black_box("<sip:alice@pc33.atlanta.example.com:5060;transport=udp>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"")).unwrap().expires()));
    c.bench_function("hname", |b| {
        b.iter(|| HeaderName::from_bytes(black_box(b"Content-Type")))
    });
}
criterion_group!(g, b);
criterion_main!(g);
