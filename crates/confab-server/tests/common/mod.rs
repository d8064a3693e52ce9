//! Helpers for the server's integration tests: an in-process server on ephemeral loopback
//! ports, and minimal SIP clients for each transport. Every wait is bounded by [`WAIT`].

#![allow(dead_code)] // each test file uses a different part

pub mod ua;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confab_server::transactions::TransactionHook;
use confab_server::transport::connections::ConnectionTable;
use confab_server::{ListenUri, Server, ServerConfig, TlsFiles, Transmitter, Transport};
use confab_sip::builder::RequestBuilder;
use confab_sip::framing::{Frame, StreamFramer};
use confab_sip::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// The longest any test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);

/// A server running in the test's runtime; stopped when dropped.
pub struct TestServer {
    pub addrs: Vec<ListenUri>,
    pub connections: Arc<ConnectionTable>,
    pub transmitter: Transmitter,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Binds `config` and runs it.
    pub async fn start(config: ServerConfig) -> TestServer {
        Self::start_with(config, None).await
    }

    /// Binds `config` with `transactions` installed and runs it.
    pub async fn start_with(
        config: ServerConfig,
        transactions: Option<Arc<dyn TransactionHook>>,
    ) -> TestServer {
        let server = Server::bind_with(config, transactions)
            .await
            .expect("the server binds");
        let addrs = server.local_addrs();
        let connections = server.connections();
        let transmitter = server.transmitter();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TestServer {
            addrs,
            connections,
            transmitter,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Binds `config` with `router` (and its transaction driver) installed and runs it.
    pub async fn start_router(
        config: ServerConfig,
        router: Arc<confab_server::Router>,
    ) -> TestServer {
        let server = Server::bind_with_router(config, router)
            .await
            .expect("the server binds");
        Self::run(server)
    }

    fn run(server: Server) -> TestServer {
        let addrs = server.local_addrs();
        let connections = server.connections();
        let transmitter = server.transmitter();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TestServer {
            addrs,
            connections,
            transmitter,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A server with one listener per transport in `transports`, on 127.0.0.1:0.
    pub async fn on(transports: &[Transport], tls: Option<TlsFiles>) -> TestServer {
        Self::start(config(transports, tls)).await
    }

    /// The address of the first listener of `transport`.
    pub fn addr(&self, transport: Transport) -> SocketAddr {
        self.addrs
            .iter()
            .find(|l| l.transport == transport)
            .map(|l| l.addr)
            .expect("a listener of that transport")
    }

    /// Stops the server and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            timeout(WAIT, task)
                .await
                .expect("the server stops in time")
                .expect("the server task ends cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A configuration with one ephemeral loopback listener per transport.
pub fn config(transports: &[Transport], tls: Option<TlsFiles>) -> ServerConfig {
    let listen = transports
        .iter()
        .map(|t| ListenUri::new(*t, SocketAddr::from(([127, 0, 0, 1], 0))))
        .collect();
    let mut config = ServerConfig::new(listen);
    config.tls = tls;
    config
}

/// A self-signed certificate for 127.0.0.1 and localhost, written to `dir`; returns the
/// files and the certificate's DER for the client to trust.
pub fn certificate(dir: &Path) -> (TlsFiles, Vec<u8>) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).expect("certificate");
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&files.key, certified.signing_key.serialize_pem()).expect("write key");
    (files, certified.cert.der().to_vec())
}

/// An OPTIONS request as a client on `transport` at `local` would send it.
pub fn options(transport: Transport, local: SocketAddr, call_id: &str) -> Bytes {
    options_with(transport, &local.to_string(), call_id, true)
}

/// An OPTIONS request with the given sent-by, with or without `rport`.
pub fn options_with(transport: Transport, sent_by: &str, call_id: &str, rport: bool) -> Bytes {
    let via = format!(
        "SIP/2.0/{} {sent_by};branch=z9hG4bK-{call_id}{}",
        transport.via_token(),
        if rport { ";rport" } else { "" }
    );
    RequestBuilder::new("OPTIONS", "sip:127.0.0.1")
        .header("Via", via)
        .header("From", "<sip:tester@example.com>;tag=t1")
        .header("To", "<sip:127.0.0.1>")
        .header("Call-ID", call_id)
        .header("CSeq", "1 OPTIONS")
        .header("Max-Forwards", "70")
        .header("Accept", "application/sdp")
        .build()
}

/// Parses a response, panicking with its text if it does not parse.
pub fn response(bytes: Bytes) -> Message {
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let msg = Message::parse(bytes).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(msg.is_response(), "{text}");
    msg
}

/// Checks a 200 to one of [`options`]: capabilities, Via, tags.
pub fn assert_options_ok(resp: &Message, call_id: &str) {
    assert_eq!(resp.status(), Some(200), "{resp:?}");
    assert_eq!(resp.call_id(), Ok(call_id));
    for name in ["Allow", "Accept", "Supported"] {
        assert!(resp.headers_named(name).next().is_some(), "{name} missing");
    }
    let allow: Vec<&str> = resp.allow().collect();
    assert!(allow.contains(&"OPTIONS"), "{allow:?}");
    let accept = resp.accept().next().expect("Accept").expect("parses");
    assert!(accept.is("application", "sdp"));
    let via = resp.via().expect("Via");
    assert_eq!(
        via.branch().map(str::to_owned),
        Some(format!("z9hG4bK-{call_id}"))
    );
    assert_eq!(resp.from().expect("From").tag(), Some("t1"));
    let tag = resp
        .to()
        .expect("To")
        .tag()
        .expect("a To-tag on a final response");
    assert!(!tag.is_empty());
}

/// A UDP client on an ephemeral loopback port.
pub async fn udp_client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("bind")
}

/// Receives one datagram within [`WAIT`].
pub async fn recv_datagram(socket: &UdpSocket) -> Bytes {
    let mut buf = vec![0u8; 65_535];
    let (n, _) = timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("a datagram in time")
        .expect("recv");
    Bytes::copy_from_slice(&buf[..n])
}

/// Receives one datagram if one comes within `d`.
pub async fn try_recv_datagram(socket: &UdpSocket, d: Duration) -> Option<Bytes> {
    let mut buf = vec![0u8; 65_535];
    match timeout(d, socket.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(Bytes::copy_from_slice(&buf[..n])),
        _ => None,
    }
}

/// Sends `request` over UDP and returns the response.
pub async fn udp_exchange(
    server: SocketAddr,
    request: impl FnOnce(SocketAddr) -> Bytes,
) -> Message {
    let socket = udp_client().await;
    let local = socket.local_addr().expect("local");
    socket.send_to(&request(local), server).await.expect("send");
    response(recv_datagram(&socket).await)
}

/// Reads the next frame (message, ping or pong) from a stream, within [`WAIT`].
pub async fn read_frame<S: AsyncRead + Unpin>(io: &mut S, framer: &mut StreamFramer) -> Frame {
    timeout(WAIT, async {
        loop {
            if let Some(frame) = framer.next_frame().expect("the server frames well") {
                return frame;
            }
            let n = io.read_buf(framer.buffer_mut()).await.expect("read");
            assert!(n > 0, "the server closed the connection");
        }
    })
    .await
    .expect("a frame in time")
}

/// Reads one SIP message from a stream.
pub async fn read_message<S: AsyncRead + Unpin>(io: &mut S, framer: &mut StreamFramer) -> Message {
    match read_frame(io, framer).await {
        Frame::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Writes, then reads one response.
pub async fn stream_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    framer: &mut StreamFramer,
    request: &[u8],
) -> Message {
    io.write_all(request).await.expect("write");
    io.flush().await.expect("flush");
    read_message(io, framer).await
}

/// Waits until the server closes `io` (read returns 0 or fails); panics after `within`.
pub async fn assert_closed<S: AsyncRead + Unpin>(io: &mut S, within: Duration) {
    let mut buf = [0u8; 1024];
    let closed = timeout(within, async {
        // Bounded by the timeout; data before the close is read and discarded.
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server did not close the connection in {within:?}"
    );
}

/// A TCP connection to `addr`.
pub async fn tcp_connect(addr: SocketAddr) -> TcpStream {
    timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// A TLS client configuration that trusts exactly `cert_der`.
pub fn tls_client(cert_der: &[u8]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert_der.to_vec()))
        .expect("trust the test certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}
