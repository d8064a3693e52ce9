//! The load generator behind `confab-load`: scenarios (`register`, `message`, `call`,
//! `subscribe`) run by many simulated users against one server, paced at a fixed rate or by closed-loop
//! concurrency, bounded by a count and a duration, summed up in a [`LoadReport`].
//!
//! It does not use [`crate::UserAgent`]: one socket and one task per user does not scale to
//! the 100,000 users a memory measurement needs, nor leave the CPU to the server under test.
//! Instead a few *workers* — one thread and one UDP socket each — each carry a share of the
//! users. Requests are written straight into reusable buffers, what comes back is read with
//! the zero-copy [`confab_sip::Message`], and responses find their operation by the branch of
//! their top Via (which names the operation's slot and transaction). A simulated user costs
//! about a hundred bytes.
//!
//! | module | owns |
//! |---|---|
//! | this one | the public API: [`LoadConfig`], [`Scenario`], [`Pace`], [`LoadReport`], [`run`] |
//! | `driver` | threads and sockets: binding, the receive loop, the phases shared by workers, the report |
//! | `worker` | one worker's users and operations in flight, pacing, timers, dispatch of what arrives |
//! | `caller` | what an operation sends and how it reacts to responses (REGISTER, MESSAGE, INVITE/ACK/BYE, SUBSCRIBE, PUBLISH) |
//! | `callee` | answering requests the server relays to simulated users: MESSAGE, INVITE, ACK, BYE |
//! | `presence` | the subscribe scenario: who watches whom, PUBLISH bodies, NOTIFYs answered and counted, the run-wide tally |
//! | `auth` | digest challenges: which to answer, credentials, nonce counts, cached HA1 |
//! | `wire` | the text of messages: branches, run markers (MESSAGE bodies, PIDF notes), request heads, responses |
//! | `pace` | when to start operations: rate ticker, concurrency, shares of counts and users |
//! | `timers` | retransmission and timeout queues (fixed durations, so FIFO queues) |
//!
//! Semantics worth knowing:
//!
//! - A user runs one operation at a time. An operation due for a busy user waits for it;
//!   waiting operations not started before the end of `duration` are not attempted.
//! - Users are spread over the workers (user `u` on worker `u mod sockets`), and each worker
//!   runs its share of `count` over its own users in turn. With `count` equal to `users`,
//!   every user does exactly one operation.
//! - Requests are retransmitted over UDP as RFC 3261 §17.1 says (T1 = 500 ms doubling, capped
//!   at T2 = 4 s except for INVITE); a transaction that hears nothing for 64·T1, or an
//!   operation not done within `op_timeout`, is a `timeout` failure. An operation abandoned
//!   at its timeout sends nothing more (no CANCEL, no BYE).
//! - Load is only ever sent to a loopback address: [`run`] refuses any other server.
//!
//! The subscribe scenario ([`Scenario::Subscribe`]):
//!
//! - Users `1..=presentities` are presentities, the others watchers. Watcher `w` (its index
//!   from 0, `w ≥ presentities`) subscribes to the `watch` presentities with indexes
//!   `(w + j) mod presentities`, `j` in `0..watch`: every presentity gets about
//!   `(users − presentities) · watch / presentities` watchers, and the run is refused when
//!   one would get more than [`MAX_WATCHERS`] (the server's default limit).
//! - Setup (not measured): every user registers, then every watcher subscribes (SUBSCRIBE,
//!   407, SUBSCRIBE with credentials; `setup_concurrency` watchers at a time, each through its
//!   subscriptions in turn). A subscription is established when its 2xx has come and its
//!   first NOTIFY has been answered; one left `pending` fails the setup: the server must show
//!   unknown watchers their presentity (`confab serve --presence-unknown-watchers
//!   colleagues`, or `CONFAB_PRESENCE_UNKNOWN_WATCHERS=colleagues`).
//! - Each operation is one PUBLISH by presentity `i mod presentities` for itself, with a PIDF
//!   body whose note carries the run's marker, the operation's number and its send time in
//!   µs since the measured phase started; the first PUBLISH of a presentity creates its
//!   publication, the later ones modify it (`SIP-If-Match` with the last `SIP-ETag`).
//! - Every NOTIFY is answered 200 at once. One with this run's marker counts in
//!   [`LoadReport::notifies`] (once, whatever the retransmissions) and its delay from the
//!   PUBLISH's send time in [`LoadReport::notify_latency`]. Each succeeded PUBLISH expects one
//!   NOTIFY per established subscription to its presentity; the run waits up to
//!   `op_timeout` after the last operation for them. The server sends one NOTIFY at a time per
//!   subscription and, for changes made while one is in flight, only the state of the moment
//!   it is answered: a presentity that publishes again within its watchers' round trip
//!   shows as NOTIFYs missing.
//! - Subscriptions are not ended: they stay on the server until they expire (`expires`),
//!   also counting against its limit of watchers per presentity in the next runs.

mod auth;
mod callee;
mod caller;
mod driver;
mod pace;
mod presence;
mod timers;
mod wire;
mod worker;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

/// What the simulated users do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Each operation registers user `i % users` with the full digest round: REGISTER, 401,
    /// REGISTER with Authorization, 200. Each user keeps its Call-ID and raises its CSeq.
    Register,
    /// Every user registers first; each operation is one MESSAGE from a user to the next
    /// one (`sip:<name>@<domain>`), authenticated to the proxy (407 once, then the cached
    /// nonce with a rising nonce count), counted as delivered when the receiving simulated
    /// user gets it with this run's marker.
    Message,
    /// Every user registers first; each operation is one call from a user to the next one:
    /// INVITE (authenticated as for MESSAGE), 180 and 200 from the callee, ACK, BYE, 200.
    Call,
    /// Every user registers and every watcher subscribes to its presentities first; each
    /// operation is one PUBLISH of a presentity's PIDF document (authenticated as for
    /// MESSAGE), whose NOTIFYs the watchers count (see the module documentation).
    Subscribe,
}

/// The most watchers the server accepts on one presentity (its default `max_watchers`).
pub const MAX_WATCHERS: u64 = 1000;

/// How operations are paced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pace {
    /// Start this many operations per second, whatever the answers (open loop).
    Rate(f64),
    /// Keep this many operations in flight (closed loop).
    Concurrency(usize),
}

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server; must be a loopback address.
    pub server: SocketAddr,
    /// The SIP domain of the users (`sip:<prefix><n>@<domain>`), also their digest realm.
    pub domain: String,
    /// The user name prefix: users are `<prefix>1` … `<prefix><users>`.
    pub users_prefix: String,
    /// How many distinct users.
    pub users: usize,
    /// The password of user `n`: `{n}` is replaced by its number.
    pub password_template: String,
    /// The scenario.
    pub scenario: Scenario,
    /// The pacing.
    pub pace: Pace,
    /// Stop after this many operations.
    pub count: u64,
    /// Stop starting operations after this long.
    pub duration: Duration,
    /// An operation not finished within this long is a failure (`timeout`).
    pub op_timeout: Duration,
    /// Expires asked for in REGISTER, SUBSCRIBE and PUBLISH.
    pub expires: u32,
    /// Worker threads, each with its own socket; 0 means one per available core.
    pub sockets: usize,
    /// Registrations in flight at once while the message, call and subscribe scenarios
    /// register every user before they start (and watchers subscribing at once in the
    /// subscribe scenario).
    pub setup_concurrency: usize,
    /// Subscribe scenario: users `1..=presentities` publish, the others watch.
    pub presentities: usize,
    /// Subscribe scenario: how many distinct presentities each watcher subscribes to.
    pub watch: usize,
}

impl LoadConfig {
    /// Defaults for `users` users of `domain` on `server`: register scenario, concurrency 8,
    /// 1000 operations, 10 s, timeout 5 s, expires 3600, one socket per core; for the
    /// subscribe scenario 10 presentities, each watcher watching 1.
    pub fn new(server: SocketAddr, domain: impl Into<String>, users: usize) -> LoadConfig {
        LoadConfig {
            server,
            domain: domain.into(),
            users_prefix: "user".into(),
            users,
            password_template: "pw-{n}".into(),
            scenario: Scenario::Register,
            pace: Pace::Concurrency(8),
            count: 1000,
            duration: Duration::from_secs(10),
            op_timeout: Duration::from_secs(5),
            expires: 3600,
            sockets: 0,
            setup_concurrency: 256,
            presentities: 10,
            watch: 1,
        }
    }

    fn check(&self) -> Result<(), LoadError> {
        if !self.server.ip().is_loopback() {
            return Err(LoadError::NotLoopback(self.server));
        }
        if self.users == 0 || u32::try_from(self.users).is_err() {
            return Err(LoadError::Config(
                "--users must be between 1 and 4294967295".into(),
            ));
        }
        if self.scenario != Scenario::Register && self.users < 2 {
            return Err(LoadError::Config(
                "the message, call and subscribe scenarios need at least 2 users".into(),
            ));
        }
        if self.scenario == Scenario::Subscribe {
            self.check_subscribe()?;
        }
        if self.setup_concurrency == 0 {
            return Err(LoadError::Config(
                "--setup-concurrency must be at least 1".into(),
            ));
        }
        if self.op_timeout.is_zero() {
            return Err(LoadError::Config("--timeout must be above 0".into()));
        }
        match self.pace {
            Pace::Rate(r) if !(r.is_finite() && r > 0.0) => {
                Err(LoadError::Config("--rate must be a positive number".into()))
            }
            Pace::Concurrency(0) => {
                Err(LoadError::Config("--concurrency must be at least 1".into()))
            }
            _ => Ok(()),
        }
    }

    /// The subscribe scenario's shape: at least one presentity and one watcher, `watch`
    /// between 1 and `presentities`, no presentity with more than [`MAX_WATCHERS`].
    fn check_subscribe(&self) -> Result<(), LoadError> {
        let (users, m, k) = (self.users, self.presentities, self.watch);
        if m == 0 || m >= users {
            return Err(LoadError::Config(format!(
                "--presentities must be between 1 and {} (--users {users} minus one: the \
                 users after the presentities are the watchers)",
                users - 1
            )));
        }
        if k == 0 || k > m {
            return Err(LoadError::Config(format!(
                "--watch must be between 1 and --presentities ({m}): each watcher watches \
                 that many distinct presentities"
            )));
        }
        let most = presence::most_watchers(users, m, k);
        if most > MAX_WATCHERS {
            return Err(LoadError::Config(format!(
                "{} watchers watching {k} of {m} presentities each put {most} watchers on one \
                 presentity, and the server accepts at most {MAX_WATCHERS}: raise \
                 --presentities, or lower --watch or --users",
                users - m
            )));
        }
        Ok(())
    }

    fn user_name(&self, n: usize) -> String {
        format!("{}{}", self.users_prefix, n + 1)
    }

    fn password(&self, n: usize) -> String {
        self.password_template.replace("{n}", &(n + 1).to_string())
    }
}

/// Why a load run could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The server is not a loopback address.
    #[error("refusing to send load to {0}: load is only ever sent to a loopback address (127.0.0.1 or ::1)")]
    NotLoopback(SocketAddr),
    /// A setting cannot work.
    #[error("invalid load configuration: {0}")]
    Config(String),
    /// A worker's socket could not be opened, or its thread started.
    #[error("cannot open the load generator's socket on {addr}: {source}")]
    Socket {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The message, call or subscribe scenario's users could not all register (or, for
    /// subscribe, the watchers subscribe) first.
    #[error(
        "{failed} of {users} users failed to register or subscribe before the scenario \
         (first: {first}); are they added with these names and passwords?"
    )]
    Setup {
        /// How many failed.
        failed: usize,
        /// Of how many.
        users: usize,
        /// The first failure.
        first: String,
    },
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl Latency {
    /// Nearest-rank percentiles of `samples`; none when empty.
    fn of(mut samples: Vec<u64>) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = (q * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        Some(Latency {
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            max_us: samples[samples.len() - 1],
        })
    }
}

/// What a load run did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The scenario.
    pub scenario: Scenario,
    /// The pacing asked for.
    pub pace: Pace,
    /// Distinct users.
    pub users: usize,
    /// Worker sockets used.
    pub sockets: usize,
    /// Operations started.
    pub attempted: u64,
    /// Operations that succeeded (2xx; for a call, the BYE's 2xx).
    pub succeeded: u64,
    /// Failures by final status code, or `timeout` / `transport` / `error`.
    pub failures: BTreeMap<String, u64>,
    /// MESSAGEs of this run received by the simulated users, each counted once (message
    /// scenario; else 0).
    pub delivered: u64,
    /// Subscriptions established before the measured phase (subscribe scenario; else 0).
    pub subscriptions: u64,
    /// NOTIFYs carrying this run's PUBLISHes received by the watchers, each counted once
    /// (subscribe scenario; else 0).
    pub notifies: u64,
    /// NOTIFYs the succeeded PUBLISHes should have caused: for each, the subscriptions
    /// established to its presentity (subscribe scenario; else 0).
    pub notifies_expected: u64,
    /// From a PUBLISH sent to its NOTIFY received, over the counted NOTIFYs (subscribe
    /// scenario; none if none came).
    pub notify_latency: Option<Latency>,
    /// Requests and 2xx responses sent again by the generator (timer-driven resends).
    pub retransmissions: u64,
    /// Responses that matched no operation in flight (late, duplicated or foreign).
    pub stray: u64,
    /// From the first operation started to the last finished, in seconds.
    pub elapsed_s: f64,
    /// Succeeded operations per second over `elapsed_s`.
    pub rate_per_s: f64,
    /// Latency of succeeded operations, first request sent to final answer (none if none
    /// succeeded).
    pub latency: Option<Latency>,
    /// CPU time (user + system) this process used during the measured phase, in seconds;
    /// none where /proc is not available.
    pub cpu_s: Option<f64>,
    /// `cpu_s / elapsed_s`: how many cores the generator kept busy.
    pub cpu_cores: Option<f64>,
    /// The largest latency of the operations that finished in each tenth of a second of
    /// the run, in µs (0 where none did): where the tail of the distribution sits in time —
    /// one stall, or a steady backlog.
    pub max_us_per_100ms: Vec<u64>,
}

impl LoadReport {
    /// Operations that failed.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

/// This process's CPU time (user + system) from `/proc/self/stat`, in seconds. Linux reports
/// it in USER_HZ ticks, which is 100 on every architecture Linux exposes to user space.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Runs one load run to its end (count reached or duration over, then every operation in
/// flight finished or timed out), on threads of its own; the calling thread waits.
pub fn run_blocking(config: LoadConfig) -> Result<LoadReport, LoadError> {
    config.check()?;
    driver::run(config)
}

/// [`run_blocking`] for async callers: the run happens on threads of its own, so the Tokio
/// runtime it is awaited on (any flavour) only waits.
pub async fn run(config: LoadConfig) -> Result<LoadReport, LoadError> {
    config.check()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("confab-load".into())
        .spawn(move || {
            let _ = tx.send(driver::run(config));
        })
        .map_err(|source| LoadError::Socket {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
    match rx.await {
        Ok(result) => result,
        Err(_) => Err(LoadError::Config(
            "the load generator's thread ended without a report".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = Latency::of((1..=100).rev().collect()).expect("some");
        assert_eq!((l.p50_us, l.p90_us, l.p99_us, l.max_us), (50, 90, 99, 100));
        assert_eq!(Latency::of(vec![]), None);
        let one = Latency::of(vec![7]).expect("some");
        assert_eq!((one.p50_us, one.p99_us, one.max_us), (7, 7, 7));
        let two = Latency::of(vec![10, 20]).expect("some");
        assert_eq!((two.p50_us, two.p90_us, two.max_us), (10, 20, 20));
    }

    #[test]
    fn own_cpu_time_is_read_from_proc() {
        let cpu = process_cpu_seconds().expect("/proc/self/stat on Linux");
        assert!(cpu >= 0.0);
    }

    #[test]
    fn users_are_numbered_from_one_with_templated_passwords() {
        let config = LoadConfig::new("127.0.0.1:5060".parse().expect("addr"), "localhost", 2);
        assert_eq!(
            (config.user_name(0), config.password(0)),
            ("user1".into(), "pw-1".into())
        );
        assert_eq!(
            (config.user_name(1), config.password(1)),
            ("user2".into(), "pw-2".into())
        );
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let base = LoadConfig::new("127.0.0.1:5060".parse().expect("addr"), "localhost", 1);
        assert!(base.check().is_ok());
        let remote = LoadConfig {
            server: "10.0.0.1:5060".parse().expect("addr"),
            ..base.clone()
        };
        assert!(matches!(remote.check(), Err(LoadError::NotLoopback(_))));
        for scenario in [Scenario::Message, Scenario::Call, Scenario::Subscribe] {
            let lonely = LoadConfig {
                scenario,
                ..base.clone()
            };
            assert!(matches!(lonely.check(), Err(LoadError::Config(_))));
        }
        let stalled = LoadConfig {
            pace: Pace::Rate(0.0),
            ..base.clone()
        };
        assert!(matches!(stalled.check(), Err(LoadError::Config(_))));
        let idle = LoadConfig {
            pace: Pace::Concurrency(0),
            ..base
        };
        assert!(matches!(idle.check(), Err(LoadError::Config(_))));
    }
}
