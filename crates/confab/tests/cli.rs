//! Runs the built `confab` binary the way an operator or a script does.

use std::process::{Command, Output};

/// `confab` with `args`, isolated from any CONFAB_* variables of the caller's shell.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab"));
    cmd.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CONFAB_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Runs `confab` with `args` to completion.
fn confab(args: &[&str]) -> Output {
    command(args).output().expect("the confab binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn help_exits_zero_and_describes_confab() {
    for flag in ["--help", "-h"] {
        let out = confab(&[flag]);
        assert!(out.status.success(), "{flag}: {:?}", out.status);
        let text = stdout(&out);
        assert!(text.contains("Confab"), "{flag} output: {text}");
        for option in ["--data-dir", "--store", "--json", "--version"] {
            assert!(text.contains(option), "{flag} lacks {option}: {text}");
        }
    }
}

#[test]
fn help_shows_the_documented_defaults_and_variables() {
    let text = stdout(&confab(&["--help"]));
    assert!(text.contains("./confab-data"), "{text}");
    assert!(text.contains("CONFAB_DATA_DIR"), "{text}");
    assert!(text.contains("CONFAB_STORE"), "{text}");
}

#[test]
fn help_never_shows_the_store_url() {
    // A store URL may carry a password.
    let out = Command::new(env!("CARGO_BIN_EXE_confab"))
        .arg("--help")
        .env("CONFAB_STORE", "postgres://confab:hunter2@db/confab")
        .output()
        .expect("the confab binary runs");
    assert!(out.status.success());
    assert!(!stdout(&out).contains("hunter2"), "{}", stdout(&out));
}

#[test]
fn version_exits_zero_with_the_crate_version() {
    let out = confab(&["--version"]);
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(
        stdout(&out).trim(),
        concat!("confab ", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn no_command_shows_usage_and_is_not_a_silent_success() {
    let out = confab(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("Usage"), "{err}");
    for command in ["serve", "user", "domain", "tls"] {
        assert!(err.contains(command), "usage lacks {command}: {err}");
    }
}

#[test]
fn serve_help_documents_every_setting_with_its_variable() {
    let out = confab(&["serve", "--help"]);
    assert!(out.status.success(), "{:?}", out.status);
    let text = stdout(&out);
    for key in [
        "config",
        "data-dir",
        "store",
        "pool",
        "domain",
        "listen",
        "admin-listen",
        "tls-cert",
        "tls-key",
        "log-level",
        "max-connections",
        "max-message-size",
        "idle-timeout",
        "header-timeout",
        "max-transactions",
        "t1",
        "t2",
        "t4",
        "force-rport",
    ] {
        assert!(text.contains(&format!("--{key}")), "lacks --{key}: {text}");
        let var = format!("CONFAB_{}", key.replace('-', "_").to_uppercase());
        assert!(text.contains(&var), "lacks {var}: {text}");
    }
    for default in [
        "udp://127.0.0.1:5060",
        "tcp://127.0.0.1:5060",
        "127.0.0.1:8480",
    ] {
        assert!(text.contains(default), "lacks {default}: {text}");
    }
}

#[test]
fn bad_serve_settings_exit_2_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8 path");
    for (args, env, expected) in [
        (
            vec!["--listen", "udp:/127.0.0.1:5060"],
            None,
            "udp://0.0.0.0:5060",
        ),
        (vec!["--max-connections", "0"], None, "1 to 1000000"),
        (vec!["--t1", "0ms"], None, "T1 must be greater than zero"),
        (
            vec![],
            Some(("CONFAB_T2", "100ms")),
            "T2 must be at least T1",
        ),
        (
            vec![],
            Some(("CONFAB_IDLE_TIMEOUT", "forever")),
            "CONFAB_IDLE_TIMEOUT",
        ),
        (
            vec!["--listen", "tls://127.0.0.1:0"],
            None,
            "confab tls generate",
        ),
        (
            vec!["--config", "/nonexistent/confab.toml"],
            None,
            "cannot read config file",
        ),
    ] {
        let mut cmd = command(&["serve", "--data-dir", data]);
        cmd.args(&args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("the confab binary runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            stdout(&out).is_empty(),
            "nothing listened: {}",
            stdout(&out)
        );
    }
}

#[test]
fn tls_generate_writes_a_pair_and_keeps_existing_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let (c, k) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let out = confab(&[
        "tls",
        "generate",
        "--cert",
        c,
        "--key",
        k,
        "--name",
        "sip.example",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("sip.example"), "{}", stdout(&out));
    let pem = std::fs::read_to_string(&cert).expect("cert written");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let key_pem = std::fs::read_to_string(&key).expect("key written");
    assert!(key_pem.contains("PRIVATE KEY"), "key PEM");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is private: {mode:o}");
    }

    let again = confab(&["tls", "generate", "--cert", c, "--key", k]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(&cert).expect("cert"), pem, "kept");
    let forced = confab(&["tls", "generate", "--cert", c, "--key", k, "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
}

#[test]
fn unknown_option_is_a_usage_error() {
    let out = confab(&["--no-such-option"]);
    assert_eq!(out.status.code(), Some(2));
}
