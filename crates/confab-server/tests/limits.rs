//! The limits that protect a front-end: the slow-loris header timeout, the idle timeout, the
//! cap on connections and on message size, and shutdown closing connections.

mod common;

use std::time::{Duration, Instant};

use common::*;
use confab_server::Transport;
use confab_sip::framing::StreamFramer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_is_cut_off_while_others_are_served() {
    let mut config = config(&[Transport::Tcp, Transport::Udp], None);
    config.limits.header_timeout = Duration::from_secs(1);
    let server = TestServer::start(config).await;
    let tcp_addr = server.addr(Transport::Tcp);

    let started = Instant::now();
    let mut loris = tcp_connect(tcp_addr).await;
    let local = loris.local_addr().expect("local");
    // Half a request, then nothing: the message has started and never completes.
    let request = options(Transport::Tcp, local, "loris");
    loris.write_all(&request[..40]).await.expect("write");

    // Meanwhile another client, on TCP and on UDP, is served at once.
    let mut other = tcp_connect(tcp_addr).await;
    let other_local = other.local_addr().expect("local");
    let mut framer = StreamFramer::new(65_535);
    let resp = stream_exchange(
        &mut other,
        &mut framer,
        &options(Transport::Tcp, other_local, "other"),
    )
    .await;
    assert_options_ok(&resp, "other");
    let resp = udp_exchange(server.addr(Transport::Udp), |l| {
        options(Transport::Udp, l, "udp")
    })
    .await;
    assert_options_ok(&resp, "udp");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "served before the timeout"
    );

    assert_closed(&mut loris, Duration::from_secs(3)).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after the header timeout: {waited:?}"
    );

    // A connection that never sends a first message is cut off the same way, even when it
    // keeps it alive with CR LF CR LF pings (which are answered).
    let started = Instant::now();
    let mut pinger = tcp_connect(tcp_addr).await;
    pinger.write_all(b"\r\n\r\n").await.expect("ping");
    // A lone pong is two octets a framer cannot tell from the start of a ping: read them raw.
    let mut pong = [0u8; 2];
    tokio::time::timeout(WAIT, pinger.read_exact(&mut pong))
        .await
        .expect("a pong in time")
        .expect("read");
    assert_eq!(&pong, confab_sip::framing::PONG);
    assert_closed(&mut pinger, Duration::from_secs(3)).await;
    assert!(started.elapsed() >= Duration::from_millis(900));

    // The client that finished its messages stays connected past the header timeout.
    let resp = stream_exchange(
        &mut other,
        &mut framer,
        &options(Transport::Tcp, other_local, "again"),
    )
    .await;
    assert_options_ok(&resp, "again");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let mut config = config(&[Transport::Tcp], None);
    config.limits.idle_timeout = Duration::from_secs(1);
    let server = TestServer::start(config).await;
    let mut tcp = tcp_connect(server.addr(Transport::Tcp)).await;
    let local = tcp.local_addr().expect("local");
    let mut framer = StreamFramer::new(65_535);
    let started = Instant::now();
    let resp = stream_exchange(
        &mut tcp,
        &mut framer,
        &options(Transport::Tcp, local, "idle"),
    )
    .await;
    assert_options_ok(&resp, "idle");
    assert_closed(&mut tcp, Duration::from_secs(3)).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused() {
    let mut config = config(&[Transport::Tcp], None);
    config.limits.max_connections = 1;
    let server = TestServer::start(config).await;
    let addr = server.addr(Transport::Tcp);
    let mut first = tcp_connect(addr).await;
    let local = first.local_addr().expect("local");
    let mut framer = StreamFramer::new(65_535);
    let resp = stream_exchange(
        &mut first,
        &mut framer,
        &options(Transport::Tcp, local, "c-1"),
    )
    .await;
    assert_options_ok(&resp, "c-1");

    let mut second = tcp_connect(addr).await;
    assert_closed(&mut second, WAIT).await;

    // Once the first leaves, there is room again.
    drop(first);
    let deadline = Instant::now() + WAIT;
    while !server.connections.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the closed connection left the table"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut third = tcp_connect(addr).await;
    let local = third.local_addr().expect("local");
    let mut framer = StreamFramer::new(65_535);
    let resp = stream_exchange(
        &mut third,
        &mut framer,
        &options(Transport::Tcp, local, "c-3"),
    )
    .await;
    assert_options_ok(&resp, "c-3");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_dropped_or_close_the_connection() {
    let mut config = config(&[Transport::Udp, Transport::Tcp], None);
    config.limits.max_message_size = 1024;
    let server = TestServer::start(config).await;

    let socket = udp_client().await;
    let local = socket.local_addr().expect("local");
    let udp = server.addr(Transport::Udp);
    let padding = format!("X-Padding: {}\r\n", "p".repeat(2000));
    let big = String::from_utf8(options(Transport::Udp, local, "big").to_vec())
        .expect("text")
        .replacen("Max-Forwards", &format!("{padding}Max-Forwards"), 1);
    socket.send_to(big.as_bytes(), udp).await.expect("send");
    socket
        .send_to(&options(Transport::Udp, local, "small"), udp)
        .await
        .expect("send");
    let resp = response(recv_datagram(&socket).await);
    assert_options_ok(&resp, "small");

    let mut tcp = tcp_connect(server.addr(Transport::Tcp)).await;
    tcp.write_all(big.as_bytes()).await.expect("write");
    assert_closed(&mut tcp, WAIT).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_connections() {
    let server = TestServer::on(&[Transport::Tcp], None).await;
    let mut tcp = tcp_connect(server.addr(Transport::Tcp)).await;
    let local = tcp.local_addr().expect("local");
    let mut framer = StreamFramer::new(65_535);
    let resp = stream_exchange(&mut tcp, &mut framer, &options(Transport::Tcp, local, "s")).await;
    assert_options_ok(&resp, "s");
    server.stop().await;
    assert_closed(&mut tcp, WAIT).await;
}
