//! A fixed-count loop over the parse hot path, for instruction counting and profiling where
//! wall-clock benchmarks are too noisy: `perf stat -e instructions` or
//! `valgrind --tool=callgrind` on
//! `cargo run --release -p confab-sip --example hot_loop -- [parse|core|via|from|contact] [N]`.

use std::hint::black_box;

use bytes::Bytes;
use confab_sip::Message;

static INVITE: &[u8] = include_bytes!("../tests/data/bench/invite.sip");

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "core".into());
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let parsed = Message::parse(Bytes::from_static(INVITE)).expect("benchmark INVITE parses");
    for _ in 0..n {
        match what.as_str() {
            "parse" => {
                black_box(Message::parse(Bytes::from_static(black_box(INVITE))).is_ok());
            }
            "via" => {
                black_box(
                    black_box(&parsed)
                        .via()
                        .map(|v| v.branch().is_some())
                        .is_ok(),
                );
            }
            "from" => {
                black_box(black_box(&parsed).from().map(|a| a.tag().is_some()).is_ok());
            }
            "contact" => {
                black_box(black_box(&parsed).contacts().filter(|c| c.is_ok()).count());
            }
            _ => {
                let m = Message::parse(Bytes::from_static(black_box(INVITE))).expect("parse");
                black_box(m.via().map(|v| v.branch().is_some()).is_ok());
                black_box(m.from().map(|a| a.tag().is_some()).is_ok());
                black_box(m.to().map(|a| a.tag().is_some()).is_ok());
                black_box(m.call_id().is_ok());
                black_box(m.cseq().is_ok());
                black_box(m.contacts().filter(|c| c.is_ok()).count());
            }
        }
    }
}
