//! `confab-load`: a SIPp-style load generator for Confab, a thin command line over
//! [`confab_ua::load::run_blocking`]. Load is only ever sent to a loopback address.
//!
//! Exit status: 0 when every operation succeeded (and at least one ran), 1 when any failed
//! (the report says which and why) or, for the subscribe scenario, when fewer NOTIFYs came
//! than the succeeded PUBLISHes should have caused, 2 when the run could not start (bad
//! settings, a socket, users that could not register before the message, call or subscribe
//! scenario, or watchers that could not subscribe).
//!
//! The subscribe scenario needs a server that shows unknown watchers their presentity:
//!
//! ```sh
//! confab serve --presence-unknown-watchers colleagues   # or CONFAB_PRESENCE_UNKNOWN_WATCHERS=colleagues
//! confab-load --scenario subscribe --users 1020 --presentities 20 --watch 20 --rate 100 --count 1000
//! ```

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Parser, ValueEnum};
use confab_ua::load::{self, LoadConfig, LoadReport, Pace, Scenario};

/// Sends SIP load to a server on this machine — REGISTER with digest authentication, MESSAGE
/// between registered users, calls (INVITE, ACK, BYE) between them, or presence (PUBLISH to
/// subscribed watchers) — from many simulated users sharing a few sockets, and reports rate,
/// failures, latency and its own CPU use.
#[derive(Debug, Parser)]
#[command(name = "confab-load", version)]
#[command(group(ArgGroup::new("pace").args(["rate", "concurrency"])))]
struct Args {
    /// The server, ip:port; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:5060")]
    server: SocketAddr,
    /// The users' SIP domain (also their digest realm).
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// User names are the prefix and a number: PREFIX1 … PREFIXN (user1 … user100).
    #[arg(long, default_value = "user")]
    users_prefix: String,
    /// How many distinct users (they share the generator's sockets).
    #[arg(long, default_value_t = 100)]
    users: usize,
    // The help cannot spell the placeholder: clap prints a brace-n-brace in help text as a
    // line break.
    /// The users' password: this template with its placeholder (see the default) replaced
    /// by the user's number.
    #[arg(long, default_value = "pw-{n}")]
    password_template: String,
    /// What the users do: register (REGISTER, 401, REGISTER with credentials, 200); message
    /// (MESSAGE to the next user, delivered through the server); call (INVITE to the next
    /// user, answered, ACK, BYE); subscribe (the watchers subscribe to the presentities'
    /// presence first, then each operation is one PUBLISH whose NOTIFYs are counted; the
    /// server must run with --presence-unknown-watchers colleagues). Message, call and
    /// subscribe register every user first.
    #[arg(long, value_enum, default_value_t = ScenarioArg::Register)]
    scenario: ScenarioArg,
    /// Start this many operations per second (open loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Keep this many operations in flight (closed loop; the default, 8).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Stop after this many operations.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Stop starting operations after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// An operation not finished within this many seconds counts as a timeout.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Expires asked for in REGISTER, SUBSCRIBE and PUBLISH, in seconds.
    #[arg(long, default_value_t = 3600)]
    expires: u32,
    /// Worker threads, each with one UDP socket carrying its share of the users [default:
    /// one per available core].
    #[arg(long)]
    sockets: Option<usize>,
    /// Registrations in flight at once while message, call and subscribe register every user
    /// first (and watchers subscribing at once for subscribe).
    #[arg(long, default_value_t = 256)]
    setup_concurrency: usize,
    /// Subscribe: users 1 … M are presentities (they publish), the others watchers.
    #[arg(long, value_name = "M", default_value_t = 10)]
    presentities: usize,
    /// Subscribe: each watcher subscribes to K distinct presentities (at most M; at most
    /// 1000 watchers on one presentity).
    #[arg(long, value_name = "K", default_value_t = 1)]
    watch: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    Register,
    Message,
    Call,
    Subscribe,
}

fn seconds(name: &str, s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("--{name} must be a non-negative number"))
}

fn config(args: &Args) -> Result<LoadConfig, String> {
    let pace = match (args.rate, args.concurrency) {
        (Some(r), _) => Pace::Rate(r),
        (None, Some(c)) => Pace::Concurrency(c),
        (None, None) => Pace::Concurrency(8),
    };
    Ok(LoadConfig {
        users_prefix: args.users_prefix.clone(),
        password_template: args.password_template.clone(),
        scenario: match args.scenario {
            ScenarioArg::Register => Scenario::Register,
            ScenarioArg::Message => Scenario::Message,
            ScenarioArg::Call => Scenario::Call,
            ScenarioArg::Subscribe => Scenario::Subscribe,
        },
        pace,
        count: args.count,
        duration: seconds("duration", args.duration)?,
        op_timeout: seconds("timeout", args.timeout)?,
        expires: args.expires,
        sockets: args.sockets.unwrap_or(0),
        setup_concurrency: args.setup_concurrency,
        presentities: args.presentities,
        watch: args.watch,
        ..LoadConfig::new(args.server, args.domain.clone(), args.users)
    })
}

fn print_text(r: &LoadReport) {
    let pace = match r.pace {
        Pace::Rate(per_s) => format!("rate {per_s}/s"),
        Pace::Concurrency(c) => format!("concurrency {c}"),
    };
    println!(
        "scenario      {:?}, {pace}, {} users on {} sockets",
        r.scenario, r.users, r.sockets
    );
    println!("attempted     {}", r.attempted);
    println!("succeeded     {}", r.succeeded);
    if r.failures.is_empty() {
        println!("failures      0");
    } else {
        let list: Vec<String> = r
            .failures
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        println!("failures      {} ({})", r.failed(), list.join(", "));
    }
    if r.scenario == Scenario::Message {
        println!("delivered     {}", r.delivered);
    }
    if r.scenario == Scenario::Subscribe {
        println!("subscriptions {}", r.subscriptions);
        println!(
            "notifies      {} of {} expected",
            r.notifies, r.notifies_expected
        );
    }
    println!("retransmits   {}", r.retransmissions);
    if r.stray > 0 {
        println!("stray         {}", r.stray);
    }
    println!("elapsed       {:.3} s", r.elapsed_s);
    println!("rate          {:.1}/s", r.rate_per_s);
    if let Some(l) = r.latency {
        println!(
            "latency       p50 {} µs, p90 {} µs, p99 {} µs, max {} µs",
            l.p50_us, l.p90_us, l.p99_us, l.max_us
        );
    }
    if let Some(l) = r.notify_latency {
        println!(
            "notify        p50 {} µs, p90 {} µs, p99 {} µs, max {} µs",
            l.p50_us, l.p90_us, l.p99_us, l.max_us
        );
    }
    if let (Some(cpu), Some(cores)) = (r.cpu_s, r.cpu_cores) {
        println!("own cpu       {cpu:.2} s ({cores:.2} cores)");
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("confab-load: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match load::run_blocking(config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("confab-load: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("confab-load: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print_text(&report);
    }
    let missing =
        report.scenario == Scenario::Subscribe && report.notifies < report.notifies_expected;
    if report.failed() > 0 || report.attempted == 0 || missing {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
