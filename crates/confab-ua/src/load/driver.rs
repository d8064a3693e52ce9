//! Threads and sockets: one thread per worker, each with a non-blocking UDP socket on the
//! loopback address; the receive loop (drain what is queued, then `poll` until the socket is
//! readable or the worker's next timer); the phases all workers go through together; the
//! report.
//!
//! Phases: (1) for message, call and subscribe, every worker registers its users (setup), and
//! for subscribe then has its watchers subscribe; (2) once all have, the first to notice
//! takes the start time and the CPU clock, and every worker paces its share of operations
//! from that instant; (3) a worker done with its own operations keeps answering what is
//! relayed to its users until every worker is done — for subscribe, also until every
//! NOTIFY expected has come, or `op_timeout` has passed since.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use socket2::{Domain, Protocol, Socket, Type};

use super::pace::{share, Pacer};
use super::presence::Tally;
use super::worker::{Kind, Setting, Stats, Wire, Worker};
use super::{process_cpu_seconds, Latency, LoadConfig, LoadError, LoadReport, Pace, Scenario};

/// RFC 3261 timers T1 and T2.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// Socket buffers: a burst of a few thousand datagrams must not be dropped.
const SOCKET_BUFFER: usize = 4 << 20;
/// Datagrams handled before the loop looks at the clock and the phases again.
const BATCH: usize = 64;
/// The shortest sleep when nothing arrives: operations of a rate and timers due within it
/// are handled together on waking (a few operations at once at the highest rates), instead
/// of one wake-up each. Arriving datagrams end the sleep at once.
const MIN_SLEEP: Duration = Duration::from_millis(1);

/// What the workers share.
struct Shared {
    workers: usize,
    setup_done: AtomicUsize,
    setup_failed: AtomicUsize,
    setup_first: Mutex<Option<String>>,
    /// The start of the measured phase, and the CPU time then.
    start: OnceLock<(Instant, Option<f64>)>,
    senders_done: AtomicUsize,
    tally: Arc<Tally>,
}

struct SocketWire<'a> {
    socket: &'a UdpSocket,
}

impl Wire for SocketWire<'_> {
    fn send(&mut self, to: SocketAddr, bytes: &[u8]) -> bool {
        match self.socket.send_to(bytes, to) {
            Ok(_) => true,
            // A full buffer loses the datagram, as the network may; timers send it again.
            Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
        }
    }
}

fn bind(server: SocketAddr) -> Result<UdpSocket, LoadError> {
    let addr = if server.is_ipv4() {
        SocketAddr::from(([127, 0, 0, 1], 0))
    } else {
        SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 0))
    };
    let fail = |source| LoadError::Socket { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(fail)?;
    // Larger buffers where the system allows; the defaults also work, just drop sooner.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into()).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    Ok(socket.into())
}

/// How many workers: one per core (or `sockets`), no more than users or concurrency.
fn workers(config: &LoadConfig) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut n = if config.sockets == 0 {
        cores
    } else {
        config.sockets
    };
    n = n.min(config.users);
    if let Pace::Concurrency(c) = config.pace {
        n = n.min(c);
    }
    if config.scenario == Scenario::Subscribe {
        // Every worker publishes for presentities of its own.
        n = n.min(config.presentities);
    }
    n.max(1)
}

/// The measured phase's pacer for worker `i` of `n`, from `t0`.
fn pacer(config: &LoadConfig, i: usize, n: usize, t0: Instant) -> Pacer {
    let quota = share(config.count, n, i);
    let deadline = t0 + config.duration;
    match config.pace {
        // Each worker runs 1/n of the rate, the workers staggered so that together they
        // tick evenly.
        Pace::Rate(r) => {
            let offset = Duration::from_secs_f64(i as f64 / r);
            Pacer::rate(r / n as f64, t0 + offset, quota, deadline)
        }
        Pace::Concurrency(c) => Pacer::closed(share(c as u64, n, i) as usize, quota, deadline),
    }
}

pub(super) fn run(config: LoadConfig) -> Result<LoadReport, LoadError> {
    let config = Arc::new(config);
    let n = workers(&config);
    let run_id: u64 = rand::random();
    let delivered = Arc::new(AtomicU64::new(0));
    let shared = Arc::new(Shared {
        workers: n,
        setup_done: AtomicUsize::new(0),
        setup_failed: AtomicUsize::new(0),
        setup_first: Mutex::new(None),
        start: OnceLock::new(),
        senders_done: AtomicUsize::new(0),
        tally: Arc::new(Tally::new(if config.scenario == Scenario::Subscribe {
            config.presentities
        } else {
            0
        })),
    });
    let mut threads = Vec::with_capacity(n);
    for i in 0..n {
        let socket = bind(config.server)?;
        let local = socket.local_addr().map_err(|source| LoadError::Socket {
            addr: config.server,
            source,
        })?;
        let set = Setting {
            index: i,
            workers: n,
            local,
            server: config.server,
            run: run_id,
            tag: rand::random(),
            t1: T1,
            t2: T2,
        };
        let mut worker = Worker::new(Arc::clone(&config), set, Arc::clone(&delivered));
        worker.tally = Arc::clone(&shared.tally);
        let shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("confab-load-{i}"))
            .spawn(move || work(worker, &socket, &shared))
            .map_err(|source| LoadError::Socket {
                addr: local,
                source,
            })?;
        threads.push(thread);
    }
    let mut all = Vec::with_capacity(n);
    for t in threads {
        // A worker that panicked leaves its counters out; the others still report.
        if let Ok(stats) = t.join() {
            all.push(stats);
        }
    }
    let cpu_end = process_cpu_seconds();
    let failed = shared.setup_failed.load(Ordering::Relaxed);
    if failed > 0 {
        let mut first = lock(&shared.setup_first).clone().unwrap_or_default();
        if first.ends_with(": pending") {
            first.push_str(
                " (a watcher the presentity's rules do not allow is left pending: start the \
                 server with --presence-unknown-watchers colleagues)",
            );
        }
        return Err(LoadError::Setup {
            failed,
            users: config.users,
            first,
        });
    }
    let (t0, cpu_start) = shared
        .start
        .get()
        .copied()
        .unwrap_or((Instant::now(), None));
    Ok(report(
        &config,
        n,
        all,
        (t0, cpu_start, cpu_end),
        &delivered,
        &shared.tally,
    ))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn report(
    config: &LoadConfig,
    sockets: usize,
    all: Vec<Stats>,
    (t0, cpu_start, cpu_end): (Instant, Option<f64>, Option<f64>),
    delivered: &AtomicU64,
    tally: &Tally,
) -> LoadReport {
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut latencies = Vec::new();
    let mut notify_latencies = Vec::new();
    let mut windows: Vec<u64> = Vec::new();
    let (mut attempted, mut succeeded, mut retransmissions, mut stray) = (0, 0, 0, 0);
    let mut last = t0;
    for s in all {
        attempted += s.attempted;
        succeeded += s.succeeded;
        retransmissions += s.retransmissions;
        stray += s.stray;
        for (f, n) in s.failures {
            *failures.entry(f.key()).or_default() += n;
        }
        for (us, at) in s.latencies.iter().zip(&s.finished) {
            let w = (at.saturating_duration_since(t0).as_millis() / 100) as usize;
            if windows.len() <= w {
                windows.resize(w + 1, 0);
            }
            if let Some(max) = windows.get_mut(w) {
                *max = (*max).max(*us);
            }
        }
        latencies.extend(s.latencies);
        notify_latencies.extend(s.notify_latencies);
        if let Some(done) = s.last_done {
            last = last.max(done);
        }
    }
    let elapsed_s = last.saturating_duration_since(t0).as_secs_f64();
    let cpu_s = cpu_start.zip(cpu_end).map(|(a, b)| (b - a).max(0.0));
    LoadReport {
        scenario: config.scenario,
        pace: config.pace,
        users: config.users,
        sockets,
        attempted,
        succeeded,
        failures,
        delivered: if config.scenario == Scenario::Message {
            delivered.load(Ordering::Relaxed)
        } else {
            0
        },
        subscriptions: tally.subscriptions.load(Ordering::Relaxed),
        notifies: tally.notifies.load(Ordering::Relaxed),
        notifies_expected: tally.expected.load(Ordering::Relaxed),
        notify_latency: Latency::of(notify_latencies),
        retransmissions,
        stray,
        elapsed_s,
        rate_per_s: if elapsed_s > 0.0 {
            succeeded as f64 / elapsed_s
        } else {
            0.0
        },
        latency: Latency::of(latencies),
        cpu_s,
        cpu_cores: cpu_s.filter(|_| elapsed_s > 0.0).map(|c| c / elapsed_s),
        max_us_per_100ms: windows,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Setup,
    Waiting,
    Running,
    Draining,
}

/// One worker's thread: its phases and its receive loop; returns the measured phase's
/// counters.
fn work(mut worker: Worker, socket: &UdpSocket, shared: &Shared) -> Stats {
    let config = Arc::clone(&worker.cfg);
    let (i, n) = (worker.set.index, shared.workers);
    let mut wire = SocketWire { socket };
    let mut buf = vec![0u8; 65_535];
    let subscribing = config.scenario == Scenario::Subscribe;
    // Subscribe: the watchers are still to subscribe once the users have registered.
    let mut to_watch = subscribing;
    // When draining gives up waiting for NOTIFYs.
    let mut drain_until: Option<Instant> = None;
    let mut stage = if config.scenario == Scenario::Register {
        shared.setup_done.fetch_add(1, Ordering::AcqRel);
        Stage::Waiting
    } else {
        let limit = share(config.setup_concurrency as u64, n, i).max(1) as usize;
        let users = worker.user_count() as u64;
        let never = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        worker.begin(Kind::Setup, Pacer::closed(limit, users, never));
        Stage::Setup
    };
    // The socket was found empty and not polled readable since.
    let mut empty = false;
    loop {
        let now = Instant::now();
        worker.tick(now, &mut wire);
        match stage {
            Stage::Setup if !worker.busy(now) => {
                let stats = worker.take_stats();
                let failed: u64 = stats.failures.values().sum();
                if failed == 0 && to_watch {
                    to_watch = false;
                    let limit = share(config.setup_concurrency as u64, n, i).max(1) as usize;
                    let watchers = worker.user_count().saturating_sub(worker.first_watcher);
                    let never = Instant::now() + Duration::from_secs(365 * 24 * 3600);
                    worker.begin(Kind::Watch, Pacer::closed(limit, watchers as u64, never));
                    continue;
                }
                if failed > 0 {
                    shared
                        .setup_failed
                        .fetch_add(failed as usize, Ordering::AcqRel);
                    let mut first = lock(&shared.setup_first);
                    if first.is_none() {
                        *first = stats.first_failure;
                    }
                }
                shared.setup_done.fetch_add(1, Ordering::AcqRel);
                stage = Stage::Waiting;
                continue;
            }
            Stage::Waiting if shared.setup_done.load(Ordering::Acquire) == n => {
                if shared.setup_failed.load(Ordering::Acquire) > 0 {
                    break;
                }
                let &(t0, _) = shared
                    .start
                    .get_or_init(|| (Instant::now(), process_cpu_seconds()));
                worker.t0 = Some(t0);
                worker.begin(Kind::from(config.scenario), pacer(&config, i, n, t0));
                stage = Stage::Running;
                continue;
            }
            Stage::Running if !worker.busy(now) => {
                shared.senders_done.fetch_add(1, Ordering::AcqRel);
                stage = Stage::Draining;
            }
            Stage::Draining if shared.senders_done.load(Ordering::Acquire) == n => {
                if !subscribing || shared.tally.complete() {
                    break;
                }
                // NOTIFYs still to come: wait for them, up to the operation timeout.
                let until = *drain_until.get_or_insert(now + config.op_timeout);
                if now >= until {
                    break;
                }
            }
            _ => {}
        }
        // Drain what is queued, a batch at a time (unless the last drain found the socket
        // empty and nothing was received since: then go straight to sleep).
        let mut got = 0;
        while !empty && got < BATCH {
            match socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    got += 1;
                    let now = Instant::now();
                    worker.datagram(from, &buf[..len], now, &mut wire);
                    if got % 8 == 0 {
                        worker.tick(now, &mut wire);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // WouldBlock, or an ICMP error reported on the socket: nothing to read now.
                Err(_) => empty = true,
            }
        }
        if got > 0 {
            continue;
        }
        // Nothing queued: sleep until readable or the next thing due (phases are looked at
        // every few milliseconds while waiting for the other workers).
        let most = match stage {
            Stage::Waiting | Stage::Draining => Duration::from_millis(2),
            _ => Duration::from_millis(50),
        };
        let now = Instant::now();
        let wait = worker
            .next_wakeup()
            .map_or(most, |at| at.saturating_duration_since(now))
            .min(most);
        if wait.is_zero() {
            empty = false;
            continue;
        }
        let wait = wait.max(MIN_SLEEP);
        let timeout = Timespec {
            tv_sec: wait.as_secs() as i64,
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        let mut fds = [PollFd::new(socket, PollFlags::IN)];
        let _ = rustix::event::poll(&mut fds, Some(&timeout));
        empty = false;
    }
    worker.take_stats()
}
