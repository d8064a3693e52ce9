//! Users and credentials.

use std::time::Duration;

use confab_store::{
    Address, ChangeKind, Credential, NewOfflineMessage, NewUser, Pool, PoolKind, Registration,
    StoreError, UserFilter,
};

use super::{add, addr, cred, Fixture};

pub async fn users_add_and_find(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    let alice = store
        .add_user(&NewUser {
            address: addr("alice@Example.COM"),
            display_name: Some("Alice Liddell".into()),
            pool: "default".into(),
            enabled: true,
        })
        .await
        .expect("add");
    assert_eq!(alice.address.to_string(), "alice@example.com");
    assert!(alice.created_at > 0 && alice.updated_at == alice.created_at);

    // The domain matches in any case; the user part exactly.
    let found = store
        .get_user(&addr("alice@EXAMPLE.com"))
        .await
        .expect("get");
    assert_eq!(found, alice);
    let dup = store
        .add_user(&NewUser {
            address: addr("alice@example.COM"),
            display_name: None,
            pool: "default".into(),
            enabled: false,
        })
        .await;
    assert!(
        matches!(dup, Err(StoreError::AlreadyExists { .. })),
        "{dup:?}"
    );
    add(&store, "Alice@example.com").await;
    assert_ne!(
        store
            .get_user(&addr("Alice@example.com"))
            .await
            .map(|u| u.id)
            .ok(),
        Some(alice.id)
    );

    // Unknown user, domain and pool each say what is missing.
    assert!(store
        .find_user(&addr("nobody@example.com"))
        .await
        .expect("find")
        .is_none());
    let missing = store.get_user(&addr("nobody@example.com")).await;
    assert!(matches!(
        missing,
        Err(StoreError::NotFound { what: "user", .. })
    ));
    let no_domain = store
        .add_user(&NewUser {
            address: addr("eve@elsewhere.example"),
            display_name: None,
            pool: "default".into(),
            enabled: true,
        })
        .await;
    assert!(matches!(
        no_domain,
        Err(StoreError::NotFound {
            what: "SIP domain",
            ..
        })
    ));
    let no_pool = store
        .add_user(&NewUser {
            address: addr("eve@example.com"),
            display_name: None,
            pool: "nowhere".into(),
            enabled: true,
        })
        .await;
    assert!(matches!(
        no_pool,
        Err(StoreError::NotFound { what: "pool", .. })
    ));

    // Addresses are checked before anything is written.
    for bad in [
        "alice",
        "@example.com",
        "alice@",
        "a b@example.com",
        "alice@exa mple.com",
    ] {
        assert!(Address::parse(bad).is_err(), "{bad}");
    }
    let err = Address::parse("alice")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("USER@DOMAIN"), "{err}");
}

pub async fn users_list_filters(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    store.add_domain("b.example").await.expect("domain");
    let pool = Pool {
        name: "pool2".into(),
        kind: PoolKind::Confab,
        site: None,
        next_hop: None,
        servers: Vec::new(),
        pair: None,
    };
    store.add_pool(&pool).await.expect("pool");
    for (address, pool) in [
        ("zed@example.com", "default"),
        ("amy@example.com", "pool2"),
        ("bob@b.example", "default"),
        ("cat@b.example", "pool2"),
    ] {
        store
            .add_user(&NewUser {
                address: addr(address),
                display_name: None,
                pool: pool.into(),
                enabled: true,
            })
            .await
            .expect("add");
    }
    let list = |pool: Option<&str>, domain: Option<&str>| {
        let filter = UserFilter {
            pool: pool.map(Into::into),
            domain: domain.map(Into::into),
        };
        let store = store.clone();
        async move {
            store
                .list_users(&filter)
                .await
                .expect("list")
                .into_iter()
                .map(|u| u.address.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(None, None).await,
        [
            "bob@b.example",
            "cat@b.example",
            "amy@example.com",
            "zed@example.com"
        ]
    );
    assert_eq!(
        list(Some("pool2"), None).await,
        ["cat@b.example", "amy@example.com"]
    );
    assert_eq!(
        list(None, Some("B.Example")).await,
        ["bob@b.example", "cat@b.example"]
    );
    assert_eq!(
        list(Some("default"), Some("example.com")).await,
        ["zed@example.com"]
    );
    assert!(list(Some("nowhere"), None).await.is_empty());
}

pub async fn users_enable_disable(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "dave@example.com").await;
    let dave = addr("dave@example.com");
    assert_eq!(store.set_enabled(&dave, true).await.ok(), Some(false));
    assert_eq!(store.set_enabled(&dave, false).await.ok(), Some(true));
    assert_eq!(
        store.get_user(&dave).await.map(|u| u.enabled).ok(),
        Some(false)
    );
    assert_eq!(store.set_enabled(&dave, false).await.ok(), Some(false));
    assert_eq!(store.set_enabled(&dave, true).await.ok(), Some(true));
    assert_eq!(
        store.get_user(&dave).await.map(|u| u.enabled).ok(),
        Some(true)
    );
    assert!(matches!(
        store.set_enabled(&addr("ghost@example.com"), false).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn users_remove_cascades(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "erin@example.com").await;
    add(&store, "frank@example.com").await;
    let erin = addr("erin@example.com");
    let frank = addr("frank@example.com");
    for who in [&erin, &frank] {
        store
            .set_credentials(who, &[cred("example.com", "MD5", 'a')])
            .await
            .expect("credentials");
        store
            .upsert_registration(&registration(who, "sip:x@127.0.0.1:5062", 2_000))
            .await
            .expect("reg");
        store
            .store_offline_message(
                &NewOfflineMessage {
                    to_user: who.clone(),
                    from_uri: "sip:frank@example.com".into(),
                    content_type: "text/plain".into(),
                    body: b"hello".to_vec(),
                    received_at: 1_000,
                },
                10,
                Duration::from_secs(3600),
            )
            .await
            .expect("offline");
    }
    store.remove_user(&erin).await.expect("remove");
    assert!(store.find_user(&erin).await.expect("find").is_none());
    assert!(store
        .credentials(&erin, "example.com")
        .await
        .expect("creds")
        .is_empty());
    assert!(store
        .registrations_of(&erin)
        .await
        .expect("regs")
        .is_empty());
    assert_eq!(store.offline_message_count(&erin).await.ok(), Some(0));
    assert!(matches!(
        store.remove_user(&erin).await,
        Err(StoreError::NotFound { .. })
    ));
    // Nothing of erin's is left behind in the tables, and frank keeps everything.
    assert_eq!(
        store.all_registrations().await.map(|r| r.len()).ok(),
        Some(1)
    );
    assert_eq!(
        store
            .credentials(&frank, "example.com")
            .await
            .map(|c| c.len())
            .ok(),
        Some(1)
    );
    assert_eq!(store.offline_message_count(&frank).await.ok(), Some(1));
    // A new user at the same address starts empty.
    add(&store, "erin@example.com").await;
    assert!(store
        .credentials(&erin, "example.com")
        .await
        .expect("creds")
        .is_empty());
    assert!(store
        .registrations_of(&erin)
        .await
        .expect("regs")
        .is_empty());
    assert_eq!(store.offline_message_count(&erin).await.ok(), Some(0));
}

pub async fn users_add_with_credentials(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    let hana = addr("hana@example.com");
    let new = NewUser {
        address: hana.clone(),
        display_name: None,
        pool: "default".into(),
        enabled: true,
    };
    let md5 = cred("example.com", "MD5", 'd');
    // All or nothing: bad credentials leave no user behind.
    let dup = store
        .add_user_with_credentials(&new, &[md5.clone(), md5.clone()])
        .await;
    assert!(matches!(dup, Err(StoreError::Invalid { .. })), "{dup:?}");
    assert!(store.find_user(&hana).await.expect("find").is_none());
    store
        .add_user_with_credentials(&new, &[md5])
        .await
        .expect("added with credentials");
    let got = store.credentials(&hana, "example.com").await.expect("get");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].algorithm, "MD5");
}

pub async fn credentials_replace(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "gina@example.com").await;
    let gina = addr("gina@example.com");
    let md5 = cred("example.com", "MD5", 'A');
    let sha = cred("example.com", "SHA-256", 'b');
    let other = cred("other.realm", "MD5", 'c');
    store
        .set_credentials(&gina, &[sha.clone(), md5.clone(), other.clone()])
        .await
        .expect("set");
    let got = store.credentials(&gina, "example.com").await.expect("get");
    assert_eq!(
        got.iter().map(|c| c.algorithm.as_str()).collect::<Vec<_>>(),
        ["MD5", "SHA-256"]
    );
    assert_eq!(got[0].ha1, "a".repeat(32), "HA1 kept in lower case");
    assert_eq!(
        store
            .credentials(&gina, "other.realm")
            .await
            .map(|c| c.len())
            .ok(),
        Some(1)
    );

    // Replace is all or nothing: a bad list changes nothing.
    let dup = store
        .set_credentials(&gina, &[sha.clone(), sha.clone()])
        .await;
    assert!(matches!(dup, Err(StoreError::Invalid { .. })), "{dup:?}");
    let mut not_hex = md5.clone();
    not_hex.ha1 = "zz".repeat(16);
    let err = store
        .set_credentials(&gina, &[not_hex])
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("hexadecimal") && !e.contains("zz")),
        "{err:?}"
    );
    assert_eq!(
        store
            .credentials(&gina, "example.com")
            .await
            .map(|c| c.len())
            .ok(),
        Some(2)
    );

    store
        .set_credentials(&gina, std::slice::from_ref(&sha))
        .await
        .expect("replace");
    assert_eq!(
        store.credentials(&gina, "example.com").await.ok(),
        Some(vec![sha])
    );
    assert!(store
        .credentials(&gina, "other.realm")
        .await
        .expect("get")
        .is_empty());
    store.set_credentials(&gina, &[]).await.expect("clear");
    assert!(store
        .credentials(&gina, "example.com")
        .await
        .expect("get")
        .is_empty());

    // An unknown user: an error to set, and the same empty answer as "no credentials" to read.
    let ghost = addr("ghost@example.com");
    assert!(matches!(
        store.set_credentials(&ghost, &[md5]).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store
        .credentials(&ghost, "example.com")
        .await
        .expect("get")
        .is_empty());
    // The HA1 never shows in debug output.
    assert!(!format!("{:?}", cred("r", "MD5", 'f')).contains("ffff"));
}

/// A registration of `user` at `contact` expiring at `expires_at`.
pub fn registration(user: &Address, contact: &str, expires_at: i64) -> Registration {
    Registration {
        user: user.clone(),
        contact: contact.into(),
        instance_id: None,
        q: 1000,
        expires_at,
        call_id: "call-1@client".into(),
        cseq: 1,
        path: None,
        source: Some("127.0.0.1:5062".into()),
        transport: "udp".into(),
        updated_at: 1_000,
    }
}

pub async fn users_add_many_and_remove_many(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    store.add_domain("b.example").await.expect("domain");
    let new = |address: &str| NewUser {
        address: addr(address),
        display_name: Some(format!("Name of {address}")),
        pool: "default".into(),
        enabled: true,
    };
    // More rows than one multi-row INSERT holds, across two domains.
    let batch: Vec<(NewUser, Vec<Credential>)> = (0..600)
        .map(|i| {
            let domain = if i % 2 == 0 {
                "example.com"
            } else {
                "b.example"
            };
            let user = new(&format!("u{i}@{domain}"));
            let fill = if i == 599 { 'f' } else { 'a' };
            let credentials = vec![cred(domain, "MD5", fill), cred(domain, "SHA-256", fill)];
            (user, credentials)
        })
        .collect();
    let head = store.last_change_seq().await.expect("head");
    let added = store.add_users_with_credentials(&batch).await;
    assert_eq!(added.ok(), Some(600));
    let all = store
        .list_users(&UserFilter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 600);
    let last = addr("u599@b.example");
    let got = store.credentials(&last, "b.example").await.expect("creds");
    assert_eq!(
        got,
        vec![
            cred("b.example", "MD5", 'f'),
            cred("b.example", "SHA-256", 'f')
        ]
    );
    let user = store.get_user(&last).await.expect("user");
    assert_eq!(user.display_name.as_deref(), Some("Name of u599@b.example"));
    // The feed says what adding them one by one would, in order, without gaps.
    let feed = store.changes_since(head, 2000).await.expect("feed");
    assert_eq!(feed.len(), 1200);
    for (i, change) in feed.iter().enumerate() {
        assert_eq!(change.seq, head + 1 + i as i64);
        let want = if i % 2 == 0 {
            ChangeKind::UserAdded
        } else {
            ChangeKind::CredentialsSet
        };
        assert_eq!(change.kind, want);
    }
    assert_eq!(feed[1199].subject, "u599@b.example");

    // All or nothing: one address taken, or one unknown domain, and no user is added.
    let head = store.last_change_seq().await.expect("head");
    let mut taken = vec![(new("fresh@example.com"), vec![])];
    taken.push((new("u10@example.com"), vec![]));
    match store.add_users_with_credentials(&taken).await {
        Err(StoreError::AlreadyExists { name, .. }) => assert_eq!(name, "u10@example.com"),
        other => panic!("{other:?}"),
    }
    let unknown = vec![
        (new("fresh@example.com"), vec![]),
        (new("x@nowhere.example"), vec![]),
    ];
    assert!(matches!(
        store.add_users_with_credentials(&unknown).await,
        Err(StoreError::NotFound {
            what: "SIP domain",
            ..
        })
    ));
    assert!(store
        .find_user(&addr("fresh@example.com"))
        .await
        .expect("find")
        .is_none());
    assert_eq!(store.last_change_seq().await.expect("head"), head);

    // Removing many: all or nothing too.
    let some: Vec<Address> = (0..10).map(|i| all[i].address.clone()).collect();
    let mut with_unknown = some.clone();
    with_unknown.push(addr("nobody@example.com"));
    assert!(matches!(
        store.remove_users(&with_unknown).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.last_change_seq().await.expect("head"), head);
    store.remove_users(&some).await.expect("removed");
    let left = store
        .list_users(&UserFilter::default())
        .await
        .expect("list");
    assert_eq!(left.len(), 590);
    assert!(store
        .credentials(&some[0], some[0].domain())
        .await
        .expect("creds")
        .is_empty());
    assert_eq!(store.last_change_seq().await.expect("head"), head + 10);
}

/// The directory a front-end reads at start: every user with its credentials, read in pages,
/// whatever the page size; one user alone; a removed user gone.
pub async fn directory_snapshot_in_pages(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    let batch: Vec<(NewUser, Vec<Credential>)> = (0..7)
        .map(|i| {
            let user = NewUser {
                address: addr(&format!("d{i}@example.com")),
                display_name: None,
                pool: "default".into(),
                enabled: i != 3,
            };
            let creds = if i == 5 {
                Vec::new()
            } else {
                vec![
                    cred("example.com", "MD5", 'a'),
                    cred("example.com", "SHA-256", 'b'),
                ]
            };
            (user, creds)
        })
        .collect();
    store
        .add_users_with_credentials(&batch)
        .await
        .expect("added");
    let whole = store.directory_snapshot().await.expect("snapshot");
    for page in [1, 2, 3, 7, 100] {
        let paged = store
            .directory_snapshot_paged(page)
            .await
            .expect("paged snapshot");
        assert_eq!(paged, whole, "page size {page}");
    }
    assert_eq!(whole.len(), 7);
    let d3 = whole
        .iter()
        .find(|e| e.address.to_string() == "d3@example.com")
        .expect("d3");
    assert!(!d3.enabled);
    assert_eq!(d3.credentials.len(), 2);
    assert_eq!(d3.pool, "default");
    let d5 = store
        .directory_entry(&addr("d5@example.com"))
        .await
        .expect("read")
        .expect("d5");
    assert!(d5.credentials.is_empty());
    store
        .remove_user(&addr("d0@example.com"))
        .await
        .expect("removed");
    assert!(store
        .directory_entry(&addr("d0@example.com"))
        .await
        .expect("read")
        .is_none());
    assert_eq!(store.directory_snapshot().await.expect("snapshot").len(), 6);
}

pub async fn users_move_drains_and_keeps_user_data(fx: &Fixture) {
    use confab_store::{PresenceLevel, PresenceWrites, StoredPublication, Watcher};
    let store = fx.open_with_defaults().await;
    store
        .add_pool(&Pool {
            name: "pool2".into(),
            kind: PoolKind::Confab,
            site: None,
            next_hop: None,
            servers: Vec::new(),
            pair: None,
        })
        .await
        .expect("pool");
    add(&store, "alice@example.com").await;
    add(&store, "bob@example.com").await;
    let (alice, bob) = (addr("alice@example.com"), addr("bob@example.com"));
    store
        .upsert_registration(&registration(&alice, "sip:alice@10.0.0.1", 2_000_000_000))
        .await
        .expect("registration");
    store
        .store_offline_message(
            &NewOfflineMessage {
                to_user: alice.clone(),
                from_uri: "sip:bob@example.com".into(),
                content_type: "text/plain".into(),
                body: b"while you move".to_vec(),
                received_at: 1_900_000_000,
            },
            10,
            Duration::from_secs(u32::MAX.into()),
        )
        .await
        .expect("offline message");
    store
        .set_presence_rule(
            &alice,
            &Watcher::parse("bob@example.com").expect("watcher"),
            PresenceLevel::Workgroup,
        )
        .await
        .expect("rule");
    let publication = |user: &Address| StoredPublication {
        user: user.clone(),
        etag: "e1".into(),
        expires_at: 2_000_000_000,
        content_type: "application/pidf+xml".into(),
        body: b"<presence/>".to_vec(),
    };
    store
        .write_presence(&PresenceWrites {
            publications: vec![publication(&alice), publication(&bob)],
            ..PresenceWrites::default()
        })
        .await
        .expect("presence");
    let before = store.last_change_seq().await.expect("seq");

    // An unknown pool, or an unknown user in the batch: nothing moves.
    assert!(matches!(
        store
            .move_users(std::slice::from_ref(&alice), "nowhere")
            .await,
        Err(StoreError::NotFound { what: "pool", .. })
    ));
    assert!(matches!(
        store
            .move_users(&[alice.clone(), addr("ghost@example.com")], "pool2")
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.get_user(&alice).await.expect("alice").pool, "default");
    assert_eq!(store.last_change_seq().await.expect("seq"), before);

    let moved = store
        .move_users(&[alice.clone(), bob.clone()], "pool2")
        .await
        .expect("moved");
    assert_eq!(moved.len(), 2);
    assert_eq!(moved[0].address, alice);
    assert_eq!(moved[0].from, "default");
    for who in [&alice, &bob] {
        assert_eq!(store.get_user(who).await.expect("user").pool, "pool2");
    }
    // Drained: the old pool's registrations and presence state.
    assert!(store.registrations_of(&alice).await.expect("of").is_empty());
    let state = store.presence_state().await.expect("state");
    assert!(state.publications.is_empty(), "{:?}", state.publications);
    // Carried: what is the user's.
    assert_eq!(store.offline_message_count(&alice).await.expect("count"), 1);
    assert_eq!(store.presence_rules(&alice).await.expect("rules").len(), 1);
    let changes = store.changes_since(before, 10).await.expect("feed");
    let kinds: Vec<_> = changes
        .iter()
        .map(|c| (c.kind.clone(), c.subject.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (ChangeKind::UserMoved, "alice@example.com".into()),
            (ChangeKind::UserMoved, "bob@example.com".into()),
        ]
    );
    // Again (a rerun after a crash): nothing left to do, nothing recorded.
    assert!(store
        .move_users(std::slice::from_ref(&alice), "pool2")
        .await
        .expect("again")
        .is_empty());
    assert_eq!(
        store.last_change_seq().await.expect("seq"),
        before + 2,
        "no entry for a user already there"
    );
}
