//! The operations against a real SQLite store in a temporary directory: what they change,
//! and that every refusal changes nothing (the change feed's head stays where it was).

use confab_store::{Address, Registration, Store, StoreLocation, UserFilter};
use confab_ua::credentials::{ha1, Algorithm};

use crate::control::{self, ChangeContext, Operator, Right};
use crate::users::{self, NewAccount};
use crate::{topology, OpsError, Password};
use confab_store::ChangeClass;

struct Fixture {
    store: Store,
    operator: Operator,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// A standard change managing users, by the first administrator.
    fn users(&self) -> ChangeContext<'_> {
        control::authorize(&self.operator, Right::ManageUsers, ChangeClass::Standard)
            .expect("the first administrator manages users")
    }

    /// A standard change of the topology, by the first administrator.
    fn topo(&self) -> ChangeContext<'_> {
        control::authorize(&self.operator, Right::ManageTopology, ChangeClass::Standard)
            .expect("the first administrator changes the topology")
    }
}

/// A fresh store with the defaults of a first start: domain `localhost`, pool `default`.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&StoreLocation::in_data_dir(dir.path()))
        .await
        .expect("store opens");
    let created = topology::ensure_defaults(&store, "localhost")
        .await
        .expect("defaults");
    assert_eq!(created.domain.as_deref(), Some("localhost"));
    assert_eq!(created.pool.as_deref(), Some("default"));
    let token = control::bootstrap(&store)
        .await
        .expect("bootstrap")
        .expect("a first administrator");
    let operator = control::sign_in(&store, control::FIRST_ADMINISTRATOR, &token, "test")
        .await
        .expect("signed in");
    Fixture {
        store,
        operator,
        _dir: dir,
    }
}

fn addr(text: &str) -> Address {
    Address::parse(text).expect("test address")
}

fn password(text: &str) -> Password {
    Password::new(text.to_owned()).expect("usable password")
}

fn account(address: &str, secret: &str) -> NewAccount {
    NewAccount {
        address: addr(address),
        pool: None,
        display_name: None,
        password: password(secret),
    }
}

/// Runs `refused`, expects an error, and checks the store did not change.
async fn refused<T: std::fmt::Debug>(
    store: &Store,
    op: impl std::future::Future<Output = Result<T, OpsError>>,
) -> OpsError {
    let head = store.last_change_seq().await.expect("feed head");
    let users = store
        .list_users(&UserFilter::default())
        .await
        .expect("list");
    let error = op.await.expect_err("refused");
    assert_eq!(store.last_change_seq().await.expect("feed head"), head);
    assert_eq!(
        store
            .list_users(&UserFilter::default())
            .await
            .expect("list"),
        users
    );
    error
}

#[tokio::test]
async fn add_stores_ha1_per_algorithm_for_the_domain_realm() {
    let f = fixture().await;
    let added = users::add(
        &f.store,
        &f.users(),
        NewAccount {
            display_name: Some("  Alice Liddell ".into()),
            ..account("alice@LocalHost", "correct horse")
        },
    )
    .await
    .expect("added");
    assert_eq!(added.user.address.to_string(), "alice@localhost");
    assert_eq!(added.user.pool, "default");
    assert_eq!(added.user.display_name.as_deref(), Some("Alice Liddell"));
    assert!(added.user.enabled);

    let stored = f
        .store
        .credentials(&addr("alice@localhost"), "localhost")
        .await
        .expect("credentials");
    let mut algorithms: Vec<&str> = stored.iter().map(|c| c.algorithm.as_str()).collect();
    algorithms.sort_unstable();
    assert_eq!(algorithms, ["MD5", "SHA-256", "SHA-512-256"]);
    for c in &stored {
        let algorithm = Algorithm::parse(&c.algorithm).expect("known algorithm");
        assert_eq!(
            c.ha1,
            ha1(algorithm, "alice", "localhost", "correct horse"),
            "{}",
            c.algorithm
        );
    }
    let mut shown: Vec<&str> = added
        .credentials
        .iter()
        .map(|c| c.algorithm.as_str())
        .collect();
    shown.sort_unstable();
    assert_eq!(shown, ["MD5", "SHA-256", "SHA-512-256"]);
}

#[tokio::test]
async fn add_refusals_change_nothing_and_say_what_to_do() {
    let f = fixture().await;
    users::add(
        &f.store,
        &f.users(),
        account("alice@localhost", "first password"),
    )
    .await
    .expect("added");

    let e = refused(
        &f.store,
        users::add(
            &f.store,
            &f.users(),
            account("bob@example.org", "a password"),
        ),
    )
    .await;
    assert!(matches!(e, OpsError::UnknownDomain { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("`confab domain add example.org`"), "{text}");
    assert!(text.contains("its domains: localhost"), "{text}");

    let e = refused(
        &f.store,
        users::add(
            &f.store,
            &f.users(),
            NewAccount {
                pool: Some("pool-b".into()),
                ..account("bob@localhost", "a password")
            },
        ),
    )
    .await;
    assert!(matches!(e, OpsError::UnknownPool { .. }), "{e:?}");
    assert!(e.to_string().contains("its pools: default"), "{e}");

    let before = f
        .store
        .credentials(&addr("alice@localhost"), "localhost")
        .await
        .expect("credentials");
    let e = refused(
        &f.store,
        users::add(
            &f.store,
            &f.users(),
            account("alice@LOCALHOST", "second password"),
        ),
    )
    .await;
    assert!(matches!(e, OpsError::UserExists { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("`confab user passwd alice@localhost`"),
        "{e}"
    );
    let after = f
        .store
        .credentials(&addr("alice@localhost"), "localhost")
        .await
        .expect("credentials");
    assert_eq!(before, after, "the existing user's credentials are kept");

    let e = refused(
        &f.store,
        users::add(
            &f.store,
            &f.users(),
            NewAccount {
                display_name: Some("   ".into()),
                ..account("carol@localhost", "a password")
            },
        ),
    )
    .await;
    assert!(matches!(e, OpsError::DisplayName { .. }), "{e:?}");

    let e = refused(
        &f.store,
        users::add(
            &f.store,
            &f.users(),
            NewAccount {
                display_name: Some("bad\u{7}bell".into()),
                ..account("carol@localhost", "a password")
            },
        ),
    )
    .await;
    assert!(e.to_string().contains("display name"), "{e}");
}

#[test]
fn password_rules() {
    for (bad, says) in [
        ("", "empty"),
        ("two\nlines", "line break"),
        ("tab\there", "control character"),
    ] {
        let e = Password::new(bad.to_owned()).expect_err(bad);
        assert!(e.to_string().contains(says), "{bad:?}: {e}");
        assert!(bad.is_empty() || !e.to_string().contains(bad), "echoed");
    }
    assert!(Password::new("x".repeat(crate::MAX_LENGTH + 1)).is_err());
    assert!(Password::new("x".repeat(crate::MAX_LENGTH)).is_ok());

    let short = password("secret");
    let warning = short.warning().expect("a warning below 8 characters");
    assert!(warning.contains("6 character"), "{warning}");
    assert_eq!(password("längeres Passwort").warning(), None);
    assert_eq!(password("8 chars!").warning(), None);
    assert_eq!(format!("{short:?}"), "Password(…)");
}

#[tokio::test]
async fn list_filters_by_pool_and_domain() {
    let f = fixture().await;
    topology::add_domain(&f.store, &f.topo(), "Example.COM")
        .await
        .expect("domain");
    for a in ["bob@localhost", "alice@localhost", "carol@example.com"] {
        users::add(&f.store, &f.users(), account(a, "a password"))
            .await
            .expect("added");
    }
    let names = |list: Vec<users::UserSummary>| -> Vec<String> {
        list.into_iter().map(|u| u.address.to_string()).collect()
    };
    let all = users::list(&f.store, &UserFilter::default())
        .await
        .expect("list");
    assert_eq!(
        names(all),
        ["carol@example.com", "alice@localhost", "bob@localhost"]
    );
    let local = users::list(
        &f.store,
        &UserFilter {
            domain: Some("LOCALHOST".into()),
            pool: None,
        },
    )
    .await
    .expect("list");
    assert_eq!(names(local), ["alice@localhost", "bob@localhost"]);
    let pooled = users::list(
        &f.store,
        &UserFilter {
            pool: Some("default".into()),
            domain: Some("example.com".into()),
        },
    )
    .await
    .expect("list");
    assert_eq!(names(pooled), ["carol@example.com"]);

    let e = users::list(
        &f.store,
        &UserFilter {
            pool: Some("defualt".into()),
            domain: None,
        },
    )
    .await
    .expect_err("a typo is not an empty list");
    assert!(matches!(e, OpsError::UnknownPool { .. }), "{e:?}");
    let e = users::list(
        &f.store,
        &UserFilter {
            pool: None,
            domain: Some("example.net".into()),
        },
    )
    .await
    .expect_err("unknown domain");
    assert!(matches!(e, OpsError::UnknownDomain { .. }), "{e:?}");
}

#[tokio::test]
async fn show_counts_active_registrations_and_never_holds_ha1() {
    let f = fixture().await;
    users::add(
        &f.store,
        &f.users(),
        account("alice@localhost", "a password"),
    )
    .await
    .expect("added");
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("time");
    for (contact, expires_at) in [
        ("sip:alice@192.0.2.1:5060", now + 300),
        ("sip:alice@192.0.2.2:5060", now + 60),
        ("sip:alice@192.0.2.3:5060", now - 1),
    ] {
        f.store
            .upsert_registration(&Registration {
                user: addr("alice@localhost"),
                contact: contact.into(),
                instance_id: None,
                q: 1000,
                expires_at,
                call_id: "c".into(),
                cseq: 1,
                path: None,
                source: None,
                transport: "udp".into(),
                updated_at: now,
            })
            .await
            .expect("registration");
    }
    let shown = users::show(&f.store, &addr("alice@localhost"))
        .await
        .expect("shown");
    assert_eq!(shown.registrations, 2, "the expired one is not counted");
    assert_eq!(shown.credentials.len(), 3);
    assert!(shown.credentials.iter().all(|c| c.realm == "localhost"));

    let stored = f
        .store
        .credentials(&addr("alice@localhost"), "localhost")
        .await
        .expect("credentials");
    let json = serde_json::to_string(&shown).expect("json");
    assert!(json.contains("\"address\":\"alice@localhost\""), "{json}");
    assert!(json.contains("\"registrations\":2"), "{json}");
    for c in &stored {
        assert!(!json.contains(&c.ha1), "HA1 shown: {json}");
    }
    assert!(!json.contains("ha1"), "{json}");

    let e = users::show(&f.store, &addr("Alice@localhost"))
        .await
        .expect_err("the user part is exact");
    assert!(matches!(e, OpsError::UnknownUser { .. }), "{e:?}");
    assert!(e.to_string().contains("confab user list"), "{e}");
}

#[tokio::test]
async fn set_password_replaces_the_credentials() {
    let f = fixture().await;
    let alice = addr("alice@localhost");
    users::add(
        &f.store,
        &f.users(),
        account("alice@localhost", "old password"),
    )
    .await
    .expect("added");
    let head = f.store.last_change_seq().await.expect("head");
    users::set_password(&f.store, &f.users(), &alice, &password("new password"))
        .await
        .expect("set");
    assert_eq!(
        f.store.last_change_seq().await.expect("head"),
        head + 1,
        "one transaction, one feed entry"
    );
    let stored = f
        .store
        .credentials(&alice, "localhost")
        .await
        .expect("credentials");
    assert_eq!(stored.len(), 3);
    for c in &stored {
        let algorithm = Algorithm::parse(&c.algorithm).expect("known");
        assert_eq!(c.ha1, ha1(algorithm, "alice", "localhost", "new password"));
    }
    let e = refused(
        &f.store,
        users::set_password(
            &f.store,
            &f.users(),
            &addr("nobody@localhost"),
            &password("whatever"),
        ),
    )
    .await;
    assert!(matches!(e, OpsError::UnknownUser { .. }), "{e:?}");
}

#[tokio::test]
async fn disable_enable_and_remove() {
    let f = fixture().await;
    let alice = addr("alice@localhost");
    users::add(
        &f.store,
        &f.users(),
        account("alice@localhost", "a password"),
    )
    .await
    .expect("added");

    let off = users::set_enabled(&f.store, &f.users(), &alice, false)
        .await
        .expect("disabled");
    assert!(off.changed && !off.enabled);
    assert!(
        !users::show(&f.store, &alice)
            .await
            .expect("show")
            .user
            .enabled
    );
    let again = users::set_enabled(&f.store, &f.users(), &alice, false)
        .await
        .expect("disabled again");
    assert!(!again.changed, "already disabled");
    let on = users::set_enabled(&f.store, &f.users(), &alice, true)
        .await
        .expect("enabled");
    assert!(on.changed && on.enabled);
    assert_eq!(
        users::show(&f.store, &alice)
            .await
            .expect("show")
            .credentials
            .len(),
        3,
        "disabling keeps the credentials"
    );

    users::remove(&f.store, &f.users(), &alice)
        .await
        .expect("removed");
    assert!(f.store.find_user(&alice).await.expect("find").is_none());
    assert!(f
        .store
        .credentials(&alice, "localhost")
        .await
        .expect("credentials")
        .is_empty());
    let e = refused(&f.store, users::remove(&f.store, &f.users(), &alice)).await;
    assert!(matches!(e, OpsError::UnknownUser { .. }), "{e:?}");
    let e = refused(
        &f.store,
        users::set_enabled(&f.store, &f.users(), &alice, true),
    )
    .await;
    assert!(matches!(e, OpsError::UnknownUser { .. }), "{e:?}");
}

#[tokio::test]
async fn domains_and_defaults() {
    let f = fixture().await;
    let again = topology::ensure_defaults(&f.store, "example.com")
        .await
        .expect("defaults");
    assert!(!again.created_any(), "a second start creates nothing");

    let added = topology::add_domain(&f.store, &f.topo(), " Example.COM ")
        .await
        .expect("added");
    assert_eq!(added.name, "example.com");
    let e = refused(
        &f.store,
        topology::add_domain(&f.store, &f.topo(), "example.com"),
    )
    .await;
    assert!(e.to_string().contains("already exists"), "{e}");
    let e = refused(
        &f.store,
        topology::add_domain(&f.store, &f.topo(), "bad domain"),
    )
    .await;
    assert!(e.to_string().contains("example.com"), "the fix: {e}");

    let names: Vec<String> = topology::domains(&f.store)
        .await
        .expect("domains")
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["example.com", "localhost"]);
}

fn import_row(line: u64, address: &str, secret: &str) -> users::ImportRow {
    users::ImportRow {
        line,
        address: address.to_owned(),
        password: secret.to_owned(),
        display_name: None,
    }
}

#[tokio::test]
async fn import_checks_every_row_before_storing_any() {
    let f = fixture().await;
    users::add(
        &f.store,
        &f.users(),
        account("alice@localhost", "first password"),
    )
    .await
    .expect("added");
    let rows = vec![
        import_row(2, "bob@localhost", "bobs password"),
        import_row(3, "alice@localhost", "another password"),
        import_row(4, "bob@LOCALHOST", "again"),
        import_row(5, "carol@nowhere.example", "carols password"),
    ];
    let head = f.store.last_change_seq().await.expect("head");
    let options = users::ImportOptions::default();
    let Err(users::ImportError::Rows(problems)) =
        users::check_import(&f.store, rows.clone(), &options).await
    else {
        panic!("rows refused");
    };
    let lines: Vec<u64> = problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [3, 4, 5], "{problems:?}");
    assert_eq!(f.store.last_change_seq().await.expect("head"), head);

    // With skip_existing, alice's row is left out (and her password kept); the others stay.
    let options = users::ImportOptions {
        skip_existing: true,
        ..options
    };
    let Err(users::ImportError::Rows(problems)) =
        users::check_import(&f.store, rows, &options).await
    else {
        panic!("rows refused");
    };
    let lines: Vec<u64> = problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [4, 5], "{problems:?}");
}

#[tokio::test]
async fn import_failing_half_way_removes_what_it_stored() {
    let f = fixture().await;
    let count = users::IMPORT_BATCH + users::IMPORT_BATCH / 2;
    let rows: Vec<users::ImportRow> = (1..=count)
        .map(|n| {
            import_row(
                n as u64 + 1,
                &format!("u{n}@localhost"),
                "long enough password",
            )
        })
        .collect();
    let plan = users::check_import(&f.store, rows, &users::ImportOptions::default())
        .await
        .expect("every row is good");
    assert_eq!(plan.len(), count);
    // Another administrator adds a user of the second batch between the check and the store.
    let late = format!("u{}@localhost", count - 1);
    users::add(
        &f.store,
        &f.users(),
        account(&late, "someone elses password"),
    )
    .await
    .expect("added");
    let e = users::apply_import(&f.store, &f.users(), plan)
        .await
        .expect_err("refused");
    assert!(
        matches!(&e, users::ImportError::Ops(OpsError::UserExists { address }) if address.to_string() == late),
        "{e:?}"
    );
    let left = f
        .store
        .list_users(&UserFilter::default())
        .await
        .expect("list");
    let left: Vec<String> = left.iter().map(|u| u.address.to_string()).collect();
    assert_eq!(left, [late], "only the other administrator's user");
}

#[tokio::test]
async fn a_backup_is_hashed_the_same_written_and_read() {
    let fx = fixture().await;
    let ctx = control::authorize(&fx.operator, Right::Backup, ChangeClass::Standard)
        .expect("the first administrator takes backups");
    let out = fx._dir.path().join("b.tar.gz");
    let created = crate::backup::create(
        &fx.store,
        crate::backup::TakenBy::Operator(&ctx),
        &out,
        &mut |_| {},
    )
    .await
    .expect("written");
    let loaded = crate::backup::load(&out).expect("read back");
    assert_eq!(loaded.sha256, created.sha256);
    assert_eq!(std::fs::metadata(&out).expect("file").len(), created.bytes);
    assert_eq!(loaded.manifest, created.manifest);
}
