//! `confab-load`: a SIPp-style load generator for Confab, a thin command line over
//! [`confab_ua::load::run`]. Load is only ever sent to a loopback address.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Parser, ValueEnum};
use confab_ua::load::{self, LoadConfig, LoadReport, Pace, Scenario};

/// Sends SIP load (REGISTER with digest authentication, or MESSAGE between registered users)
/// to a server on this machine and reports rate, failures, latency and its own CPU use.
#[derive(Debug, Parser)]
#[command(name = "confab-load", version)]
#[command(group(ArgGroup::new("pace").args(["rate", "concurrency"])))]
struct Args {
    /// The server, ip:port; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:5060")]
    server: SocketAddr,
    /// The users' SIP domain.
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// User names are <prefix>1 … <prefix>N.
    #[arg(long, default_value = "user")]
    users_prefix: String,
    /// How many distinct users (one user agent and socket each).
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// The password of user n, `{n}` replaced by its number.
    #[arg(long, default_value = "pw-{n}")]
    password_template: String,
    /// What the users do.
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
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    Register,
    Message,
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
        },
        pace,
        count: args.count,
        duration: seconds("duration", args.duration)?,
        op_timeout: seconds("timeout", args.timeout)?,
        ..LoadConfig::new(args.server, args.domain.clone(), args.users)
    })
}

fn print_text(r: &LoadReport) {
    println!(
        "scenario      {:?}, {:?}, {} users",
        r.scenario, r.pace, r.users
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
    println!("retransmits   {}", r.retransmissions);
    println!("elapsed       {:.3} s", r.elapsed_s);
    println!("rate          {:.1}/s", r.rate_per_s);
    if let Some(l) = r.latency {
        println!(
            "latency       p50 {} µs, p90 {} µs, p99 {} µs, max {} µs",
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("confab-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(load::run(config)) {
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
    if report.failed() > 0 || report.attempted == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
