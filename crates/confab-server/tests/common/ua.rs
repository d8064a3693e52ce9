//! A tiny SIP user agent over UDP for the registrar, proxy and messaging tests, built on
//! `confab-sip`'s builder and digest arithmetic only, and a deployment to point it at: a
//! server with the router on an ephemeral loopback port, in-memory stores, domain
//! `example.com`. Every wait is bounded by [`WAIT`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confab_server::directory::Directory;
use confab_server::memory::MemoryStores;
use confab_server::{Router, ServerConfig, ServiceConfig, Stores, TimerConfig, Transport};
use confab_sip::auth::{format_credentials, CredentialsParams};
use confab_sip::builder::{RequestBuilder, ResponseBuilder};
use confab_sip::digest::{self, Algorithm};
use confab_sip::{HeaderName, Message};
use tokio::net::UdpSocket;
use tokio::time::timeout;

use super::{config, TestServer, WAIT};

pub const DOMAIN: &str = "example.com";

/// A running server with the router, and its stores.
pub struct Deployment {
    pub server: TestServer,
    pub router: Arc<Router>,
    pub stores: MemoryStores,
    pub addr: SocketAddr,
}

/// The test service configuration: `example.com`, short timers for expiry tests.
pub fn service_config() -> ServiceConfig {
    let mut c = ServiceConfig::new([DOMAIN]);
    c.min_expires = 2;
    c
}

/// Fast transaction timers: T1 = 50 ms, so Timer F (an unanswered request) is 3.2 s.
pub fn server_config() -> ServerConfig {
    let mut config = config(&[Transport::Udp], None);
    config.timers = TimerConfig::new(
        Duration::from_millis(50),
        Duration::from_millis(400),
        Duration::from_millis(500),
    )
    .expect("timers");
    config
}

/// `sip:USER@example.com`.
pub fn uri(user: &str) -> String {
    format!("sip:{user}@{DOMAIN}")
}

/// Gives `presentity` (a user name) this contact list (user names) and these presence
/// rules (watcher, level), as `confab contacts` and `confab presence-rules` store them.
pub fn allow(stores: &MemoryStores, presentity: &str, contacts: &[&str], rules: &[(&str, &str)]) {
    stores.presence.set_policy(
        &format!("{presentity}@{DOMAIN}"),
        confab_server::directory::PresencePolicyRecord {
            rules: rules
                .iter()
                .map(|(w, l)| ((*w).to_owned(), (*l).to_owned()))
                .collect(),
            contacts: contacts.iter().map(|c| format!("{c}@{DOMAIN}")).collect(),
        },
    );
}

/// A `confab-ua` user agent for `user` (password `<user>-pw`) with the deployment as its
/// outbound proxy, the server's fast timers, and `invite` as its answer to calls.
pub async fn client(
    d: &Deployment,
    user: &str,
    invite: confab_ua::InviteAnswer,
) -> confab_ua::UserAgent {
    confab_ua::UserAgent::bind(confab_ua::UaConfig {
        server: Some(d.addr),
        secret: Some(confab_ua::Secret::Password(format!("{user}-pw"))),
        transport: confab_ua::Transport::Udp,
        t1: Duration::from_millis(50),
        t2: Duration::from_millis(400),
        t4: Duration::from_millis(500),
        invite,
        ..confab_ua::UaConfig::new(uri(user))
    })
    .await
    .expect("user agent binds")
}

impl Deployment {
    /// A deployment with users alice, bob and carol (password `<name>-pw`).
    pub async fn start(service: ServiceConfig) -> Deployment {
        Self::start_with(service, MemoryStores::default()).await
    }

    /// The same over existing stores (to play a restart).
    pub async fn start_with(service: ServiceConfig, stores: MemoryStores) -> Deployment {
        for user in ["alice", "bob", "carol"] {
            let aor = format!("{user}@{DOMAIN}");
            // Kept as they are on a restart (a home pool set by the test stays).
            if stores.directory.user(&aor).await.ok().flatten().is_none() {
                stores.directory.add_user(&aor, &format!("{user}-pw"));
            }
        }
        let server_config = server_config();
        let router = Router::new(&server_config, service, Stores::from_memory(&stores))
            .expect("valid service config");
        // As `confab serve` does: the topology first, so that loading takes this pool's state.
        router.pools_changed().await.expect("pools read");
        let server = TestServer::start_router(server_config, Arc::clone(&router)).await;
        let addr = server.addr(Transport::Udp);
        Deployment {
            server,
            router,
            stores,
            addr,
        }
    }

    /// The same, listening on `addr` (a restart in the same place).
    pub async fn start_at(
        service: ServiceConfig,
        stores: MemoryStores,
        addr: SocketAddr,
    ) -> Deployment {
        for user in ["alice", "bob", "carol"] {
            let aor = format!("{user}@{DOMAIN}");
            // Kept as they are on a restart (a home pool set by the test stays).
            if stores.directory.user(&aor).await.ok().flatten().is_none() {
                stores.directory.add_user(&aor, &format!("{user}-pw"));
            }
        }
        let mut server_config = server_config();
        server_config.listen = vec![format!("udp://{addr}").parse().expect("listen URI")];
        let router = Router::new(&server_config, service, Stores::from_memory(&stores))
            .expect("valid service config");
        // As `confab serve` does: the topology first, so that loading takes this pool's state.
        router.pools_changed().await.expect("pools read");
        let server = TestServer::start_router(server_config, Arc::clone(&router)).await;
        Deployment {
            server,
            router,
            stores,
            addr,
        }
    }

    /// A UA for `user` (password `<user>-pw`).
    pub async fn ua(&self, user: &str) -> Ua {
        Ua::new(self.addr, user, &format!("{user}-pw")).await
    }
}

/// A user agent on its own UDP socket.
pub struct Ua {
    pub socket: UdpSocket,
    pub addr: SocketAddr,
    pub server: SocketAddr,
    pub user: String,
    pub password: String,
    pub call_id: String,
    pub cseq: u32,
    pub tag: String,
    pub nc: u32,
    /// Messages received while waiting for another one.
    inbox: VecDeque<Message>,
    branches: u32,
    /// The last request sent, while nothing has been received since: resent like Timer E
    /// if the wait for its answer goes quiet, because a loaded machine can drop a loopback
    /// datagram.
    unanswered: std::sync::Mutex<Option<(Bytes, u32)>>,
}

impl Ua {
    pub async fn new(server: SocketAddr, user: &str, password: &str) -> Ua {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("local");
        Ua {
            socket,
            addr,
            server,
            user: user.to_owned(),
            password: password.to_owned(),
            call_id: format!("reg-{user}-{}", addr.port()),
            cseq: 0,
            tag: format!("tag-{user}"),
            nc: 0,
            inbox: VecDeque::new(),
            branches: 0,
            unanswered: std::sync::Mutex::new(None),
        }
    }

    pub fn aor(&self) -> String {
        format!("sip:{}@{DOMAIN}", self.user)
    }

    pub fn contact(&self) -> String {
        format!("sip:{}@{}", self.user, self.addr)
    }

    pub fn branch(&mut self) -> String {
        self.branches += 1;
        format!(
            "z9hG4bK-{}-{}-{}",
            self.user,
            self.addr.port(),
            self.branches
        )
    }

    /// A request from this UA; `headers` come after the standard ones.
    #[allow(clippy::too_many_arguments)] // a request's parts, as a test writes them
    pub fn request(
        &mut self,
        method: &str,
        uri: &str,
        to: &str,
        call_id: &str,
        cseq: u32,
        headers: &[(&str, String)],
        body: Option<(&str, &str)>,
    ) -> Bytes {
        let branch = self.branch();
        let via = format!("SIP/2.0/UDP {};branch={branch};rport", self.addr);
        let mut b = RequestBuilder::new(method, uri)
            .header("Via", via)
            .header("Max-Forwards", "70")
            .header("From", format!("<{}>;tag={}", self.aor(), self.tag))
            .header("To", to)
            .header("Call-ID", call_id)
            .header("CSeq", format!("{cseq} {method}"));
        for (n, v) in headers {
            b = b.header(*n, v.clone());
        }
        if let Some((ct, text)) = body {
            b = b.body(ct, text.as_bytes().to_vec());
        }
        b.build()
    }

    /// A REGISTER with the next CSeq of this UA's registration Call-ID.
    pub fn register_request(&mut self, headers: &[(&str, String)]) -> Bytes {
        self.cseq += 1;
        let (call_id, cseq, aor) = (self.call_id.clone(), self.cseq, self.aor());
        self.request(
            "REGISTER",
            &format!("sip:{DOMAIN}"),
            &format!("<{aor}>"),
            &call_id,
            cseq,
            headers,
            None,
        )
    }

    pub async fn send(&self, bytes: &Bytes) {
        self.socket.send_to(bytes, self.server).await.expect("send");
        if !bytes.starts_with(b"SIP/2.0") {
            *self.unanswered.lock().unwrap_or_else(|p| p.into_inner()) = Some((bytes.clone(), 0));
        }
    }

    /// Resends the last request if nothing has come back since it was sent (at most three
    /// times, with the same branch: the server's transaction absorbs a copy that was not
    /// lost after all).
    async fn resend_unanswered(&self) {
        let resend = {
            let mut slot = self.unanswered.lock().unwrap_or_else(|p| p.into_inner());
            match slot.as_mut() {
                Some((bytes, tries)) if *tries < 3 => {
                    *tries += 1;
                    Some(bytes.clone())
                }
                _ => None,
            }
        };
        if let Some(bytes) = resend {
            self.socket
                .send_to(&bytes, self.server)
                .await
                .expect("send");
        }
    }

    async fn recv_raw(&self, within: Duration) -> Option<Message> {
        let mut buf = vec![0u8; 65_535];
        let (n, _) = timeout(within, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        *self.unanswered.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Message::parse(Bytes::copy_from_slice(&buf[..n])).ok()
    }

    /// The next message matching `want`, within `within`; others are kept for later.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        want: impl Fn(&Message) -> bool,
    ) -> Option<Message> {
        if let Some(i) = self.inbox.iter().position(&want) {
            return self.inbox.remove(i);
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let Some(m) = self.recv_raw(left.min(Duration::from_millis(500))).await else {
                self.resend_unanswered().await;
                continue;
            };
            if want(&m) {
                return Some(m);
            }
            self.inbox.push_back(m);
        }
    }

    /// The final (or, with `provisional`, any non-100) response for `call_id` and `method`.
    pub async fn response(&mut self, call_id: &str, method: &str, provisional: bool) -> Message {
        let (cid, m) = (call_id.to_owned(), method.to_owned());
        self.wait_for(WAIT, move |msg| {
            msg.is_response()
                && msg.call_id() == Ok(cid.as_str())
                && msg.cseq().is_ok_and(|c| c.method == m)
                && msg
                    .status()
                    .is_some_and(|s| if provisional { s > 100 } else { s >= 200 })
        })
        .await
        .unwrap_or_else(|| panic!("no response to {method} {call_id}"))
    }

    /// The next request of `method`, within `within`.
    pub async fn request_in(&mut self, method: &str, within: Duration) -> Option<Message> {
        let m = method.to_owned();
        self.wait_for(within, move |msg| msg.method_str() == Some(m.as_str()))
            .await
    }

    /// Answers a received request.
    pub async fn answer(&self, req: &Message, status: u16, reason: &str, to_tag: &str) {
        let mut b = ResponseBuilder::new(req, status, reason.to_owned()).to_tag(to_tag);
        if (200..300).contains(&status) {
            b = b
                .copy_record_route()
                .header("Contact", format!("<{}>", self.contact()));
        }
        self.socket
            .send_to(&b.build(), self.server)
            .await
            .expect("send");
    }

    /// Credentials answering the challenge of `alg` in `resp` (401 or 407).
    pub fn credentials(
        &mut self,
        resp: &Message,
        alg: Algorithm,
        method: &str,
        uri: &str,
    ) -> String {
        let challenges: Vec<_> = if resp.status() == Some(407) {
            resp.proxy_authenticate().collect()
        } else {
            resp.www_authenticate().collect()
        };
        let c = challenges
            .into_iter()
            .flatten()
            .find(|c| Algorithm::from_param(c.algorithm()) == Some(alg))
            .expect("a challenge of the algorithm");
        let realm = c.realm().expect("realm").to_string();
        let nonce = c.nonce().expect("nonce").to_string();
        self.nc += 1;
        let ha1 = digest::ha1(alg, &self.user, &realm, &self.password);
        let cnonce = format!("cn{}", self.nc);
        let response = digest::response(
            alg,
            &ha1,
            &nonce,
            Some(&digest::nc_hex(1)),
            Some(&cnonce),
            Some("auth"),
            method,
            uri,
        );
        format_credentials(&CredentialsParams {
            username: &self.user,
            realm: &realm,
            nonce: &nonce,
            uri,
            response: &response,
            algorithm: alg,
            cnonce: Some(&cnonce),
            nc: Some(1),
            qop: Some("auth"),
            opaque: None,
        })
    }

    /// Registers `contact headers`: a REGISTER, its 401, the answer; returns the final
    /// response to the answer.
    pub async fn register_with(&mut self, alg: Algorithm, headers: &[(&str, String)]) -> Message {
        let first = self.register_request(headers);
        self.send(&first).await;
        let call_id = self.call_id.clone();
        let challenge = self.response(&call_id, "REGISTER", false).await;
        assert_eq!(challenge.status(), Some(401), "{challenge:?}");
        let auth = self.credentials(&challenge, alg, "REGISTER", &format!("sip:{DOMAIN}"));
        let mut with_auth = headers.to_vec();
        with_auth.push(("Authorization", auth));
        let second = self.register_request(&with_auth);
        self.send(&second).await;
        self.response(&call_id, "REGISTER", false).await
    }

    /// Registers this UA's contact for `expires` seconds with SHA-256.
    pub async fn register(&mut self, expires: u32) -> Message {
        let contact = format!("<{}>", self.contact());
        self.register_with(
            Algorithm::Sha256,
            &[("Contact", contact), ("Expires", expires.to_string())],
        )
        .await
    }
}

/// The Contact URIs of a 200 to REGISTER with their expires.
pub fn bindings(resp: &Message) -> Vec<(String, Option<u32>)> {
    resp.contacts()
        .flatten()
        .filter_map(|c| {
            let e = c.expires();
            c.address().map(|a| (a.uri().as_str().to_owned(), e))
        })
        .collect()
}

/// A header's values as text.
pub fn header(msg: &Message, name: HeaderName) -> Option<String> {
    msg.header(name).map(str::to_owned)
}

impl Ua {
    /// Sends `method` to `uri`, answers the 407 with SHA-256 credentials and sends it again
    /// with the next CSeq; returns the request that carries the credentials.
    #[allow(clippy::too_many_arguments)]
    pub async fn send_authenticated(
        &mut self,
        method: &str,
        uri: &str,
        to: &str,
        call_id: &str,
        cseq: u32,
        headers: &[(&str, String)],
        body: Option<(&str, &str)>,
    ) -> Bytes {
        let first = self.request(method, uri, to, call_id, cseq, headers, body);
        self.send(&first).await;
        let challenge = self.response(call_id, method, false).await;
        assert_eq!(challenge.status(), Some(407), "{challenge:?}");
        assert_eq!(
            challenge.count(HeaderName::ProxyAuthenticate),
            2,
            "SHA-256 and MD5 offered"
        );
        if method == "INVITE" {
            self.ack_non_2xx(&first, &challenge).await;
        }
        let auth = self.credentials(&challenge, Algorithm::Sha256, method, uri);
        let mut with_auth = headers.to_vec();
        with_auth.push(("Proxy-Authorization", auth));
        let second = self.request(method, uri, to, call_id, cseq + 1, &with_auth, body);
        self.send(&second).await;
        second
    }

    /// The ACK for a non-2xx final response to `invite` (RFC 3261 §17.1.1.3).
    pub async fn ack_non_2xx(&self, invite: &Bytes, resp: &Message) {
        let inv = Message::parse(invite.clone()).expect("the INVITE parses");
        let seq = inv.cseq().expect("cseq").seq;
        let ack = RequestBuilder::new("ACK", inv.request_uri_str().expect("uri"))
            .header("Via", inv.via().expect("via").as_str())
            .header("Max-Forwards", "70")
            .header("From", inv.header(HeaderName::From).expect("from"))
            .header("To", resp.header(HeaderName::To).expect("to"))
            .header("Call-ID", inv.call_id().expect("call-id"))
            .header("CSeq", format!("{seq} ACK"))
            .build();
        self.send(&ack).await;
    }

    /// The CANCEL of `invite` (RFC 3261 §9.1).
    pub fn cancel_of(invite: &Bytes) -> Bytes {
        let inv = Message::parse(invite.clone()).expect("the INVITE parses");
        let seq = inv.cseq().expect("cseq").seq;
        RequestBuilder::new("CANCEL", inv.request_uri_str().expect("uri"))
            .header("Via", inv.via().expect("via").as_str())
            .header("Max-Forwards", "70")
            .header("From", inv.header(HeaderName::From).expect("from"))
            .header("To", inv.header(HeaderName::To).expect("to"))
            .header("Call-ID", inv.call_id().expect("call-id"))
            .header("CSeq", format!("{seq} CANCEL"))
            .build()
    }
}
