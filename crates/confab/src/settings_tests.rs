//! Tests of [`super::resolve`]: precedence, file handling and the errors an operator sees.

use super::*;

fn serve_args() -> ServeArgs {
    ServeArgs {
        config: None,
        pool: None,
        domain: None,
        digest_algorithms: None,
        presence_unknown_watchers: None,
        listen: Vec::new(),
        admin_listen: None,
        admin_tls: None,
        tls_cert: None,
        tls_key: None,
        log_level: None,
        backup_interval: None,
        backup_dir: None,
        backup_keep: None,
        max_connections: None,
        max_message_size: None,
        idle_timeout: None,
        header_timeout: None,
        max_transactions: None,
        t1: None,
        t2: None,
        t4: None,
        force_rport: None,
    }
}

fn deployment() -> DeploymentArgs {
    DeploymentArgs {
        data_dir: None,
        store: None,
        credentials: None,
    }
}

/// Options named in `env` came from the environment, the others from the command line.
fn resolve_with(
    deployment: &DeploymentArgs,
    serve: &ServeArgs,
    env: &[&'static str],
) -> Result<ServeSettings, SettingsError> {
    let env = env.to_vec();
    let origin = move |key: &'static str| {
        if env.contains(&key) {
            Origin::Env(key)
        } else {
            Origin::Flag(key)
        }
    };
    resolve(&Given {
        deployment,
        serve,
        origin: &origin,
    })
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("confab.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn defaults() {
    let s = resolve_with(&deployment(), &serve_args(), &[]).expect("defaults are valid");
    assert_eq!(s.data_dir, PathBuf::from("./confab-data"));
    let listen: Vec<String> = s.server.listen.iter().map(ToString::to_string).collect();
    assert_eq!(listen, DEFAULT_LISTEN);
    assert_eq!(s.admin_listen.to_string(), "127.0.0.1:8480");
    assert_eq!(s.log_level, "info");
    assert_eq!(s.domain, "localhost");
    assert_eq!(s.server.limits, Limits::default());
    assert_eq!(s.server.limits.max_transactions, 800_000);
    assert_eq!(s.server.timers, TimerConfig::RFC3261);
    assert!(!s.server.force_rport);
    assert_eq!(s.origin("listen"), Origin::Default);
}

#[test]
fn option_beats_file_beats_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        r#"
            data_dir = "data"
            listen = ["udp://127.0.0.1:5070"]
            max_connections = 10
            idle_timeout = 60
            header_timeout = "1500ms"
            force_rport = true
            log_level = "debug"
            pool = "pool-a"
            t1 = "250ms"
            t4 = 10
            max_transactions = "5_000"
        "#,
    );
    let mut serve = serve_args();
    serve.config = Some(config.clone());
    serve.max_connections = Some("20".into());
    let s = resolve_with(&deployment(), &serve, &["max_connections"]).expect("valid");
    // From the file, relative to its directory.
    assert_eq!(s.data_dir, dir.path().join("data"));
    assert_eq!(s.server.listen[0].to_string(), "udp://127.0.0.1:5070");
    assert_eq!(s.server.limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(s.server.limits.header_timeout, Duration::from_millis(1500));
    assert!(s.server.force_rport);
    assert_eq!(s.log_level, "debug");
    assert_eq!(s.pool.as_deref(), Some("pool-a"));
    assert_eq!(s.server.timers.t1(), Duration::from_millis(250));
    assert_eq!(s.server.timers.t2(), Duration::from_secs(4), "the default");
    assert_eq!(s.server.timers.t4(), Duration::from_secs(10));
    assert_eq!(s.server.limits.max_transactions, 5_000);
    assert_eq!(s.origin("listen"), Origin::File(config, "listen"));
    // From the environment, over the file.
    assert_eq!(s.server.limits.max_connections, 20);
    assert_eq!(s.origin("max_connections"), Origin::Env("max_connections"));
    // From the defaults.
    assert_eq!(s.server.limits.max_message_size, 65_535);

    serve.listen = vec!["tcp://127.0.0.1:0".into()];
    let s = resolve_with(&deployment(), &serve, &[]).expect("valid");
    assert_eq!(s.server.listen.len(), 1);
    assert_eq!(s.server.listen[0].to_string(), "tcp://127.0.0.1:0");
    assert_eq!(s.origin("listen"), Origin::Flag("listen"));
}

#[test]
fn bad_values_name_their_origin_and_the_fix() {
    type Case = (fn(&mut ServeArgs), &'static [&'static str]);
    let cases: &[Case] = &[
        (
            |s| s.max_connections = Some("many".into()),
            &[
                "max_connections",
                "'many'",
                "--max-connections",
                "whole number",
            ],
        ),
        (
            |s| s.idle_timeout = Some("5 parsecs".into()),
            &["idle_timeout", "--idle-timeout", "500ms, 10s"],
        ),
        (
            |s| s.header_timeout = Some("1ms".into()),
            &["header_timeout", "100ms to 1h", "--header-timeout"],
        ),
        (
            |s| s.listen = vec!["udp:/127.0.0.1".into()],
            &["udp:/127.0.0.1", "udp://0.0.0.0:5060", "--listen"],
        ),
        (
            |s| s.listen = vec!["tls://127.0.0.1:5061".into()],
            &["tls_cert", "confab tls generate"],
        ),
        (
            |s| s.tls_cert = Some("cert.pem".into()),
            &["tls_cert is set", "tls_key is not"],
        ),
        (
            |s| s.admin_listen = Some("everywhere".into()),
            &["admin_listen", "127.0.0.1:8480"],
        ),
        (
            |s| s.force_rport = Some("perhaps".into()),
            &["true or false"],
        ),
        (
            |s| s.admin_tls = Some("true".into()),
            &["admin_tls", "--admin-tls", "tls_cert", "tls_key"],
        ),
        (|s| s.pool = Some("no spaces".into()), &["pool name"]),
        (
            |s| s.max_transactions = Some("0".into()),
            &["max_transactions", "1 to 10000000", "--max-transactions"],
        ),
        (
            |s| s.t1 = Some("0ms".into()),
            &[
                "invalid t1",
                "--t1",
                "T1 must be greater than zero",
                "500ms",
            ],
        ),
        (
            |s| s.t2 = Some("100ms".into()),
            &[
                "invalid t2 '100ms'",
                "--t2",
                "T2 must be at least T1",
                "t1 = 500ms",
            ],
        ),
        // T1 raised over the default T2: T1 is the one to blame.
        (
            |s| s.t1 = Some("5s".into()),
            &["invalid t1 '5000ms'", "--t1", "T2 must be at least T1"],
        ),
        (
            |s| s.t4 = Some("2h".into()),
            &["invalid t4", "--t4", "at most one hour"],
        ),
        (|s| s.t4 = Some("soon".into()), &["t4", "500ms, 10s"]),
        (
            |s| s.log_level = Some("loud".into()),
            &["log_level", "debug"],
        ),
    ];
    for (set, expected) in cases {
        let mut serve = serve_args();
        set(&mut serve);
        let e = resolve_with(&deployment(), &serve, &[])
            .expect_err("invalid")
            .to_string();
        for part in *expected {
            assert!(e.contains(part), "{e:?} lacks {part:?}");
        }
    }
}

#[test]
fn the_domain_of_a_first_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut serve = serve_args();
    serve.config = Some(write_config(dir.path(), "domain = \"Sip.Example.COM\"\n"));
    let s = resolve_with(&deployment(), &serve, &[]).expect("valid");
    assert_eq!(s.domain, "sip.example.com", "kept in lower case");
    assert!(matches!(s.origin("domain"), Origin::File(_, "domain")));

    serve.domain = Some("example.org".into());
    let s = resolve_with(&deployment(), &serve, &["domain"]).expect("valid");
    assert_eq!(s.domain, "example.org", "the variable beats the file");
    assert_eq!(s.origin("domain"), Origin::Env("domain"));

    serve.domain = Some("not a domain".into());
    let e = resolve_with(&deployment(), &serve, &[])
        .expect_err("spaces")
        .to_string();
    assert!(e.contains("--domain") && e.contains("example.com"), "{e}");
}

#[test]
fn the_store_url_is_checked_without_echoing_it() {
    let mut d = deployment();
    d.store = Some("mysql://root:hunter2@db/confab".into());
    let e = resolve_with(&d, &serve_args(), &["store"])
        .expect_err("not a supported store")
        .to_string();
    assert!(
        e.contains("CONFAB_STORE") && e.contains("postgres://"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
    d.store = Some("postgres://confab@db/confab".into());
    assert!(resolve_with(&d, &serve_args(), &[]).is_ok());
}

#[test]
fn config_file_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut serve = serve_args();
    serve.config = Some(dir.path().join("missing.toml"));
    let e = resolve_with(&deployment(), &serve, &[])
        .expect_err("missing")
        .to_string();
    assert!(
        e.contains("cannot read config file") && e.contains("--config"),
        "{e}"
    );

    serve.config = Some(write_config(dir.path(), "max_conections = 5\n"));
    let e = resolve_with(&deployment(), &serve, &[])
        .expect_err("typo")
        .to_string();
    assert!(
        e.contains("max_conections") && e.contains("max_connections"),
        "{e}"
    );

    serve.config = Some(write_config(
        dir.path(),
        "listen = \"udp://127.0.0.1:5060\"\n",
    ));
    let e = resolve_with(&deployment(), &serve, &[])
        .expect_err("not a list")
        .to_string();
    assert!(e.contains("listen"), "{e}");

    serve.config = Some(write_config(dir.path(), "max_message_size = 12\n"));
    let e = resolve_with(&deployment(), &serve, &[])
        .expect_err("too small")
        .to_string();
    assert!(
        e.contains("max_message_size in") && e.contains("1024"),
        "{e}"
    );
}

#[test]
fn durations() {
    for (text, ms) in [
        ("500ms", 500),
        ("10s", 10_000),
        ("10", 10_000),
        ("5m", 300_000),
        ("1h", 3_600_000),
    ] {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_millis(ms)),
            "{text}"
        );
    }
    for text in ["", "s", "-1s", "1.5s", "1d", "99999999999999999999h"] {
        assert!(parse_duration(text).is_err(), "{text}");
    }
}

#[test]
fn scheduled_backups_are_off_unless_an_interval_is_given() {
    let origin = |key| Origin::Flag(key);
    let deployment = deployment();
    let mut serve = serve_args();
    let given = Given {
        deployment: &deployment,
        serve: &serve,
        origin: &origin,
    };
    assert_eq!(resolve(&given).expect("settings").backups, None);
    serve.backup_interval = Some("1h".into());
    serve.backup_keep = Some("3".into());
    let given = Given {
        deployment: &deployment,
        serve: &serve,
        origin: &origin,
    };
    let schedule = resolve(&given).expect("settings").backups.expect("on");
    assert_eq!(schedule.every, std::time::Duration::from_secs(3600));
    assert_eq!(schedule.keep, 3);
    assert!(schedule.dir.ends_with("backups"));
    for (interval, keep, says) in [("0s", "3", "at least 1s"), ("1h", "0", "keep at least 1")] {
        serve.backup_interval = Some(interval.into());
        serve.backup_keep = Some(keep.into());
        let given = Given {
            deployment: &deployment,
            serve: &serve,
            origin: &origin,
        };
        let e = resolve(&given).expect_err("refused").to_string();
        assert!(e.contains(says), "{e}");
    }
}
