//! Interoperability with a real SIP client: `sipsak` (Debian package `sipsak`) pings a
//! running `confab serve` with OPTIONS over UDP and over TCP and must get 200 OK.
//!
//! Ignored by default because it needs the sipsak binary; `scripts/interop-sipsak.sh`
//! installs it and runs these tests with `--ignored`.
#![cfg(unix)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs sipsak with `args`, killing it if it has not finished within [`WAIT`].
fn sipsak(args: &[&str]) -> Output {
    let mut child = Command::new("sipsak")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipsak runs (install it with scripts/interop-sipsak.sh)");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("sipsak output")
}

fn ping(server: SocketAddr, extra: &[&str]) {
    let uri = format!("sip:ping@{server}");
    let mut args = vec!["-vv", "-s", uri.as_str()];
    args.extend_from_slice(extra);
    let out = sipsak(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sipsak {args:?} failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("SIP/2.0 200 OK"), "{stdout}");
    assert!(stdout.contains("Allow: OPTIONS"), "{stdout}");
}

#[test]
#[ignore = "needs sipsak from Debian's packages: scripts/interop-sipsak.sh"]
fn sipsak_pings_over_udp() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    ping(server.addr("udp"), &[]);
}

#[test]
#[ignore = "needs sipsak from Debian's packages: scripts/interop-sipsak.sh"]
fn sipsak_pings_over_tcp() {
    let server = Running::start(&["--listen", "tcp://127.0.0.1:0"], 1);
    ping(server.addr("tcp"), &["-E", "tcp"]);
}
