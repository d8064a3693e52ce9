//! The transaction driver in a running server, over loopback: request retransmissions
//! absorbed and answered with the response kept, INVITE responses retransmitted on Timer G
//! over UDP until the ACK (and never over TCP), Timer H, the cap on live transactions, the
//! timer task stopping with the server, and the registrar's challenges sent statelessly.
//! Timers run on a tiny T1 so that nothing waits long; every wait is bounded.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::ua::{service_config, Deployment};
use common::*;
use confab_server::transactions::{Disposition, HookTask, TransactionHook};
use confab_server::{ServerConfig, Source, TimerConfig, TransactionDriver, Transmitter, Transport};
use confab_sip::builder::RequestBuilder;
use confab_sip::framing::StreamFramer;
use confab_sip::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// A configuration with T1 = `t1` and T2 = 4·T1, so Timer G fires at T1, 3·T1, 7·T1,
/// 11·T1 … after the response, and Timer H at 64·T1.
fn config_with_t1(transports: &[Transport], t1: Duration) -> ServerConfig {
    let mut config = config(transports, None);
    config.timers = TimerConfig::new(t1, t1 * 4, t1 * 4).expect("valid timers");
    config
}

/// A driver for `config`, and a server running it.
async fn start(config: ServerConfig) -> (Arc<TransactionDriver>, TestServer) {
    let driver = Arc::new(TransactionDriver::new(&config));
    let server = TestServer::start_with(config, Some(Arc::clone(&driver) as _)).await;
    (driver, server)
}

/// A request from a client at `local` over `transport`, in transaction `branch`.
fn request(method: &str, transport: Transport, local: SocketAddr, branch: &str) -> Bytes {
    request_to(method, transport, local, branch, "<sip:127.0.0.1>")
}

fn request_to(
    method: &str,
    transport: Transport,
    local: SocketAddr,
    branch: &str,
    to: &str,
) -> Bytes {
    RequestBuilder::new(method, "sip:127.0.0.1")
        .header(
            "Via",
            format!(
                "SIP/2.0/{} {local};branch=z9hG4bK-{branch};rport",
                transport.via_token()
            ),
        )
        .header("From", "<sip:tester@example.com>;tag=t1")
        .header("To", to)
        .header("Call-ID", format!("call-{branch}"))
        .header("CSeq", format!("1 {method}"))
        .header("Max-Forwards", "70")
        .build()
}

/// The ACK for a non-2xx `response` to the INVITE of `branch` (RFC 3261 §17.1.1.3): same
/// branch, the response's To (with its tag).
fn ack_for(response: &Message, transport: Transport, local: SocketAddr, branch: &str) -> Bytes {
    let to = response.header(confab_sip::HeaderName::To).expect("To");
    request_to("ACK", transport, local, branch, to)
}

fn to_tag(response: &Message) -> String {
    let to = response.to().expect("To");
    to.tag().expect("a To-tag").to_owned()
}

/// Polls `driver` until `done` holds; panics after [`WAIT`].
async fn until(
    driver: &TransactionDriver,
    what: &str,
    done: impl Fn(&confab_server::transactions::DriverStats) -> bool,
) {
    let polled = tokio::time::timeout(WAIT, async {
        while !done(&driver.stats()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(polled.is_ok(), "{what}: {:?}", driver.stats());
}

/// Receives every datagram that comes within `quiet` of the previous one.
async fn drain(socket: &UdpSocket, quiet: Duration) -> Vec<Bytes> {
    let mut got = Vec::new();
    while let Some(d) = try_recv_datagram(socket, quiet).await {
        got.push(d);
        assert!(got.len() < 100, "a flood of datagrams");
    }
    got
}

/// The driver as the handler sees it, counting the responses the core gives.
struct Counting {
    driver: Arc<TransactionDriver>,
    answered: AtomicUsize,
}

impl TransactionHook for Counting {
    fn request_received(&self, request: &Message, source: &Source) -> Disposition {
        self.driver.request_received(request, source)
    }
    fn respond(&self, request: &Message, response: Bytes, source: &Source) -> Option<Bytes> {
        self.answered.fetch_add(1, Ordering::SeqCst);
        self.driver.respond(request, response, source)
    }
    fn response_received(&self, response: &Message, source: &Source) -> Disposition {
        self.driver.response_received(response, source)
    }
    fn start(
        self: Arc<Self>,
        transmitter: Transmitter,
        shutdown: CancellationToken,
    ) -> Option<HookTask> {
        Arc::clone(&self.driver).start(transmitter, shutdown)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retransmitted_options_gets_the_identical_response_and_reaches_the_core_once() {
    let config = config(&[Transport::Udp], None);
    let counting = Arc::new(Counting {
        driver: Arc::new(TransactionDriver::new(&config)),
        answered: AtomicUsize::new(0),
    });
    let server = TestServer::start_with(config, Some(Arc::clone(&counting) as _)).await;
    let addr = server.addr(Transport::Udp);
    let socket = udp_client().await;
    let local = socket.local_addr().expect("local");
    let options = options(Transport::Udp, local, "retrans-1");

    socket.send_to(&options, addr).await.expect("send");
    let first = recv_datagram(&socket).await;
    socket.send_to(&options, addr).await.expect("send");
    let second = recv_datagram(&socket).await;
    assert_eq!(second, first, "the very response the transaction keeps");
    let (a, b) = (response(first), response(second));
    assert_options_ok(&a, "retrans-1");
    assert_eq!(to_tag(&a), to_tag(&b));

    assert_eq!(
        counting.answered.load(Ordering::SeqCst),
        1,
        "the core answered once"
    );
    let stats = counting.driver.stats();
    assert_eq!((stats.requests, stats.absorbed), (1, 1), "{stats:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_invite_transaction_resends_its_response_on_each_retransmission_only() {
    let (driver, server) =
        start(config_with_t1(&[Transport::Udp], Duration::from_millis(20))).await;
    let addr = server.addr(Transport::Udp);
    let socket = udp_client().await;
    let local = socket.local_addr().expect("local");
    let options = options(Transport::Udp, local, "retrans-2");
    socket.send_to(&options, addr).await.expect("send");
    let first = recv_datagram(&socket).await;
    for _ in 0..3 {
        // Between retransmissions the server is silent: no timer resends a non-INVITE
        // response (RFC 3261 §17.2.2).
        assert_eq!(
            drain(&socket, Duration::from_millis(100)).await,
            Vec::<Bytes>::new()
        );
        socket.send_to(&options, addr).await.expect("send");
        assert_eq!(recv_datagram(&socket).await, first);
    }
    let stats = driver.stats();
    assert_eq!(
        (stats.requests, stats.absorbed, stats.timer_sends),
        (1, 3, 0),
        "{stats:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_final_response_is_retransmitted_on_timer_g_until_the_ack() {
    let (driver, server) =
        start(config_with_t1(&[Transport::Udp], Duration::from_millis(20))).await;
    let addr = server.addr(Transport::Udp);
    let socket = udp_client().await;
    let local = socket.local_addr().expect("local");
    socket
        .send_to(&request("INVITE", Transport::Udp, local, "inv-1"), addr)
        .await
        .expect("send");
    let first = recv_datagram(&socket).await;
    let refusal = response(first.clone());
    assert_eq!(refusal.status(), Some(405));
    // Timer G: the same 405 again at 20, 60, 140 ms …
    for _ in 0..3 {
        assert_eq!(
            recv_datagram(&socket).await,
            first,
            "a retransmission of the 405"
        );
    }
    socket
        .send_to(&ack_for(&refusal, Transport::Udp, local, "inv-1"), addr)
        .await
        .expect("send");
    until(&driver, "the ACK is absorbed", |s| s.absorbed == 1).await;
    // One retransmission taken from the timers just before the ACK was handled may still be
    // on its way; nothing more, though Timer G (every 80 ms by now) would have fired about
    // five times in 400 ms, and no response to the ACK.
    let late = drain(&socket, Duration::from_millis(400)).await;
    assert!(late.len() <= 1, "{} datagrams after the ACK", late.len());
    assert!(late.iter().all(|d| *d == first));
    let stats = driver.stats();
    assert_eq!(stats.requests, 1, "{stats:?}");
    assert!(stats.timer_sends >= 3, "{stats:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_ack_timer_h_ends_the_transaction() {
    // Timer H at 64 · 5 ms = 320 ms.
    let (driver, server) = start(config_with_t1(&[Transport::Udp], Duration::from_millis(5))).await;
    let addr = server.addr(Transport::Udp);
    let socket = udp_client().await;
    let local = socket.local_addr().expect("local");
    socket
        .send_to(&request("INVITE", Transport::Udp, local, "inv-2"), addr)
        .await
        .expect("send");
    until(&driver, "Timer H fires", |s| {
        s.timeouts == 1 && s.transactions == 0
    })
    .await;
    let sent = drain(&socket, Duration::from_millis(50)).await;
    assert!(
        sent.len() >= 2,
        "the 405 and its retransmissions: {}",
        sent.len()
    );
    assert!(sent.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(
        drain(&socket, Duration::from_millis(100)).await,
        Vec::<Bytes>::new()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp_nothing_is_retransmitted() {
    let (driver, server) =
        start(config_with_t1(&[Transport::Tcp], Duration::from_millis(20))).await;
    let mut tcp = tcp_connect(server.addr(Transport::Tcp)).await;
    let local = tcp.local_addr().expect("local");
    let mut framer = StreamFramer::new(65_535);
    let invite = request("INVITE", Transport::Tcp, local, "inv-3");
    let refusal = stream_exchange(&mut tcp, &mut framer, &invite).await;
    assert_eq!(refusal.status(), Some(405));
    // Timer G does not run on a reliable transport: nothing comes in 200 ms (10 · T1).
    tokio::time::sleep(Duration::from_millis(200)).await;
    tcp.write_all(&ack_for(&refusal, Transport::Tcp, local, "inv-3"))
        .await
        .expect("write");
    // The next message on the connection answers the OPTIONS: neither a retransmitted 405
    // nor a response to the ACK came before it.
    let probe = options(Transport::Tcp, local, "after-ack");
    let next = stream_exchange(&mut tcp, &mut framer, &probe).await;
    assert_options_ok(&next, "after-ack");
    let stats = driver.stats();
    assert_eq!(
        (
            stats.requests,
            stats.absorbed,
            stats.timer_sends,
            stats.transactions
        ),
        (2, 1, 0, 0),
        "{stats:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_new_requests_get_503_until_room_is_made() {
    let mut config = config_with_t1(&[Transport::Udp], Duration::from_millis(5));
    config.limits.max_transactions = 1;
    let (driver, server) = start(config).await;
    let addr = server.addr(Transport::Udp);
    let exchange = |id: &'static str| async move {
        udp_exchange(addr, |l| options(Transport::Udp, l, id)).await
    };
    assert_eq!(exchange("cap-1").await.status(), Some(200));
    let refused = exchange("cap-2").await;
    assert_eq!(refused.status(), Some(503));
    assert_eq!(refused.headers_named("Retry-After").next(), Some(&b"5"[..]));
    // Timer J (64 · 5 ms) ends the first transaction and makes room.
    until(&driver, "Timer J ends the transaction", |s| {
        s.transactions == 0
    })
    .await;
    assert_eq!(exchange("cap-3").await.status(), Some(200));
    let stats = driver.stats();
    assert_eq!((stats.requests, stats.overloaded), (2, 1), "{stats:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timer_task_stops_with_the_server() {
    let (driver, server) =
        start(config_with_t1(&[Transport::Udp], Duration::from_millis(20))).await;
    let addr = server.addr(Transport::Udp);
    let socket = udp_client().await;
    let local = socket.local_addr().expect("local");
    socket
        .send_to(&request("INVITE", Transport::Udp, local, "inv-4"), addr)
        .await
        .expect("send");
    let first = recv_datagram(&socket).await;
    assert_eq!(recv_datagram(&socket).await, first, "Timer G runs");
    // Stops in time (TestServer::stop bounds it) with Timer G and H still armed …
    server.stop().await;
    assert_eq!(driver.stats().transactions, 1);
    // … and sends nothing more.
    let sent = driver.stats().timer_sends;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(driver.stats().timer_sends, sent);
    for late in drain(&socket, Duration::from_millis(50)).await {
        assert_eq!(late, first, "only what was on its way at shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registrar_challenge_keeps_no_transaction_and_its_retransmission_is_challenged_afresh() {
    let d = Deployment::start(service_config()).await;
    let driver = d.router.driver();
    let mut alice = d.ua("alice").await;
    let register = alice.register_request(&[("Contact", format!("<{}>", alice.contact()))]);
    let call_id = alice.call_id.clone();
    alice.send(&register).await;
    let first = alice.response(&call_id, "REGISTER", false).await;
    assert_eq!(first.status(), Some(401));
    until(&driver, "the challenge leaves no transaction", |s| {
        (s.requests, s.transactions) == (1, 0)
    })
    .await;
    // The same REGISTER again, as a client whose challenge was lost sends it: a new request
    // for the registrar, challenged afresh with the same To-tag.
    alice.send(&register).await;
    let again = alice.response(&call_id, "REGISTER", false).await;
    assert_eq!(again.status(), Some(401));
    assert_eq!(to_tag(&again), to_tag(&first));
    until(&driver, "challenged again, statelessly", |s| {
        (s.requests, s.transactions, s.absorbed) == (2, 0, 0)
    })
    .await;
    // The registration itself: another challenge, then the 200, which its transaction keeps
    // for Timer J (64 · 50 ms here).
    let ok = alice.register(3600).await;
    assert_eq!(ok.status(), Some(200));
    let stats = driver.stats();
    assert_eq!(stats.requests, 4, "{stats:?}");
    assert!(stats.transactions <= 1, "{stats:?}");
}
