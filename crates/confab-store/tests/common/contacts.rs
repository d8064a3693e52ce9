//! Contact lists and presence rules.

use confab_store::{
    ChangeKind, ContactList, GroupEntries, IfContactExists, NewContact, PresenceLevel, Store,
    StoreError, Watcher,
};

use super::{add, addr, Fixture};

fn contact(address: &str, name: Option<&str>, group: Option<&str>) -> NewContact {
    NewContact {
        address: addr(address),
        display_name: name.map(Into::into),
        group: group.map(Into::into),
    }
}

fn watcher(text: &str) -> Watcher {
    Watcher::parse(text).expect("test watcher")
}

/// `address group` for each entry, in list order.
async fn entries(store: &Store, user: &str) -> Vec<String> {
    store
        .contacts(&addr(user))
        .await
        .expect("contacts")
        .into_iter()
        .map(|c| format!("{} {}", c.address, c.group.as_deref().unwrap_or("-")))
        .collect()
}

async fn snapshot(store: &Store, user: &str) -> ContactList {
    store.contact_list(&addr(user)).await.expect("contact list")
}

pub async fn contacts_add_list_remove(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "alice@example.com").await;
    let alice = addr("alice@example.com");
    assert!(store.contacts(&alice).await.expect("empty").is_empty());

    let bob = store
        .add_contact(
            &alice,
            &contact("bob@Example.COM", Some("Bob Builder"), None),
            IfContactExists::Refuse,
        )
        .await
        .expect("add bob");
    assert_eq!(bob.address.to_string(), "bob@example.com");
    assert!(bob.created_at > 0 && bob.updated_at == bob.created_at);
    // A user of another deployment, who is no user here.
    store
        .add_contact(
            &alice,
            &contact("carol@partner.example", None, None),
            IfContactExists::Refuse,
        )
        .await
        .expect("add carol");
    let list = store.contacts(&alice).await.expect("list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].address.to_string(), "bob@example.com");
    assert_eq!(list[0].display_name.as_deref(), Some("Bob Builder"));
    assert_eq!(list[1].address.to_string(), "carol@partner.example");
    assert_eq!(list[1].display_name, None);

    store
        .remove_contact(&alice, &addr("BOB@example.com"))
        .await
        .expect_err("the user part matches exactly");
    store
        .remove_contact(&alice, &addr("bob@EXAMPLE.com"))
        .await
        .expect("remove bob");
    assert_eq!(
        entries(&store, "alice@example.com").await,
        ["carol@partner.example -"]
    );
    assert!(matches!(
        store.remove_contact(&alice, &addr("bob@example.com")).await,
        Err(StoreError::NotFound {
            what: "contact",
            ..
        })
    ));
}

pub async fn contacts_groups(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "alice@example.com").await;
    add(&store, "bob@example.com").await;
    let alice = addr("alice@example.com");
    let team = store
        .add_contact_group(&alice, " Team ")
        .await
        .expect("team");
    assert_eq!((team.name.as_str(), team.position), ("Team", 1));
    let friends = store
        .add_contact_group(&alice, "Friends")
        .await
        .expect("friends");
    assert_eq!(friends.position, 2);
    // Names are unique per user, not across users.
    assert!(matches!(
        store.add_contact_group(&alice, "Team").await,
        Err(StoreError::AlreadyExists {
            what: "contact group",
            ..
        })
    ));
    store
        .add_contact_group(&addr("bob@example.com"), "Team")
        .await
        .expect("bob's own Team");

    for (who, group) in [
        ("zoe@example.com", Some("Team")),
        ("max@example.com", Some("Friends")),
        ("ann@example.com", None),
        ("amy@example.com", Some("Team")),
    ] {
        store
            .add_contact(&alice, &contact(who, None, group), IfContactExists::Refuse)
            .await
            .expect("add");
    }
    // Groups in their order, entries in no group last.
    assert_eq!(
        entries(&store, "alice@example.com").await,
        [
            "amy@example.com Team",
            "zoe@example.com Team",
            "max@example.com Friends",
            "ann@example.com -"
        ]
    );
    assert!(matches!(
        store
            .add_contact(
                &alice,
                &contact("eve@example.com", None, Some("Nowhere")),
                IfContactExists::Refuse
            )
            .await,
        Err(StoreError::NotFound {
            what: "contact group",
            ..
        })
    ));

    // Rename keeps place and members; onto an existing name is refused.
    store
        .rename_contact_group(&alice, "Team", "Work")
        .await
        .expect("rename");
    assert!(matches!(
        store.rename_contact_group(&alice, "Work", "Friends").await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(matches!(
        store.rename_contact_group(&alice, "Team", "Other").await,
        Err(StoreError::NotFound { .. })
    ));
    let groups = store.contact_groups(&alice).await.expect("groups");
    assert_eq!(
        groups
            .iter()
            .map(|g| (g.name.as_str(), g.position))
            .collect::<Vec<_>>(),
        [("Work", 1), ("Friends", 2)]
    );
    assert_eq!(
        entries(&store, "alice@example.com").await[0],
        "amy@example.com Work"
    );

    // A group with contacts is refused (naming what to do) unless they move to no group.
    let before = snapshot(&store, "alice@example.com").await;
    let err = store
        .remove_contact_group(&alice, "Work", GroupEntries::Refuse)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("still holds 2") && err.contains("no group"),
        "{err}"
    );
    assert_eq!(snapshot(&store, "alice@example.com").await, before);
    let moved = store
        .remove_contact_group(&alice, "Work", GroupEntries::MoveToNoGroup)
        .await
        .expect("remove with move");
    assert_eq!(moved, 2);
    store
        .remove_contact(&alice, &addr("max@example.com"))
        .await
        .expect("empty Friends");
    assert_eq!(
        store
            .remove_contact_group(&alice, "Friends", GroupEntries::Refuse)
            .await
            .ok(),
        Some(0)
    );
    assert!(store
        .contact_groups(&alice)
        .await
        .expect("groups")
        .is_empty());
    assert_eq!(
        entries(&store, "alice@example.com").await,
        [
            "amy@example.com -",
            "ann@example.com -",
            "zoe@example.com -"
        ]
    );
    // A new group goes after the last remaining one (here: first again).
    assert_eq!(
        store
            .add_contact_group(&alice, "New")
            .await
            .map(|g| g.position)
            .ok(),
        Some(1)
    );
}

pub async fn contacts_duplicates_and_update(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "alice@example.com").await;
    let alice = addr("alice@example.com");
    store
        .add_contact_group(&alice, "Team")
        .await
        .expect("group");
    let first = store
        .add_contact(
            &alice,
            &contact("bob@example.com", Some("Bob"), None),
            IfContactExists::Refuse,
        )
        .await
        .expect("add");
    let dup = store
        .add_contact(
            &alice,
            &contact("bob@EXAMPLE.com", Some("Robert"), Some("Team")),
            IfContactExists::Refuse,
        )
        .await;
    match dup {
        Err(e @ StoreError::AlreadyExists { .. }) => {
            assert!(e.to_string().contains("bob@example.com"), "{e}")
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        store.contacts(&alice).await.expect("list")[0]
            .display_name
            .as_deref(),
        Some("Bob")
    );
    let updated = store
        .add_contact(
            &alice,
            &contact("bob@example.com", Some("Robert"), Some("Team")),
            IfContactExists::Update,
        )
        .await
        .expect("update");
    assert_eq!(updated.created_at, first.created_at);
    let list = store.contacts(&alice).await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].display_name.as_deref(), Some("Robert"));
    assert_eq!(list[0].group.as_deref(), Some("Team"));
    // Update with no group takes it out of the group.
    store
        .add_contact(
            &alice,
            &contact("bob@example.com", None, None),
            IfContactExists::Update,
        )
        .await
        .expect("update again");
    assert_eq!(
        entries(&store, "alice@example.com").await,
        ["bob@example.com -"]
    );
    // Update of an address not in the list adds it.
    store
        .add_contact(
            &alice,
            &contact("carol@example.com", None, None),
            IfContactExists::Update,
        )
        .await
        .expect("upsert");
    assert_eq!(store.contacts(&alice).await.map(|c| c.len()).ok(), Some(2));
}

pub async fn contacts_unknown_user(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    let ghost = addr("ghost@example.com");
    let head = store.last_change_seq().await.expect("head");
    let is_unknown =
        |r: Result<(), StoreError>| matches!(r, Err(StoreError::NotFound { what: "user", .. }));
    assert!(is_unknown(store.contacts(&ghost).await.map(drop)));
    assert!(is_unknown(store.contact_groups(&ghost).await.map(drop)));
    assert!(is_unknown(store.presence_rules(&ghost).await.map(drop)));
    assert!(is_unknown(store.contact_list(&ghost).await.map(drop)));
    assert!(is_unknown(
        store.add_contact_group(&ghost, "Team").await.map(drop)
    ));
    assert!(is_unknown(
        store
            .add_contact(
                &ghost,
                &contact("bob@example.com", None, None),
                IfContactExists::Refuse
            )
            .await
            .map(drop)
    ));
    assert!(is_unknown(
        store
            .set_presence_rule(&ghost, &watcher("@example.com"), PresenceLevel::Blocked)
            .await
            .map(drop)
    ));
    assert_eq!(store.last_change_seq().await.ok(), Some(head));
}

pub async fn contacts_cascade_on_user_removal(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "alice@example.com").await;
    add(&store, "bob@example.com").await;
    let alice = addr("alice@example.com");
    let bob = addr("bob@example.com");
    for who in [&alice, &bob] {
        store.add_contact_group(who, "Team").await.expect("group");
        store
            .add_contact(
                who,
                &contact("carol@example.com", None, Some("Team")),
                IfContactExists::Refuse,
            )
            .await
            .expect("contact");
        store
            .set_presence_rule(who, &watcher("@partner.example"), PresenceLevel::Blocked)
            .await
            .expect("rule");
    }
    // Alice is in Bob's list: removing her leaves Bob's list as it is.
    store
        .add_contact(
            &bob,
            &contact("alice@example.com", None, None),
            IfContactExists::Refuse,
        )
        .await
        .expect("alice in bob's list");
    let bobs = snapshot(&store, "bob@example.com").await;
    store.remove_user(&alice).await.expect("remove alice");
    assert_eq!(snapshot(&store, "bob@example.com").await, bobs);

    // A new user at the same address starts with an empty list.
    add(&store, "alice@example.com").await;
    let fresh = snapshot(&store, "alice@example.com").await;
    assert!(fresh.groups.is_empty() && fresh.contacts.is_empty());
    assert!(fresh.presence_rules.is_empty());
}

pub async fn presence_rules_per_user_and_domain(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "alice@example.com").await;
    add(&store, "bob@example.com").await;
    let alice = addr("alice@example.com");
    let head = store.last_change_seq().await.expect("head");
    assert_eq!(
        store
            .set_presence_rule(&alice, &watcher("@Partner.Example"), PresenceLevel::Blocked)
            .await
            .ok(),
        Some(true)
    );
    assert_eq!(
        store
            .set_presence_rule(
                &alice,
                &watcher("boss@partner.example"),
                PresenceLevel::Workgroup
            )
            .await
            .ok(),
        Some(true)
    );
    store
        .set_presence_rule(
            &alice,
            &watcher("bob@example.com"),
            PresenceLevel::Colleagues,
        )
        .await
        .expect("bob");
    // Setting the same level again writes nothing; another level replaces it.
    assert_eq!(
        store
            .set_presence_rule(&alice, &watcher("@partner.example"), PresenceLevel::Blocked)
            .await
            .ok(),
        Some(false)
    );
    assert_eq!(store.last_change_seq().await.ok(), Some(head + 3));
    assert_eq!(
        store
            .set_presence_rule(
                &alice,
                &watcher("bob@example.com"),
                PresenceLevel::FriendsAndFamily
            )
            .await
            .ok(),
        Some(true)
    );
    let rules = store.presence_rules(&alice).await.expect("rules");
    let shown: Vec<String> = rules
        .iter()
        .map(|r| format!("{} {}", r.watcher, r.level))
        .collect();
    assert_eq!(
        shown,
        [
            "bob@example.com friends-and-family",
            "@partner.example blocked",
            "boss@partner.example workgroup",
        ]
    );
    // The rules are Alice's alone.
    assert!(store
        .presence_rules(&addr("bob@example.com"))
        .await
        .expect("bob's")
        .is_empty());

    store
        .remove_presence_rule(&alice, &watcher("@partner.example"))
        .await
        .expect("remove domain rule");
    assert!(matches!(
        store
            .remove_presence_rule(&alice, &watcher("@partner.example"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    // The domain rule and the user rule are different rules.
    assert_eq!(
        store.presence_rules(&alice).await.map(|r| r.len()).ok(),
        Some(2)
    );
}

pub async fn contacts_feed_entries(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "alice@example.com").await;
    let alice = addr("alice@example.com");
    let start = store.last_change_seq().await.expect("head");
    store
        .add_contact_group(&alice, "Team")
        .await
        .expect("group");
    store
        .rename_contact_group(&alice, "Team", "Work")
        .await
        .expect("rename");
    store
        .add_contact(
            &alice,
            &contact("bob@example.com", None, Some("Work")),
            IfContactExists::Refuse,
        )
        .await
        .expect("contact");
    store
        .remove_contact_group(&alice, "Work", GroupEntries::MoveToNoGroup)
        .await
        .expect("remove group");
    store
        .remove_contact(&alice, &addr("bob@example.com"))
        .await
        .expect("remove contact");
    store
        .set_presence_rule(&alice, &watcher("@example.org"), PresenceLevel::Blocked)
        .await
        .expect("rule");
    store
        .remove_presence_rule(&alice, &watcher("@example.org"))
        .await
        .expect("remove rule");
    // A bulk read writes nothing.
    snapshot(&store, "alice@example.com").await;
    let feed = store.changes_since(start, 100).await.expect("feed");
    let kinds: Vec<&str> = feed.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "contacts.changed",
            "contacts.changed",
            "contacts.changed",
            "contacts.changed",
            "contacts.changed",
            "presence_rules.changed",
            "presence_rules.changed",
        ]
    );
    assert_eq!(feed[0].kind, ChangeKind::ContactsChanged);
    assert_eq!(feed[6].kind, ChangeKind::PresenceRulesChanged);
    assert!(feed.iter().all(|c| c.subject == "alice@example.com"));
}

pub async fn contacts_validation_changes_nothing(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "alice@example.com").await;
    let alice = addr("alice@example.com");
    store
        .add_contact_group(&alice, "Team")
        .await
        .expect("group");
    store
        .add_contact(
            &alice,
            &contact("bob@example.com", Some("Bob"), Some("Team")),
            IfContactExists::Refuse,
        )
        .await
        .expect("contact");
    let before = snapshot(&store, "alice@example.com").await;
    let head = store.last_change_seq().await.expect("head");

    let long = "x".repeat(confab_store::MAX_GROUP_NAME + 1);
    for bad in ["", "  ", "tab\there", long.as_str()] {
        let added = store.add_contact_group(&alice, bad).await;
        assert!(matches!(added, Err(StoreError::Invalid { .. })), "{bad:?}");
        let renamed = store.rename_contact_group(&alice, "Team", bad).await;
        assert!(
            matches!(renamed, Err(StoreError::Invalid { .. })),
            "{bad:?}"
        );
        let grouped = store
            .add_contact(
                &alice,
                &contact("carol@example.com", None, Some(bad)),
                IfContactExists::Refuse,
            )
            .await;
        assert!(
            matches!(grouped, Err(StoreError::Invalid { .. })),
            "{bad:?}"
        );
    }
    for bad_name in ["", "two\nlines"] {
        let named = store
            .add_contact(
                &alice,
                &contact("bob@example.com", Some(bad_name), None),
                IfContactExists::Update,
            )
            .await;
        assert!(
            matches!(named, Err(StoreError::Invalid { .. })),
            "{bad_name:?}"
        );
    }
    let own = store
        .add_contact(
            &alice,
            &contact("alice@EXAMPLE.com", None, None),
            IfContactExists::Refuse,
        )
        .await;
    assert!(matches!(own, Err(StoreError::Invalid { .. })), "{own:?}");
    // Refusals inside the transaction change nothing either.
    assert!(store
        .add_contact(
            &alice,
            &contact("bob@example.com", None, None),
            IfContactExists::Refuse
        )
        .await
        .is_err());
    assert!(store
        .remove_contact_group(&alice, "Team", GroupEntries::Refuse)
        .await
        .is_err());
    for bad in ["bob", "@", "@bad domain", "bob@"] {
        assert!(Watcher::parse(bad).is_err(), "{bad:?}");
    }
    assert!("public".parse::<PresenceLevel>().is_err());

    assert_eq!(snapshot(&store, "alice@example.com").await, before);
    assert_eq!(store.last_change_seq().await.ok(), Some(head));
}
