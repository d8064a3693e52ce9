//! OPTIONS over every transport, response routing, and what the server does with bad input,
//! against an in-process server on ephemeral loopback ports.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use confab_server::Transport;
use confab_sip::framing::{Frame, StreamFramer, PONG};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_over_udp() {
    let server = TestServer::on(&[Transport::Udp], None).await;
    let addr = server.addr(Transport::Udp);
    let mut local = None;
    let resp = udp_exchange(addr, |l| {
        local = Some(l);
        options(Transport::Udp, l, "udp-1")
    })
    .await;
    assert_options_ok(&resp, "udp-1");
    let via = resp.via().expect("via");
    let local = local.expect("local address");
    // rport filled in with the source port (RFC 3581); sent-by is the source address, so
    // received is added only because rport was asked for.
    assert_eq!(via.rport(), Some(Some(local.port())));
    assert_eq!(via.received(), Some(local.ip()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_without_rport_is_answered_at_the_sent_by_port() {
    let server = TestServer::on(&[Transport::Udp], None).await;
    let addr = server.addr(Transport::Udp);
    let sender = udp_client().await;
    let listener = udp_client().await;
    let sent_by = listener.local_addr().expect("local").to_string();
    let request = options_with(Transport::Udp, &sent_by, "no-rport", false);
    sender.send_to(&request, addr).await.expect("send");
    // RFC 3261 §18.2.2: to the sent-by port, not back to the sending socket.
    let resp = response(recv_datagram(&listener).await);
    assert_options_ok(&resp, "no-rport");
    assert_eq!(
        try_recv_datagram(&sender, Duration::from_millis(100)).await,
        None
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_over_tcp_with_pipelining_and_keepalive() {
    let server = TestServer::on(&[Transport::Tcp], None).await;
    let mut tcp = tcp_connect(server.addr(Transport::Tcp)).await;
    let local = tcp.local_addr().expect("local");
    let mut framer = StreamFramer::new(65_535);
    let resp = stream_exchange(
        &mut tcp,
        &mut framer,
        &options(Transport::Tcp, local, "tcp-1"),
    )
    .await;
    assert_options_ok(&resp, "tcp-1");

    // Two requests and a ping in one write: two responses and a pong, in order.
    let mut burst = options(Transport::Tcp, local, "tcp-2").to_vec();
    burst.extend_from_slice(b"\r\n\r\n");
    burst.extend_from_slice(&options(Transport::Tcp, local, "tcp-3"));
    tcp.write_all(&burst).await.expect("write");
    assert_options_ok(&read_message(&mut tcp, &mut framer).await, "tcp-2");
    assert!(
        matches!(read_frame(&mut tcp, &mut framer).await, Frame::Pong),
        "PONG {PONG:?}"
    );
    assert_options_ok(&read_message(&mut tcp, &mut framer).await, "tcp-3");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (files, der) = certificate(dir.path());
    let server = TestServer::on(&[Transport::Tls], Some(files)).await;
    let tcp = tcp_connect(server.addr(Transport::Tls)).await;
    let local = tcp.local_addr().expect("local");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut tls = tokio::time::timeout(WAIT, tls_client(&der).connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("the client trusts the certificate");
    let mut framer = StreamFramer::new(65_535);
    let resp = stream_exchange(
        &mut tls,
        &mut framer,
        &options(Transport::Tls, local, "tls-1"),
    )
    .await;
    assert_options_ok(&resp, "tls-1");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_over_websocket() {
    let server = TestServer::on(&[Transport::Ws], None).await;
    let addr = server.addr(Transport::Ws);
    let mut request = format!("ws://{addr}/")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static("sip"),
    );
    let tcp = tcp_connect(addr).await;
    let (mut ws, handshake) =
        tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, tcp))
            .await
            .expect("handshake in time")
            .expect("upgrade accepted");
    assert_eq!(
        handshake.headers().get(header::SEC_WEBSOCKET_PROTOCOL),
        Some(&HeaderValue::from_static("sip"))
    );
    // RFC 7118 clients put an invalid host in Via; the response comes back on the socket.
    let req = options_with(Transport::Ws, "df7jal23ls0d.invalid", "ws-1", true);
    let text = String::from_utf8(req.to_vec()).expect("text");
    ws.send(WsMessage::text(text)).await.expect("send");
    let frame = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a response in time")
        .expect("a message")
        .expect("no error");
    let WsMessage::Text(text) = frame else {
        panic!("a text frame expected, got {frame:?}");
    };
    assert_options_ok(&response(Bytes::from(text)), "ws-1");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_without_the_sip_subprotocol_is_refused() {
    let server = TestServer::on(&[Transport::Ws], None).await;
    let addr = server.addr(Transport::Ws);
    let request = format!("ws://{addr}/")
        .into_client_request()
        .expect("request");
    let tcp = tcp_connect(addr).await;
    let result = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, tcp))
        .await
        .expect("an answer in time");
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 400);
        }
        other => panic!("expected HTTP 400, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_datagrams_are_answered_400_or_dropped_and_serving_goes_on() {
    let server = TestServer::on(&[Transport::Udp], None).await;
    let addr = server.addr(Transport::Udp);
    let socket = udp_client().await;
    let local = socket.local_addr().expect("local");
    let bad_request_line = String::from_utf8(options(Transport::Udp, local, "bad-1").to_vec())
        .expect("text")
        .replacen(
            "OPTIONS sip:127.0.0.1 SIP/2.0",
            "OPTIONS  sip:127.0.0.1 SIP/2.0",
            1,
        );
    let bigcode = "SIP/2.0 4294967301 better not break the receiver\r\n\
                   Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nCall-ID: big\r\n\
                   CSeq: 1 OPTIONS\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n\
                   Content-Length: 0\r\n\r\n";
    let cases: [(&[u8], Option<u16>); 5] = [
        (b"\x16\x03\x01\x00garbage\xff\xfe", None),
        (b"\r\n\r\n", None),
        (bad_request_line.as_bytes(), Some(400)),
        (bigcode.as_bytes(), None),
        (&[b'A'; 3000], None),
    ];
    for (i, (datagram, expected)) in cases.iter().enumerate() {
        socket.send_to(datagram, addr).await.expect("send");
        let call_id = format!("after-{i}");
        socket
            .send_to(&options(Transport::Udp, local, &call_id), addr)
            .await
            .expect("send");
        // Collect until the OPTIONS is answered; the bad datagram's answer may come first
        // or (handled by another receive task) second.
        let mut others = Vec::new();
        let mut answered = false;
        for _ in 0..3 {
            let Some(bytes) = try_recv_datagram(&socket, WAIT).await else {
                break;
            };
            let msg = response(bytes);
            if msg.call_id() == Ok(call_id.as_str()) {
                assert_options_ok(&msg, &call_id);
                answered = true;
            } else {
                others.push(msg.status());
            }
            if answered && others.len() == usize::from(expected.is_some()) {
                break;
            }
        }
        assert!(answered, "case {i}: the OPTIONS after it was not answered");
        assert_eq!(
            others,
            expected.iter().map(|s| Some(*s)).collect::<Vec<_>>(),
            "case {i}"
        );
    }
    assert_eq!(
        try_recv_datagram(&socket, Duration::from_millis(100)).await,
        None
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_malformed_message_is_answered_and_a_framing_error_closes() {
    let server = TestServer::on(&[Transport::Tcp], None).await;
    let mut tcp = tcp_connect(server.addr(Transport::Tcp)).await;
    let local = tcp.local_addr().expect("local");
    let mut framer = StreamFramer::new(65_535);
    let malformed = String::from_utf8(options(Transport::Tcp, local, "m-1").to_vec())
        .expect("text")
        .replacen(
            "OPTIONS sip:127.0.0.1 SIP/2.0",
            "OPTIONS sip:127.0.0.1 SIP/2.0 ",
            1,
        );
    let resp = stream_exchange(&mut tcp, &mut framer, malformed.as_bytes()).await;
    assert_eq!(resp.status(), Some(400));
    // The connection is still usable.
    let resp = stream_exchange(
        &mut tcp,
        &mut framer,
        &options(Transport::Tcp, local, "m-2"),
    )
    .await;
    assert_options_ok(&resp, "m-2");
    // No Content-Length on a stream: the next message's start is unknown, so it closes.
    tcp.write_all(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP x;branch=z9hG4bK9\r\n\r\n")
        .await
        .expect("write");
    assert_closed(&mut tcp, WAIT).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transmitter_reaches_peers_over_udp_and_open_connections() {
    let server = TestServer::on(&[Transport::Udp, Transport::Tcp], None).await;
    let udp_addr = server.addr(Transport::Udp);
    let socket = udp_client().await;
    let peer = socket.local_addr().expect("local");
    let source = confab_server::Source {
        transport: Transport::Udp,
        peer,
        local: udp_addr,
    };
    let ping = Bytes::from_static(b"\r\n\r\n");
    server
        .transmitter
        .send(&source, peer, ping.clone())
        .await
        .expect("sent over UDP");
    assert_eq!(recv_datagram(&socket).await, ping);
    let broadcast = "255.255.255.255:5060".parse().expect("addr");
    assert!(server
        .transmitter
        .send(&source, broadcast, ping.clone())
        .await
        .is_err());

    let mut tcp = tcp_connect(server.addr(Transport::Tcp)).await;
    let local = tcp.local_addr().expect("local");
    let mut framer = StreamFramer::new(65_535);
    // Once the connection is in the table (its first message answered), it can be reached.
    let resp = stream_exchange(&mut tcp, &mut framer, &options(Transport::Tcp, local, "t")).await;
    assert_options_ok(&resp, "t");
    let source = confab_server::Source {
        transport: Transport::Tcp,
        peer: local,
        local: server.addr(Transport::Tcp),
    };
    server
        .transmitter
        .send(&source, local, ping.clone())
        .await
        .expect("queued on the connection");
    assert!(matches!(
        read_frame(&mut tcp, &mut framer).await,
        Frame::Ping
    ));
    server.stop().await;
}
