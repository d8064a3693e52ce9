//! Runs the built `confab serve` the way an operator does, for the binary's integration
//! tests: a child process on ephemeral loopback ports, whose `listening …` lines tell the
//! actual addresses. Every wait is bounded.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_sip::builder::RequestBuilder;
use confab_sip::Message;

pub mod store;
pub mod terminal;

/// The longest any test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// `confab` with `args`, isolated from any CONFAB_* variables of the caller's shell.
pub fn confab(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab"));
    cmd.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CONFAB_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// A running `confab serve`; killed when dropped.
pub struct Running {
    child: Child,
    /// The listeners it printed, as `transport://ip:port`.
    pub listening: Vec<String>,
    /// The admin listener (API, console, metrics).
    pub admin: Option<SocketAddr>,
    stderr: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Running {
    /// Starts `confab serve` with `args` (and a fresh data directory) and waits for its
    /// `listening` lines: one per `--listen` counted in `listeners`.
    pub fn start(cmd_args: &[&str], listeners: usize) -> Running {
        Self::start_with(confab(&[]), cmd_args, listeners)
    }

    /// As [`Running::start`], from a prepared command (environment, working directory).
    pub fn start_with(cmd: Command, cmd_args: &[&str], listeners: usize) -> Running {
        Self::start_in(cmd, None, cmd_args, listeners)
    }

    /// As [`Running::start_with`], on the data directory `data` if given (a restart).
    pub fn start_in(
        mut cmd: Command,
        data: Option<&Path>,
        cmd_args: &[&str],
        listeners: usize,
    ) -> Running {
        let dir = tempfile::tempdir().expect("tempdir");
        let stderr = dir.path().join("stderr.log");
        let data = data.map_or_else(|| dir.path().join("data"), Path::to_path_buf);
        cmd.arg("serve").arg("--data-dir").arg(&data).args(cmd_args);
        // The admin listener on a free port, unless the test chose one: tests run side by
        // side.
        if !cmd_args.contains(&"--admin-listen") {
            cmd.args(["--admin-listen", "127.0.0.1:0"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let mut child = cmd.spawn().expect("confab serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut running = Running {
            child,
            listening: Vec::new(),
            admin: None,
            stderr,
            data,
            _dir: dir,
        };
        let deadline = Instant::now() + WAIT;
        while running.listening.len() < listeners {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let uri = line
                        .strip_prefix("listening ")
                        .unwrap_or_else(|| panic!("unexpected output {line:?}"));
                    match uri
                        .strip_prefix("http://")
                        .or_else(|| uri.strip_prefix("https://"))
                    {
                        Some(admin) => running.admin = admin.parse().ok(),
                        None => running.listening.push(uri.to_owned()),
                    }
                }
                Err(_) => panic!(
                    "confab serve printed {} of {listeners} listeners; stderr:\n{}",
                    running.listening.len(),
                    running.stderr()
                ),
            }
        }
        running
    }

    /// The address of the first listener of `scheme` (`udp`, `tcp` …).
    pub fn addr(&self, scheme: &str) -> SocketAddr {
        let prefix = format!("{scheme}://");
        self.listening
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {scheme} listener in {:?}", self.listening))
    }

    /// The data directory it was started with.
    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    /// What the server logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends the signal `name` (`TERM`, `INT`) with kill(1) and waits for the exit.
    pub fn signal(&mut self, name: &str) -> ExitStatus {
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIG{name} sent");
        self.wait()
    }

    /// Waits for the process to exit, within [`WAIT`].
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "confab serve did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An OPTIONS request from a client at `local` over `transport` (a Via token).
pub fn options(transport: &str, local: SocketAddr, call_id: &str) -> Bytes {
    RequestBuilder::new("OPTIONS", "sip:ping@127.0.0.1")
        .via(transport, &local.to_string(), &format!("z9hG4bK-{call_id}"))
        .header("From", "<sip:tester@example.com>;tag=t1")
        .header("To", "<sip:ping@127.0.0.1>")
        .header("Call-ID", call_id)
        .header("CSeq", "1 OPTIONS")
        .header("Max-Forwards", "70")
        .build()
}

/// Sends an OPTIONS over UDP and returns the response.
pub fn udp_options(server: SocketAddr, call_id: &str) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_read_timeout(Some(WAIT)).expect("timeout");
    let local = socket.local_addr().expect("local");
    socket
        .send_to(&options("UDP", local, call_id), server)
        .expect("send");
    let mut buf = vec![0u8; 65_535];
    let (n, _) = socket.recv_from(&mut buf).expect("a response in time");
    Message::parse(Bytes::copy_from_slice(&buf[..n])).expect("the response parses")
}

/// Checks a 200 to [`options`].
pub fn assert_options_ok(resp: &Message, call_id: &str) {
    assert_eq!(resp.status(), Some(200), "{resp:?}");
    assert_eq!(resp.call_id(), Ok(call_id));
    for name in ["Allow", "Accept", "Supported"] {
        assert!(resp.headers_named(name).next().is_some(), "{name} missing");
    }
    assert!(resp.to().expect("To").tag().is_some(), "To-tag");
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

/// Registers `ua` for ten minutes, retrying while the front-ends learn the users and the
/// topology from the change feed (within a second or two); panics after twice [`WAIT`].
pub async fn register_retrying(ua: &confab_ua::UserAgent) {
    let deadline = Instant::now() + WAIT * 2;
    loop {
        match ua.register(600).await {
            Ok(r) if r.status == 200 => return,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "{} never signs in: {other:?}",
                    ua.aor()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
