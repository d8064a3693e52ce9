//! Publishing whole topologies: what changes, what is kept, and what is refused.

use confab_store::{ChangeKind, Pool, PoolKind, Site, StoreError, TopologySpec, DEFAULT_POOL};

use super::users::registration;
use super::{add, addr, Fixture};

fn front_end(name: &str, site: Option<&str>, servers: &[&str], pair: Option<&str>) -> Pool {
    Pool {
        name: name.into(),
        kind: PoolKind::Confab,
        site: site.map(Into::into),
        next_hop: None,
        servers: servers.iter().map(|s| (*s).to_owned()).collect(),
        pair: pair.map(Into::into),
    }
}

fn legacy(name: &str, hop: &str) -> Pool {
    Pool {
        name: name.into(),
        kind: PoolKind::Legacy,
        site: Some("paris".into()),
        next_hop: Some(hop.into()),
        servers: Vec::new(),
        pair: None,
    }
}

fn spec(domains: &[&str], pools: Vec<Pool>) -> TopologySpec {
    TopologySpec {
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        sites: vec![
            Site {
                name: "paris".into(),
                description: Some("Paris data centre".into()),
            },
            Site {
                name: "lyon".into(),
                description: None,
            },
        ],
        pools,
    }
}

pub async fn topology_publish_and_read_back(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    assert_eq!(store.topology_version().await.ok(), Some(None));
    let head = store.last_change_seq().await.expect("head");
    let first = spec(
        &["example.com", "Corp.Example.com"],
        vec![
            front_end(DEFAULT_POOL, None, &[], None),
            front_end(
                "fe-paris",
                Some("paris"),
                &["udp://127.0.0.1:5070", "tcp://127.0.0.1:5070"],
                Some("fe-lyon"),
            ),
            front_end(
                "fe-lyon",
                Some("lyon"),
                &["udp://127.0.0.2:5070"],
                Some("fe-paris"),
            ),
            legacy("kamailio", "udp://127.0.0.1:5090"),
        ],
    );
    let v1 = store
        .publish_topology(&first, "document 1", "alice", Some("first"))
        .await
        .expect("publish");
    assert_eq!(v1.version, 1);
    let latest = store.topology_version().await.expect("read").expect("some");
    assert_eq!(latest.document, "document 1");
    assert_eq!(latest.published_by, "alice");
    assert_eq!(latest.comment.as_deref(), Some("first"));

    let pools = store.pools().await.expect("pools");
    assert_eq!(
        pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["default", "fe-lyon", "fe-paris", "kamailio"]
    );
    let paris = store
        .get_pool("fe-paris")
        .await
        .expect("get")
        .expect("some");
    assert_eq!(
        paris.servers,
        ["udp://127.0.0.1:5070", "tcp://127.0.0.1:5070"]
    );
    assert_eq!(paris.pair.as_deref(), Some("fe-lyon"));
    assert_eq!(paris.site.as_deref(), Some("paris"));
    let domains: Vec<String> = store
        .domains()
        .await
        .expect("domains")
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(domains, ["corp.example.com", "example.com"]);
    let sites = store.sites().await.expect("sites");
    assert_eq!(sites.len(), 2);
    assert_eq!(sites[1].description.as_deref(), Some("Paris data centre"));

    // One feed entry for the whole publication, its subject the version.
    let feed = store.changes_since(head, 100).await.expect("feed");
    assert_eq!(feed.len(), 1, "{feed:?}");
    assert_eq!(feed[0].kind, ChangeKind::TopologyPublished);
    assert_eq!(feed[0].kind.as_str(), "topology.published");
    assert_eq!(feed[0].subject, "1");

    // Second version: a server moves between pools, a pool and a site go, a field changes.
    let mut second = spec(
        &["example.com"],
        vec![
            front_end(DEFAULT_POOL, None, &["udp://127.0.0.1:5070"], None),
            legacy("kamailio", "tcp://127.0.0.1:5091"),
        ],
    );
    second.sites.truncate(1);
    let v2 = store
        .publish_topology(&second, "document 2", "bob", None)
        .await
        .expect("publish 2");
    assert_eq!(v2.version, 2);
    let pools = store.pools().await.expect("pools");
    assert_eq!(pools.len(), 2);
    assert_eq!(pools[0].servers, ["udp://127.0.0.1:5070"]);
    assert_eq!(pools[1].next_hop.as_deref(), Some("tcp://127.0.0.1:5091"));
    assert_eq!(store.sites().await.expect("sites").len(), 1);
    assert_eq!(store.domains().await.expect("domains").len(), 1);
    assert_eq!(
        store
            .topology_version()
            .await
            .expect("v")
            .map(|v| v.version),
        Some(2)
    );
}

pub async fn topology_refuses_removing_what_users_use(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    store.add_domain("corp.example.com").await.expect("domain");
    add(&store, "alice@corp.example.com").await;
    store
        .upsert_registration(&registration(&addr("alice@corp.example.com"), "sip:a@h", 9))
        .await
        .expect("registration");
    let usage = store.pool_usage().await.expect("usage");
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].users, usage[0].registrations), (1, 1));

    let head = store.last_change_seq().await.expect("head");
    let before = (store.pools().await.ok(), store.domains().await.ok());
    let without = spec(
        &["example.com"],
        vec![front_end(
            "fe-paris",
            Some("paris"),
            &["udp://127.0.0.1:5070"],
            None,
        )],
    );
    let err = store
        .publish_topology(&without, "doc", "alice", None)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("pool 'default'") && err.contains("alice@corp.example.com"),
        "{err}"
    );
    assert!(err.contains("SIP domain 'corp.example.com'"), "{err}");
    assert_eq!(store.last_change_seq().await.ok(), Some(head));
    assert_eq!(
        (store.pools().await.ok(), store.domains().await.ok()),
        before
    );
    assert_eq!(store.topology_version().await.ok(), Some(None));

    // The store's own rules, whatever its caller checked.
    let clash = spec(
        &["example.com", "corp.example.com"],
        vec![
            front_end(DEFAULT_POOL, None, &["udp://127.0.0.1:5070"], None),
            front_end("fe", None, &["udp://127.0.0.1:5070"], None),
        ],
    );
    assert!(matches!(
        store.publish_topology(&clash, "doc", "a", None).await,
        Err(StoreError::Invalid { .. })
    ));
    let no_hop = spec(
        &["example.com", "corp.example.com"],
        vec![
            front_end(DEFAULT_POOL, None, &[], None),
            Pool {
                next_hop: None,
                ..legacy("old", "x")
            },
        ],
    );
    assert!(store
        .publish_topology(&no_hop, "doc", "a", None)
        .await
        .is_err());
    let bad_pair = spec(
        &["example.com", "corp.example.com"],
        vec![front_end(DEFAULT_POOL, None, &[], Some("nowhere"))],
    );
    assert!(store
        .publish_topology(&bad_pair, "doc", "a", None)
        .await
        .is_err());
    assert_eq!(store.last_change_seq().await.ok(), Some(head));
}

pub async fn pool_maintenance_needs_a_serving_pair(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    let topology = spec(
        &["example.com"],
        vec![
            front_end(DEFAULT_POOL, None, &[], None),
            front_end("fe-paris", Some("paris"), &[], Some("fe-lyon")),
            front_end("fe-lyon", Some("lyon"), &[], Some("fe-paris")),
            legacy("kamailio", "udp://192.0.2.9:5060"),
        ],
    );
    store
        .publish_topology(&topology, "doc", "alice", None)
        .await
        .expect("published");
    let head = store.last_change_seq().await.expect("head");
    // Refused, nothing changed: no such pool, a legacy pool, a pool without a pair.
    for (pool, says) in [
        ("nowhere", "nowhere"),
        ("kamailio", "legacy"),
        (DEFAULT_POOL, "no paired pool"),
    ] {
        let e = store
            .set_pool_maintenance(pool, true, "upgrade", "alice")
            .await
            .expect_err("refused");
        assert!(e.to_string().contains(says), "{pool}: {e}");
    }
    assert_eq!(store.last_change_seq().await.expect("head"), head);
    assert!(store
        .set_pool_maintenance("fe-paris", true, "upgrade", "alice")
        .await
        .expect("into maintenance"));
    assert!(
        !store
            .set_pool_maintenance("fe-paris", true, "upgrade", "alice")
            .await
            .expect("again"),
        "already: nothing recorded"
    );
    // Its pair cannot go too: nobody would serve either pool's users.
    let e = store
        .set_pool_maintenance("fe-lyon", true, "x", "alice")
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("take 'fe-paris' out"), "{e}");
    let listed = store.pools_in_maintenance().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].pool.as_str(),
            listed[0].reason.as_str(),
            listed[0].started_by.as_str()
        ),
        ("fe-paris", "upgrade", "alice")
    );
    // A publication leaves the state alone: it is not part of the document.
    store
        .publish_topology(&topology, "doc", "alice", None)
        .await
        .expect("published again");
    assert_eq!(store.pools_in_maintenance().await.expect("list").len(), 1);
    assert!(store
        .set_pool_maintenance("fe-paris", false, "", "bob")
        .await
        .expect("out"));
    assert!(store.pools_in_maintenance().await.expect("list").is_empty());
    let feed: Vec<_> = store
        .changes_since(head, 100)
        .await
        .expect("feed")
        .into_iter()
        .filter(|c| c.kind == ChangeKind::PoolMaintenance)
        .map(|c| c.subject)
        .collect();
    assert_eq!(feed, ["fe-paris", "fe-paris"]);
    let audit: Vec<String> = store
        .audit_entries(0, 1000)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.action.starts_with("pool.maintenance"))
        .map(|e| format!("{} {} {}", e.actor, e.action, e.subject))
        .collect();
    assert_eq!(
        audit,
        [
            "alice pool.maintenance.on fe-paris",
            "bob pool.maintenance.off fe-paris"
        ]
    );
}
