//! Synthetic transactions: a pool exercised with real SIP, as an operator runs them daily and
//! as migration checks use them (after Lync's `Test-CsRegistration`, `Test-CsIM`,
//! `Test-CsPresence`). Each test signs test users in at one of the pool's front-ends, does
//! what a client does, signs them out again, and reports every step with its time and a
//! verdict.
//!
//! Test users are ordinary users of the pool (`confab-test-1@DOMAIN`, `confab-test-2@DOMAIN`
//! on pool `P`), created by [`setup`] as a standard change with random passwords, each on the
//! other's contact list (so each may see the other's presence). The passwords are given back
//! to the caller (the CLI keeps them in a file readable by its owner only); the store keeps
//! HA1 values only, as for every user.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use confab_store::{Address, Store};
use confab_ua::{PublishRequest, Secret, UaConfig, UserAgent};
use serde::{Deserialize, Serialize};

use crate::control::ChangeContext;
use crate::OpsError;

/// The longest a step waits for its answer.
const STEP: Duration = Duration::from_secs(10);

/// A user a test signs in as.
#[derive(Clone, Serialize, Deserialize)]
pub struct TestUser {
    /// `user@domain`.
    pub address: String,
    /// Its password.
    pub password: String,
}

impl std::fmt::Debug for TestUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestUser")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// One step of a test.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What was done: `register confab-test-1@example.com`.
    pub step: String,
    /// Whether it did what a working pool does.
    pub ok: bool,
    /// How long it took, in milliseconds.
    pub ms: u64,
    /// What came back.
    pub detail: String,
}

/// A test's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `registration`, `im` or `presence`.
    pub test: String,
    /// The front-end exercised.
    pub server: String,
    /// Every step passed.
    pub passed: bool,
    /// The steps, in order (a failed step ends the test, after signing out).
    pub steps: Vec<Step>,
    /// The whole test, in milliseconds.
    pub ms: u64,
}

/// The names of the test users of a pool's domain.
pub fn test_addresses(domain: &str) -> [String; 2] {
    [
        format!("confab-test-1@{domain}"),
        format!("confab-test-2@{domain}"),
    ]
}

/// Creates (or gives new passwords to) the two test users of pool `pool` in `domain`, each on
/// the other's contact list; returns them with their passwords.
pub async fn setup(
    store: &Store,
    ctx: &ChangeContext<'_>,
    pool: &str,
    domain: &str,
) -> Result<[TestUser; 2], OpsError> {
    let mut users = Vec::new();
    for address in test_addresses(domain) {
        let parsed = Address::parse(&address)?;
        let password = crate::control::new_token()?;
        let secret = crate::Password::new(password.clone())?;
        match store.find_user(&parsed).await? {
            Some(u) if u.pool != pool => {
                return Err(OpsError::Migration {
                    problem: format!(
                        "{address} exists on pool '{}': test users are the pool's own; move it \
                         (`confab user move {address} --to {pool}`) or remove it",
                        u.pool
                    ),
                })
            }
            Some(_) => {
                crate::users::set_password(store, ctx, &parsed, &secret).await?;
            }
            None => {
                crate::users::add(
                    store,
                    ctx,
                    crate::users::NewAccount {
                        address: parsed,
                        pool: Some(pool.to_owned()),
                        display_name: Some("Confab synthetic transactions".into()),
                        password: secret,
                    },
                )
                .await?;
            }
        }
        users.push(TestUser { address, password });
    }
    for (a, b) in [(0, 1), (1, 0)] {
        let owner = Address::parse(&users[a].address)?;
        let contact = Address::parse(&users[b].address)?;
        let listed = store
            .contact_list(&owner)
            .await?
            .contacts
            .iter()
            .any(|c| c.address == contact);
        if !listed {
            crate::contacts::add(
                store,
                ctx,
                &owner,
                confab_store::NewContact {
                    address: contact,
                    display_name: None,
                    group: None,
                },
                false,
            )
            .await?;
        }
    }
    let second = users.pop();
    let first = users.pop();
    match (first, second) {
        (Some(a), Some(b)) => Ok([a, b]),
        _ => Err(OpsError::Migration {
            problem: "test users not created".into(),
        }),
    }
}

/// The local address to talk to `server` from: the one the system routes it through.
fn local_for(server: SocketAddr) -> SocketAddr {
    let unspecified: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    std::net::UdpSocket::bind(unspecified)
        .and_then(|s| {
            s.connect(server)?;
            s.local_addr()
        })
        .map(|a| SocketAddr::new(a.ip(), 0))
        .unwrap_or(unspecified)
}

async fn agent(server: SocketAddr, user: &TestUser) -> Result<UserAgent, String> {
    UserAgent::bind(UaConfig {
        server: Some(server),
        local: local_for(server),
        secret: Some(Secret::Password(user.password.clone())),
        ..UaConfig::new(format!("sip:{}", user.address))
    })
    .await
    .map_err(|e| e.to_string())
}

struct Run {
    test: &'static str,
    server: SocketAddr,
    started: Instant,
    steps: Vec<Step>,
}

impl Run {
    fn new(test: &'static str, server: SocketAddr) -> Run {
        Run {
            test,
            server,
            started: Instant::now(),
            steps: Vec::new(),
        }
    }

    /// Records a step; true when it passed.
    fn step(&mut self, step: String, since: Instant, outcome: Result<String, String>) -> bool {
        let ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (ok, detail) = match outcome {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        self.steps.push(Step {
            step,
            ok,
            ms,
            detail,
        });
        ok
    }

    fn report(self) -> Report {
        Report {
            test: self.test.to_owned(),
            server: self.server.to_string(),
            passed: !self.steps.is_empty() && self.steps.iter().all(|s| s.ok),
            steps: self.steps,
            ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// `request`'s outcome within [`STEP`]: its value, or what went wrong.
async fn within<T>(
    request: impl std::future::Future<Output = Result<T, confab_ua::UaError>>,
) -> Result<T, String> {
    match tokio::time::timeout(STEP, request).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {STEP:?}")),
    }
}

/// `Ok(what)` for a 2xx `status`, else what was answered.
fn success(status: u16, what: String) -> Result<String, String> {
    if (200..300).contains(&status) {
        Ok(what)
    } else {
        Err(format!("answered {status}"))
    }
}

async fn sign_in(run: &mut Run, user: &TestUser) -> Option<UserAgent> {
    let server = run.server;
    sign_in_at(run, server, user).await
}

/// Signs `user` in at `server` (which may be another system's: a legacy pool's next hop).
async fn sign_in_at(run: &mut Run, server: SocketAddr, user: &TestUser) -> Option<UserAgent> {
    let t = Instant::now();
    let ua = match agent(server, user).await {
        Ok(ua) => ua,
        Err(e) => {
            run.step(format!("register {}", user.address), t, Err(e));
            return None;
        }
    };
    let outcome = within(ua.register(60)).await.and_then(|r| {
        success(
            r.status,
            format!("{}, {} contact(s)", r.status, r.contacts.len()),
        )
    });
    run.step(format!("register {}", user.address), t, outcome)
        .then_some(ua)
}

async fn sign_out(run: &mut Run, ua: &UserAgent) {
    let t = Instant::now();
    let outcome = within(ua.unregister())
        .await
        .and_then(|r| success(r.status, r.status.to_string()));
    run.step(format!("unregister {}", ua.aor()), t, outcome);
}

/// Signs `user` in at `server` and out again.
pub async fn registration(server: SocketAddr, user: &TestUser) -> Report {
    let mut run = Run::new("registration", server);
    if let Some(ua) = sign_in(&mut run, user).await {
        sign_out(&mut run, &ua).await;
    }
    run.report()
}

/// Sends a MESSAGE from `a` to `b` (signed in as `to`) and checks that it arrives; true when
/// it did.
async fn send_message(run: &mut Run, a: &UserAgent, b: &UserAgent, to: &str) -> bool {
    let text = format!(
        "confab synthetic transaction {} from {}",
        crate::time::now(),
        a.aor()
    );
    let t = Instant::now();
    let sent = within(a.message(&format!("sip:{to}"), "text/plain", text.clone()))
        .await
        .and_then(|status| success(status, status.to_string()));
    if !run.step(format!("MESSAGE {} to {to}", a.aor()), t, sent) {
        return false;
    }
    let outcome = loop {
        match b.next_incoming_of("MESSAGE", STEP).await {
            Ok(got) if got.body() == text.as_bytes() => break Ok("delivered".to_owned()),
            Ok(_) => continue,
            Err(e) => break Err(format!("not delivered: {e}")),
        }
    };
    run.step(format!("MESSAGE arrives at {to}"), t, outcome)
}

/// Signs both users in, sends a MESSAGE from the first to the second, checks it arrives, and
/// signs them out.
pub async fn im(server: SocketAddr, from: &TestUser, to: &TestUser) -> Report {
    let mut run = Run::new("im", server);
    let Some(a) = sign_in(&mut run, from).await else {
        return run.report();
    };
    if let Some(b) = sign_in(&mut run, to).await {
        send_message(&mut run, &a, &b, &to.address).await;
        sign_out(&mut run, &b).await;
    }
    sign_out(&mut run, &a).await;
    run.report()
}

/// Signs both users in; the second publishes itself available with a note, the first
/// subscribes to its presence and must see it so; then both sign out.
pub async fn presence(server: SocketAddr, watcher: &TestUser, target: &TestUser) -> Report {
    let mut run = Run::new("presence", server);
    let Some(a) = sign_in(&mut run, watcher).await else {
        return run.report();
    };
    if let Some(b) = sign_in(&mut run, target).await {
        let note = format!("synthetic {}", crate::time::now());
        let pidf = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence \
             xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:{}\">\n<tuple id=\"t1\">\
             <status><basic>open</basic></status></tuple>\n<note>{note}</note>\n</presence>\n",
            target.address
        );
        let t = Instant::now();
        let published = within(b.publish(PublishRequest {
            event: "presence",
            if_match: None,
            expires: 60,
            body: Some(("application/pidf+xml", pidf.into_bytes().into())),
        }))
        .await
        .and_then(|p| success(p.status, p.status.to_string()));
        if run.step(format!("PUBLISH {}", target.address), t, published) {
            let t = Instant::now();
            let subscribed = within(a.subscribe(
                &format!("sip:{}", target.address),
                "presence",
                "application/pidf+xml",
                0,
            ))
            .await;
            let seen = match subscribed {
                Ok(mut sub) => match sub.next_notify(STEP).await {
                    Ok(n) => {
                        let body = n.body_str().unwrap_or_default().to_owned();
                        if body.contains("open") && body.contains(&note) {
                            Ok("available, with the note published".to_owned())
                        } else {
                            Err(format!("NOTIFY does not show the publication: {body}"))
                        }
                    }
                    Err(e) => Err(format!("no NOTIFY: {e}")),
                },
                Err(e) => Err(e),
            };
            run.step(format!("SUBSCRIBE to {}", target.address), t, seen);
        }
        sign_out(&mut run, &b).await;
    }
    sign_out(&mut run, &a).await;
    run.report()
}

/// Sends OPTIONS to `server` (`sip:HOST:PORT` as the Request-URI) and expects a 200: the
/// server is up and answers SIP.
pub async fn options(server: SocketAddr) -> Report {
    let mut run = Run::new("options", server);
    let t = Instant::now();
    let probe = TestUser {
        address: "confab-probe@invalid".to_owned(),
        password: String::new(),
    };
    let outcome = match agent(server, &probe).await {
        Ok(ua) => within(ua.options(&format!("sip:{server}")))
            .await
            .and_then(|r| {
                let status = r.status().unwrap_or_default();
                if status == 200 {
                    Ok(format!("200{}", server_header(&r)))
                } else {
                    Err(format!("answered {status}"))
                }
            }),
        Err(e) => Err(e),
    };
    run.step(format!("OPTIONS {server}"), t, outcome);
    run.report()
}

fn server_header(r: &confab_ua::Message) -> String {
    ["Server", "User-Agent"]
        .iter()
        .find_map(|h| r.headers_named(h).next())
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(|v| format!(" ({v})"))
        .unwrap_or_default()
}

/// Signs `a` in at `a_server` and `b` at `b_server` (two systems: a Confab pool and a
/// legacy one, say), sends a MESSAGE each way and checks that both arrive, and signs them
/// out: the two systems reach each other's users.
pub async fn im_both_ways(
    a_server: SocketAddr,
    a: &TestUser,
    b_server: SocketAddr,
    b: &TestUser,
) -> Report {
    let mut run = Run::new("im-both-ways", a_server);
    let Some(ua_a) = sign_in_at(&mut run, a_server, a).await else {
        return run.report();
    };
    if let Some(ua_b) = sign_in_at(&mut run, b_server, b).await {
        if send_message(&mut run, &ua_a, &ua_b, &b.address).await {
            send_message(&mut run, &ua_b, &ua_a, &a.address).await;
        }
        sign_out(&mut run, &ua_b).await;
    }
    sign_out(&mut run, &ua_a).await;
    run.report()
}

/// Signs `user` in at `server` — another system's, that must pass the registration on to
/// Confab — and checks that Confab's store holds the binding within [`STEP`]; then signs out.
pub async fn registration_reaching(server: SocketAddr, user: &TestUser, store: &Store) -> Report {
    let mut run = Run::new("registration-forwarded", server);
    let Ok(address) = Address::parse(&user.address) else {
        let t = Instant::now();
        run.step(
            format!("register {}", user.address),
            t,
            Err("not a user address".to_owned()),
        );
        return run.report();
    };
    if let Some(ua) = sign_in(&mut run, user).await {
        let t = Instant::now();
        let outcome = loop {
            match store.registrations_of(&address).await {
                Ok(r) if r.iter().any(|b| b.contact.contains(ua.contact_uri())) => {
                    break Ok(format!(
                        "binding {} kept by Confab (path {})",
                        ua.contact_uri(),
                        r.iter()
                            .find(|b| b.contact.contains(ua.contact_uri()))
                            .and_then(|b| b.path.clone())
                            .unwrap_or_else(|| "none".into())
                    ))
                }
                Ok(_) if t.elapsed() < STEP => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(_) => {
                    break Err(
                        "the registration did not reach Confab (the legacy system kept it)"
                            .to_owned(),
                    )
                }
                Err(e) => break Err(e.to_string()),
            }
        };
        run.step(format!("{} registered at Confab", user.address), t, outcome);
        sign_out(&mut run, &ua).await;
    }
    run.report()
}
