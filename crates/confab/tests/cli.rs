//! Runs the built `confab` binary the way an operator or a script does.

use std::process::{Command, Output};

/// Runs `confab` with `args`, isolated from any CONFAB_* variables of the caller's shell.
fn confab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(args)
        .env_remove("CONFAB_DATA_DIR")
        .env_remove("CONFAB_STORE")
        .output()
        .expect("the confab binary runs")
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
fn no_command_is_a_usage_error_not_a_silent_success() {
    let out = confab(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no command"), "{err}");
}

#[test]
fn unknown_option_is_a_usage_error() {
    let out = confab(&["--no-such-option"]);
    assert_eq!(out.status.code(), Some(2));
}
