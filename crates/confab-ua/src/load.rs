//! The load generator behind `confab-load`: scenarios (`register`, `message`) run by many
//! simulated users against one server, paced at a fixed rate or by closed-loop concurrency,
//! bounded by a count and a duration, summed up in a [`LoadReport`].
//!
//! Each simulated user is one [`UserAgent`] (one socket, one background task). That is simple
//! and exact but does not scale past a few thousand users (file descriptors, one task and one
//! transaction layer per user); a shared-socket generator is the next step.
//!
//! Load is only ever sent to a loopback address: [`run`] refuses any other server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{Secret, UaConfig, UaError, UserAgent};

/// What the simulated users do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Each operation is one REGISTER with digest authentication, user `i % users`.
    Register,
    /// Every user registers first; each operation is one MESSAGE from user `i % users` to
    /// the next user, counted as delivered when the receiving user agent gets it.
    Message,
}

/// How operations are paced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pace {
    /// Start this many operations per second, whatever the answers.
    Rate(f64),
    /// Keep this many operations in flight (closed loop).
    Concurrency(usize),
}

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server; must be a loopback address.
    pub server: SocketAddr,
    /// The SIP domain of the users (`sip:<prefix><n>@<domain>`).
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
    /// Expires asked for in REGISTER.
    pub expires: u32,
}

impl LoadConfig {
    /// Defaults for `users` users of `domain` on `server`: register scenario, concurrency 8,
    /// 1000 operations, 10 s.
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
        }
    }

    fn check(&self) -> Result<(), LoadError> {
        if !self.server.ip().is_loopback() {
            return Err(LoadError::NotLoopback(self.server));
        }
        if self.users == 0 {
            return Err(LoadError::Config("--users must be at least 1".into()));
        }
        if self.scenario == Scenario::Message && self.users < 2 {
            return Err(LoadError::Config(
                "the message scenario needs at least 2 users".into(),
            ));
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

    fn user(&self, n: usize) -> (String, String) {
        let name = format!("{}{}", self.users_prefix, n + 1);
        let password = self.password_template.replace("{n}", &(n + 1).to_string());
        (name, password)
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
    /// A simulated user could not start.
    #[error("cannot start simulated user {user}: {source}")]
    Bind {
        /// The user name.
        user: String,
        /// Why.
        source: UaError,
    },
    /// The message scenario's users could not all register first.
    #[error(
        "{failed} of {users} users failed to register before the message scenario (first: {first})"
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
    /// Operations started.
    pub attempted: u64,
    /// Operations that succeeded (2xx).
    pub succeeded: u64,
    /// Failures by final status code, or `timeout` / `transport` / `error`.
    pub failures: BTreeMap<String, u64>,
    /// Messages received by the receiving user agents (message scenario; else 0).
    pub delivered: u64,
    /// Retransmissions by all simulated users (timer-driven resends).
    pub retransmissions: u64,
    /// From the first operation started to the last finished, in seconds.
    pub elapsed_s: f64,
    /// Succeeded operations per second over `elapsed_s`.
    pub rate_per_s: f64,
    /// Latency of succeeded operations (none if none succeeded).
    pub latency: Option<Latency>,
    /// CPU time (user + system) this process used during the measured phase, in seconds;
    /// none where /proc is not available.
    pub cpu_s: Option<f64>,
    /// `cpu_s / elapsed_s`: how many cores the generator kept busy.
    pub cpu_cores: Option<f64>,
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
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// The shared state of one run.
struct Run {
    config: LoadConfig,
    uas: Arc<Vec<UserAgent>>,
    /// One lock per user: one operation at a time per user agent.
    locks: Vec<tokio::sync::Mutex<()>>,
    next: AtomicU64,
    attempted: AtomicU64,
    succeeded: AtomicU64,
    deadline: Instant,
    failures: Mutex<BTreeMap<String, u64>>,
    latencies: Mutex<Vec<u64>>,
    last_done: Mutex<Instant>,
}

impl Run {
    /// Claims the next operation number, if the run is not over.
    fn claim(&self) -> Option<u64> {
        if Instant::now() >= self.deadline {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.config.count).then_some(i)
    }

    async fn op(&self, i: u64) {
        let n = self.config.users;
        let user = (i % n as u64) as usize;
        let _guard = self.locks[user].lock().await;
        self.attempted.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.config.op_timeout, self.attempt(user)).await;
        let took = started.elapsed();
        let failure = match outcome {
            Err(_) => Some("timeout".to_owned()),
            Ok(Ok(status)) if (200..300).contains(&status) => None,
            Ok(Ok(status)) => Some(status.to_string()),
            Ok(Err(e)) => Some(failure_key(&e)),
        };
        match failure {
            None => {
                self.succeeded.fetch_add(1, Ordering::Relaxed);
                lock(&self.latencies).push(took.as_micros() as u64);
            }
            Some(key) => *lock(&self.failures).entry(key).or_default() += 1,
        }
        let now = Instant::now();
        let mut last = lock(&self.last_done);
        if now > *last {
            *last = now;
        }
    }

    async fn attempt(&self, user: usize) -> Result<u16, UaError> {
        match self.config.scenario {
            Scenario::Register => Ok(self.uas[user].register(self.config.expires).await?.status),
            Scenario::Message => {
                let to = (user + 1) % self.config.users;
                let (name, _) = self.config.user(to);
                let target = format!("sip:{name}@{}", self.config.domain);
                self.uas[user]
                    .message(&target, "text/plain", b"confab-load".to_vec())
                    .await
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn failure_key(e: &UaError) -> String {
    match e {
        UaError::Rejected { status, .. }
        | UaError::AuthRejected { status }
        | UaError::NoCredentials { status }
        | UaError::AuthUnsupported { status, .. } => status.to_string(),
        UaError::TransactionTimeout | UaError::Timeout(_) => "timeout".into(),
        UaError::Transport(_) => "transport".into(),
        _ => "error".into(),
    }
}

/// Runs one load run to its end (count reached or duration over, then every operation in
/// flight finished or timed out). Needs a Tokio runtime; a multi-threaded one lets the
/// generator use every core.
pub async fn run(config: LoadConfig) -> Result<LoadReport, LoadError> {
    config.check()?;
    let mut uas = Vec::with_capacity(config.users);
    for n in 0..config.users {
        let (name, password) = config.user(n);
        let ua_config = UaConfig {
            server: Some(config.server),
            local: if config.server.is_ipv4() {
                SocketAddr::from(([127, 0, 0, 1], 0))
            } else {
                SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 0))
            },
            username: Some(name.clone()),
            secret: Some(Secret::Password(password)),
            incoming_capacity: 1024,
            ..UaConfig::new(format!("sip:{name}@{}", config.domain))
        };
        let ua = UserAgent::bind(ua_config)
            .await
            .map_err(|source| LoadError::Bind { user: name, source })?;
        uas.push(ua);
    }
    let uas = Arc::new(uas);

    if config.scenario == Scenario::Message {
        setup_registrations(&uas, &config).await?;
    }

    // Receivers count every MESSAGE delivered to them (answered 200 by the user agent).
    let delivered = Arc::new(AtomicU64::new(0));
    let mut receivers = Vec::new();
    if config.scenario == Scenario::Message {
        for i in 0..uas.len() {
            let uas = uas.clone();
            let delivered = delivered.clone();
            receivers.push(tokio::spawn(async move {
                while let Ok(incoming) = uas[i].next_incoming(Duration::from_secs(3600)).await {
                    if incoming.method_str() == "MESSAGE" {
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }

    let cpu_start = process_cpu_seconds();
    let start = Instant::now();
    let run = Arc::new(Run {
        locks: (0..config.users)
            .map(|_| tokio::sync::Mutex::new(()))
            .collect(),
        uas: uas.clone(),
        next: AtomicU64::new(0),
        attempted: AtomicU64::new(0),
        succeeded: AtomicU64::new(0),
        deadline: start + config.duration,
        failures: Mutex::new(BTreeMap::new()),
        latencies: Mutex::new(Vec::new()),
        last_done: Mutex::new(start),
        config: config.clone(),
    });
    drive(&run).await;
    let elapsed = lock(&run.last_done).duration_since(start);
    let cpu_s = cpu_start.and_then(|s0| process_cpu_seconds().map(|s1| s1 - s0));
    let succeeded = run.succeeded.load(Ordering::Relaxed);

    // Deliveries may trail the sender's 2xx a little (the server relays after answering).
    if config.scenario == Scenario::Message {
        let until = Instant::now() + Duration::from_secs(2);
        while delivered.load(Ordering::Relaxed) < succeeded && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for receiver in &receivers {
        receiver.abort();
    }
    let retransmissions = uas.iter().map(|ua| ua.stats().retransmissions).sum();
    let elapsed_s = elapsed.as_secs_f64();
    let report = LoadReport {
        scenario: config.scenario,
        pace: config.pace,
        users: config.users,
        attempted: run.attempted.load(Ordering::Relaxed),
        succeeded,
        failures: lock(&run.failures).clone(),
        delivered: delivered.load(Ordering::Relaxed),
        retransmissions,
        elapsed_s,
        rate_per_s: if elapsed_s > 0.0 {
            succeeded as f64 / elapsed_s
        } else {
            0.0
        },
        latency: Latency::of(std::mem::take(&mut *lock(&run.latencies))),
        cpu_s,
        cpu_cores: cpu_s.filter(|_| elapsed_s > 0.0).map(|c| c / elapsed_s),
    };
    for receiver in receivers {
        let _ = receiver.await;
    }
    drop(run);
    if let Ok(uas) = Arc::try_unwrap(uas) {
        for ua in uas {
            ua.shutdown().await;
        }
    }
    Ok(report)
}

/// Registers every user before the message scenario, 64 at a time.
async fn setup_registrations(
    uas: &Arc<Vec<UserAgent>>,
    config: &LoadConfig,
) -> Result<(), LoadError> {
    let mut failed = 0;
    let mut first = None;
    for chunk in (0..uas.len()).collect::<Vec<_>>().chunks(64) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let uas = uas.clone();
            let expires = config.expires;
            tasks.push(tokio::spawn(async move { uas[i].register(expires).await }));
        }
        for task in tasks {
            match task.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    failed += 1;
                    first.get_or_insert_with(|| e.to_string());
                }
                Err(e) => {
                    failed += 1;
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
    match first {
        None => Ok(()),
        Some(first) => Err(LoadError::Setup {
            failed,
            users: uas.len(),
            first,
        }),
    }
}

/// Runs the operations: closed loop with one worker per slot of concurrency, or one task
/// started per tick of the rate.
async fn drive(run: &Arc<Run>) {
    match run.config.pace {
        Pace::Concurrency(c) => {
            let workers: Vec<_> = (0..c)
                .map(|_| {
                    let run = run.clone();
                    tokio::spawn(async move {
                        while let Some(i) = run.claim() {
                            run.op(i).await;
                        }
                    })
                })
                .collect();
            for worker in workers {
                let _ = worker.await;
            }
        }
        Pace::Rate(rate) => {
            let period = Duration::from_secs_f64(1.0 / rate);
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = tokio::task::JoinSet::new();
            loop {
                ticks.tick().await;
                let Some(i) = run.claim() else { break };
                let run = run.clone();
                tasks.spawn(async move { run.op(i).await });
                // Reap finished tasks so the set does not grow with the run.
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        }
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
    }

    #[test]
    fn own_cpu_time_is_read_from_proc() {
        let cpu = process_cpu_seconds().expect("/proc/self/stat on Linux");
        assert!(cpu >= 0.0);
    }

    #[test]
    fn users_are_numbered_from_one_with_templated_passwords() {
        let config = LoadConfig::new("127.0.0.1:5060".parse().expect("addr"), "localhost", 2);
        assert_eq!(config.user(0), ("user1".into(), "pw-1".into()));
        assert_eq!(config.user(1), ("user2".into(), "pw-2".into()));
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
        let lonely = LoadConfig {
            scenario: Scenario::Message,
            ..base.clone()
        };
        assert!(matches!(lonely.check(), Err(LoadError::Config(_))));
        let stalled = LoadConfig {
            pace: Pace::Rate(0.0),
            ..base
        };
        assert!(matches!(stalled.check(), Err(LoadError::Config(_))));
    }
}
