//! Interoperability with a real SIP client: `sipsak` (Debian package `sipsak`) against a
//! running `confab serve`: OPTIONS pings over UDP and over TCP get 200 OK; `-U` registers a
//! user with its password (exit 0) and fails with a wrong one (non-zero); a MESSAGE read from
//! a file (`-f`; the `-M` and `-I` modes crash in Debian's build) reaches a confab-ua user.
//!
//! sipsak's exit codes (sipsak(1)): 0 a 2xx final response, 1 another final response, 2 a
//! local error (bad options, and also "unsupported authentication algorithm" when the first
//! challenge names an algorithm it lacks: Debian's build has MD5 only), 3 a remote error
//! (timeout, ICMP).
//!
//! Ignored by default because it needs the sipsak binary; `scripts/interop-sipsak.sh`
//! installs it and runs these tests with `--ignored`.
#![cfg(unix)]

mod common;

/// Debian's sipsak knows MD5 only and answers the first challenge of a 401/407: the server
/// lists MD5 first for it, as a deployment with such clients would (`--digest-algorithms`).
const MD5_FIRST: [&str; 4] = [
    "--listen",
    "udp://127.0.0.1:0",
    "--digest-algorithms",
    "MD5,SHA-256",
];

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::store::{assert_success, run};
use common::*;
use confab_ua::{InviteAnswer, Secret, UaConfig, UserAgent};

/// Runs sipsak with `args`, killing it if it has not finished within [`WAIT`].
fn sipsak(args: &[&str]) -> Output {
    let mut child = Command::new("sipsak")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipsak runs (install it with scripts/interop-sipsak.sh)");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("sipsak output")
}

fn ping(server: SocketAddr, extra: &[&str]) {
    let uri = format!("sip:ping@{server}");
    let mut args = vec!["-vv", "-s", uri.as_str()];
    args.extend_from_slice(extra);
    let out = sipsak(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sipsak {args:?} failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("SIP/2.0 200 OK"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("Allow:") && l.contains("OPTIONS")),
        "{stdout}"
    );
}

#[test]
#[ignore = "needs sipsak from Debian's packages: scripts/interop-sipsak.sh"]
fn sipsak_pings_over_udp() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    ping(server.addr("udp"), &[]);
}

#[test]
#[ignore = "needs sipsak from Debian's packages: scripts/interop-sipsak.sh"]
fn sipsak_pings_over_tcp() {
    let server = Running::start(&["--listen", "tcp://127.0.0.1:0"], 1);
    ping(server.addr("tcp"), &["-E", "tcp"]);
}

fn add_user(data: &Path, address: &str, password: &str) {
    let mut cmd = confab(&["user", "add", address, "--password-stdin"]);
    cmd.arg("--data-dir").arg(data);
    assert_success(&run(cmd, Some(&format!("{password}\n"))));
}

/// A one-line summary of a sipsak run for assertion messages.
fn show(args: &[&str], out: &Output) -> String {
    format!(
        "sipsak {args:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `sipsak -U` for alice at `server` with `password`.
fn register(server: SocketAddr, password: &str) -> (Vec<String>, Output) {
    let args: Vec<String> = [
        // -vvv prints the messages, so the 200 OK can be seen.
        "-vvv".to_owned(),
        "-U".to_owned(),
        "-s".to_owned(),
        format!("sip:alice@localhost:{}", server.port()),
        // Without it sipsak 0.9.8 authenticates as `alice@` (the URI's user part with the @).
        "--auth-username=alice".to_owned(),
        "-a".to_owned(),
        password.to_owned(),
        // sipsak's default Expires (15 s) is below the registrar's Min-Expires (60 s): 423.
        "-x".to_owned(),
        "120".to_owned(),
    ]
    .into();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sipsak(&refs);
    (args, out)
}

#[test]
#[ignore = "needs sipsak from Debian's packages: scripts/interop-sipsak.sh"]
fn sipsak_registers_with_the_password() {
    let server = Running::start(&MD5_FIRST, 1);
    add_user(&server.data_dir(), "alice@localhost", "alice-secret-1");
    let (args, out) = register(server.addr("udp"), "alice-secret-1");
    let shown = show(&args.iter().map(String::as_str).collect::<Vec<_>>(), &out);
    assert!(
        out.status.success(),
        "{shown}\nserver:\n{}",
        server.stderr()
    );
    assert!(shown.contains("SIP/2.0 200 OK"), "{shown}");
}

#[test]
#[ignore = "needs sipsak from Debian's packages: scripts/interop-sipsak.sh"]
fn sipsak_with_a_wrong_password_does_not_register() {
    let server = Running::start(&MD5_FIRST, 1);
    add_user(&server.data_dir(), "alice@localhost", "alice-secret-1");
    let (args, out) = register(server.addr("udp"), "not-alices-password");
    let shown = show(&args.iter().map(String::as_str).collect::<Vec<_>>(), &out);
    assert!(!out.status.success(), "{shown}");
    assert!(!shown.contains("SIP/2.0 200 OK"), "{shown}");
}

/// A MESSAGE request as sipsak reads it with `-f` (it adds its Via; sipsak inserts the
/// carriage returns itself).
fn message_file(dir: &Path, from: &str, to: &str, body: &str) -> std::path::PathBuf {
    let text = format!(
        "MESSAGE {to} SIP/2.0\n\
         From: <{from}>;tag=sipsak-f1\n\
         To: <{to}>\n\
         Call-ID: sipsak-message-{}@127.0.0.1\n\
         CSeq: 1 MESSAGE\n\
         Max-Forwards: 70\n\
         Content-Type: text/plain\n\
         Content-Length: {}\n\
         \n\
         {body}",
        std::process::id(),
        body.len()
    );
    write(dir, "message.sip", &text)
}

/// bob registers with confab-ua; sipsak sends him a MESSAGE from `from` (with `-a password`
/// when given) and exits 0; bob receives the body.
async fn message_reaches_bob(from: &str, password: Option<&str>) {
    let server = Running::start(&MD5_FIRST, 1);
    let data = server.data_dir();
    add_user(&data, "alice@localhost", "alice-secret-1");
    add_user(&data, "bob@localhost", "bob-secret-22");
    let addr = server.addr("udp");
    let bob = UserAgent::bind(UaConfig {
        server: Some(addr),
        username: Some("bob".to_owned()),
        secret: Some(Secret::Password("bob-secret-22".to_owned())),
        invite: InviteAnswer::Manual,
        ..UaConfig::new("sip:bob@localhost")
    })
    .await
    .expect("the UA binds");
    assert_eq!(bob.register(300).await.expect("bob registers").status, 200);

    let dir = tempfile::tempdir().expect("tempdir");
    let body = "hello from sipsak -f";
    let file = message_file(dir.path(), from, "sip:bob@localhost", body);
    let mut args = vec![
        "-vv".to_owned(),
        "-f".to_owned(),
        file.display().to_string(),
        "-s".to_owned(),
        format!("sip:bob@localhost:{}", addr.port()),
    ];
    if let Some(password) = password {
        args.extend([
            "--auth-username=alice".to_owned(),
            "-a".to_owned(),
            password.to_owned(),
        ]);
    }
    let out = tokio::task::spawn_blocking({
        let args = args.clone();
        move || sipsak(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .expect("sipsak thread");
    let shown = show(&args.iter().map(String::as_str).collect::<Vec<_>>(), &out);
    assert!(
        out.status.success(),
        "{shown}\nserver:\n{}",
        server.stderr()
    );
    assert!(shown.contains("SIP/2.0 200 OK"), "{shown}");
    let got = bob
        .next_incoming_of("MESSAGE", WAIT)
        .await
        .expect("bob receives the MESSAGE");
    assert_eq!(got.body(), body.as_bytes());
}

/// From a user of another domain: no authentication is asked, the proxy delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs sipsak from Debian's packages: scripts/interop-sipsak.sh"]
async fn sipsak_message_from_a_file_is_delivered() {
    message_reaches_bob("sip:guest@example.com", None).await;
}

/// From alice@localhost, a local user: the proxy asks for authentication (407) and sipsak
/// answers it with alice's password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs sipsak from Debian's packages: scripts/interop-sipsak.sh"]
async fn sipsak_authenticated_message_from_a_file_is_delivered() {
    message_reaches_bob("sip:alice@localhost", Some("alice-secret-1")).await;
}
