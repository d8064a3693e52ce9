//! `confab serve` as an operator runs it: it prints its actual listeners, answers OPTIONS,
//! takes its settings from options, environment and config file in that order, serves TLS
//! with a pair made by `confab tls generate`, reports a port in use, and stops cleanly on
//! SIGTERM and SIGINT.
#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use confab_sip::builder::RequestBuilder;
use confab_sip::framing::{Frame, StreamFramer};
use confab_sip::Message;

/// Writes `request` to a stream and reads one SIP message back.
fn stream_exchange(io: &mut impl ReadWrite, request: &[u8]) -> Message {
    io.write_all(request).expect("write");
    io.flush().expect("flush");
    let mut framer = StreamFramer::new(65_535);
    let mut buf = [0u8; 4096];
    // Bounded by the socket's read timeout and the size limit of the framer.
    loop {
        match framer.next_frame().expect("frames") {
            Some(Frame::Message(m)) => return m,
            Some(other) => panic!("expected a message, got {other:?}"),
            None => {}
        }
        let n = io.read(&mut buf).expect("a response in time");
        assert!(n > 0, "the server closed the connection");
        framer.push(&buf[..n]);
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

#[test]
fn serve_answers_options_and_stops_on_sigterm() {
    let mut server = Running::start(
        &[
            "--listen",
            "udp://127.0.0.1:0",
            "--listen",
            "tcp://127.0.0.1:0",
        ],
        2,
    );
    assert!(
        server.listening[0].starts_with("udp://127.0.0.1:"),
        "{:?}",
        server.listening
    );
    assert!(
        server.listening[1].starts_with("tcp://127.0.0.1:"),
        "{:?}",
        server.listening
    );
    assert_options_ok(&udp_options(server.addr("udp"), "bin-udp"), "bin-udp");

    let mut conn = tcp(server.addr("tcp"));
    let local = conn.local_addr().expect("local");
    let resp = stream_exchange(&mut conn, &options("TCP", local, "bin-tcp"));
    assert_options_ok(&resp, "bin-tcp");

    let status = server.signal("TERM");
    assert!(status.success(), "{status:?}; stderr:\n{}", server.stderr());
    let log = server.stderr();
    assert!(
        log.contains("SIGTERM") && log.contains("confab serve stopped"),
        "{log}"
    );
    assert!(log.contains("admin API, web console and metrics"), "{log}");
    assert!(log.contains("admin listener stopped"), "{log}");
    assert!(server.admin.is_some(), "the admin listener is announced");
}

#[test]
fn serve_stops_on_sigint() {
    let mut server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    let status = server.signal("INT");
    assert!(status.success(), "{status:?}; stderr:\n{}", server.stderr());
    assert!(server.stderr().contains("SIGINT"), "{}", server.stderr());
}

#[test]
fn tls_with_a_generated_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let (c, k) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let made = confab(&["tls", "generate", "--cert", c, "--key", k])
        .output()
        .expect("runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let server = Running::start(
        &[
            "--listen",
            "tls://127.0.0.1:0",
            "--tls-cert",
            c,
            "--tls-key",
            k,
            "--admin-tls",
        ],
        1,
    );
    let pem = std::fs::read(&cert).expect("cert");
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for der in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(der.expect("PEM")).expect("trust it");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn =
        rustls::ClientConnection::new(Arc::new(config.clone()), name.clone()).expect("client");
    let sock = tcp(server.addr("tls"));
    let local = sock.local_addr().expect("local");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let resp = stream_exchange(&mut tls, &options("TLS", local, "bin-tls"));
    assert_options_ok(&resp, "bin-tls");
    // The admin listener speaks HTTPS with the same certificate (admin_tls).
    let admin = server.admin.expect("the admin listener");
    let conn =
        rustls::ClientConnection::new(Arc::new(config.clone()), name.clone()).expect("client");
    let mut https = rustls::StreamOwned::new(conn, tcp(admin));
    https
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    let _ = https.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");
}

#[test]
fn options_beat_environment_beats_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        "confab.toml",
        "listen = [\"udp://127.0.0.1:0\"]\nheader_timeout = \"2s\"\nlog_level = \"debug\"\n",
    );
    let config = config.to_str().expect("utf-8");

    let from_file = Running::start(&["--config", config], 1);
    assert!(
        from_file.listening[0].starts_with("udp://"),
        "{:?}",
        from_file.listening
    );
    // log_level = "debug" from the file: the answered request is logged at debug, before
    // the response is sent.
    assert_options_ok(&udp_options(from_file.addr("udp"), "file"), "file");
    assert!(
        from_file.stderr().contains("DEBUG"),
        "{}",
        from_file.stderr()
    );
    drop(from_file);

    let mut env = confab(&[]);
    env.env("CONFAB_LISTEN", "tcp://127.0.0.1:0,ws://127.0.0.1:0")
        .env("CONFAB_LOG_LEVEL", "warn");
    let from_env = Running::start_with(env, &["--config", config], 2);
    assert!(
        from_env.listening[0].starts_with("tcp://"),
        "{:?}",
        from_env.listening
    );
    assert!(
        from_env.listening[1].starts_with("ws://"),
        "{:?}",
        from_env.listening
    );
    assert!(!from_env.stderr().contains("INFO"), "{}", from_env.stderr());
    drop(from_env);

    let mut env = confab(&[]);
    env.env("CONFAB_LISTEN", "tcp://127.0.0.1:0");
    let from_flag = Running::start_with(
        env,
        &["--config", config, "--listen", "udp://127.0.0.1:0"],
        1,
    );
    assert_eq!(from_flag.listening.len(), 1);
    assert!(
        from_flag.listening[0].starts_with("udp://"),
        "{:?}",
        from_flag.listening
    );
}

/// Receives datagrams until none comes for `quiet`.
fn drain(socket: &UdpSocket, quiet: Duration) -> Vec<Vec<u8>> {
    socket.set_read_timeout(Some(quiet)).expect("timeout");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_535];
    while let Ok((n, _)) = socket.recv_from(&mut buf) {
        got.push(buf[..n].to_vec());
        assert!(got.len() < 100, "a flood of datagrams");
    }
    got
}

#[test]
fn serve_runs_transactions_with_the_configured_timers() {
    // T1 from the environment, T2 from the command line: Timer G every 20, 40, 80, 80 … ms
    // for the final response to an INVITE over UDP.
    let mut env = confab(&[]);
    env.env("CONFAB_T1", "20ms");
    let server = Running::start_with(env, &["--listen", "udp://127.0.0.1:0", "--t2", "80ms"], 1);
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = socket.local_addr().expect("local");
    let invite = |method: &str, to: &str| {
        RequestBuilder::new(method, "sip:ping@127.0.0.1")
            .via("UDP", &local.to_string(), "z9hG4bK-bin-invite")
            .header("From", "<sip:tester@example.com>;tag=t1")
            .header("To", to)
            .header("Call-ID", "bin-invite")
            .header("CSeq", format!("1 {method}"))
            .header("Max-Forwards", "70")
            .build()
    };
    socket
        .send_to(
            &invite("INVITE", "<sip:ping@127.0.0.1>"),
            server.addr("udp"),
        )
        .expect("send");
    // The 404 (no user `ping`) and, well before the default T1 of 500 ms, its
    // retransmissions.
    socket.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = vec![0u8; 65_535];
    let (n, _) = socket.recv_from(&mut buf).expect("the 404 in time");
    let first = buf[..n].to_vec();
    let refusal = Message::parse(Bytes::from(first.clone())).expect("parses");
    assert_eq!(refusal.status(), Some(404));
    let again = drain(&socket, Duration::from_millis(150));
    assert!(again.len() >= 2, "{} retransmissions", again.len());
    assert!(again.iter().all(|d| *d == first));
    // The ACK stops them (one may have been on its way) and gets no response.
    let to = refusal.header(confab_sip::HeaderName::To).expect("To");
    socket
        .send_to(&invite("ACK", to), server.addr("udp"))
        .expect("send");
    let late = drain(&socket, Duration::from_millis(400));
    assert!(late.len() <= 1, "{} datagrams after the ACK", late.len());
    assert!(
        server.stderr().contains("t1=20ms"),
        "the timers are logged: {}",
        server.stderr()
    );
}

#[test]
fn a_port_in_use_is_reported_with_the_fix() {
    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("local").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = confab(&["serve", "--listen", &format!("udp://127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("udp://127.0.0.1:{port}")), "{err}");
    assert!(err.contains("another process"), "{err}");
    assert!(out.stdout.is_empty(), "nothing listening");
}
