//! The front-ends' hot state: registrations written behind, and offline messages.

use std::collections::HashSet;
use std::time::Duration;

use confab_store::{NewOfflineMessage, Purged, QuotaError, StoreError};

use super::users::registration;
use super::{add, addr, Fixture};

const HOUR: Duration = Duration::from_secs(3600);

pub async fn registrations_upsert_and_remove(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "hal@example.com").await;
    add(&store, "ida@example.com").await;
    let hal = addr("hal@example.com");
    let ida = addr("ida@example.com");

    let mut desk = registration(&hal, "sip:hal@10.0.0.1:5060", 5_000);
    desk.q = 500;
    desk.instance_id = Some("<urn:uuid:00000000-0000-0000-0000-000000000001>".into());
    desk.path = Some("<sip:edge.example.com;lr>".into());
    let mobile = registration(&hal, "sip:hal@10.0.0.2:5060;transport=tcp", 5_000);
    store.upsert_registration(&desk).await.expect("desk");
    store.upsert_registration(&mobile).await.expect("mobile");
    store
        .upsert_registration(&registration(&ida, "sip:ida@10.0.0.3", 5_000))
        .await
        .expect("ida");
    let hals = store.registrations_of(&hal).await.expect("of");
    assert_eq!(hals, vec![mobile.clone(), desk.clone()], "highest q first");

    // The same contact again replaces the binding (a refresh).
    let mut refreshed = desk.clone();
    refreshed.cseq = 2;
    refreshed.expires_at = 9_000;
    refreshed.updated_at = 2_000;
    refreshed.path = None;
    store
        .upsert_registration(&refreshed)
        .await
        .expect("refresh");
    let hals = store.registrations_of(&hal).await.expect("of");
    assert_eq!(hals.len(), 2);
    assert!(hals.contains(&refreshed));

    let all = store.all_registrations().await.expect("all");
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].user, ida);

    assert_eq!(
        store.remove_registration(&hal, &desk.contact).await.ok(),
        Some(true)
    );
    assert_eq!(
        store.remove_registration(&hal, &desk.contact).await.ok(),
        Some(false)
    );
    assert_eq!(store.registrations_of(&hal).await.ok(), Some(vec![mobile]));
    assert_eq!(store.remove_registrations_of(&hal).await.ok(), Some(1));
    assert_eq!(
        store.all_registrations().await.map(|r| r.len()).ok(),
        Some(1)
    );

    let ghost = addr("ghost@example.com");
    assert!(matches!(
        store
            .upsert_registration(&registration(&ghost, "sip:g@h", 1))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let mut bad_q = registration(&ida, "sip:ida@h", 1);
    bad_q.q = 1001;
    assert!(matches!(
        store.upsert_registration(&bad_q).await,
        Err(StoreError::Invalid { .. })
    ));
}

pub async fn registrations_purge(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "jay@example.com").await;
    let jay = addr("jay@example.com");
    for (contact, expires) in [("sip:a@h", 100), ("sip:b@h", 200), ("sip:c@h", 300)] {
        store
            .upsert_registration(&registration(&jay, contact, expires))
            .await
            .expect("reg");
    }
    let purged = store.purge_expired(200).await.expect("purge");
    assert_eq!(purged.registrations, 2, "expiry at or before now goes");
    let left = store.registrations_of(&jay).await.expect("of");
    assert_eq!(
        left.iter().map(|r| r.contact.as_str()).collect::<Vec<_>>(),
        ["sip:c@h"]
    );
    assert_eq!(store.purge_expired(200).await.ok(), Some(Purged::default()));
}

fn message(to: &str, body: &[u8], received_at: i64) -> NewOfflineMessage {
    NewOfflineMessage {
        to_user: addr(to),
        from_uri: "sip:sender@example.com".into(),
        content_type: "text/plain;charset=utf-8".into(),
        body: body.to_vec(),
        received_at,
    }
}

pub async fn offline_cap_and_age(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "kim@example.com").await;
    let kim = addr("kim@example.com");
    // Cap 3, age limit one hour.
    for (i, at) in [1_000, 2_000, 3_000].into_iter().enumerate() {
        let body = [b'm', i as u8, 0xff, 0x00];
        store
            .store_offline_message(&message("kim@example.com", &body, at), 3, HOUR)
            .await
            .expect("store");
    }
    let full = store
        .store_offline_message(&message("kim@example.com", b"4", 3_100), 3, HOUR)
        .await;
    match full {
        Err(QuotaError::Full { cap: 3, ref user }) => assert_eq!(user, "kim@example.com"),
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(store.offline_message_count(&kim).await.ok(), Some(3));
    // Once the first message is older than the age limit, it stops counting and goes.
    store
        .store_offline_message(&message("kim@example.com", b"5", 1_000 + 3_600), 3, HOUR)
        .await
        .expect("room after the oldest expired");
    assert_eq!(store.offline_message_count(&kim).await.ok(), Some(3));
    // Expired messages are never handed out.
    let claimed = store
        .claim_offline_messages(&kim, 2_000 + 3_600, HOUR)
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|m| m.body.clone()).collect::<Vec<_>>(),
        [vec![b'm', 2, 0xff, 0x00], b"5".to_vec()],
        "binary bodies round-trip, oldest first"
    );
    assert_eq!(claimed[0].received_at, 3_000);
    assert_eq!(claimed[0].expires_at, 3_000 + 3_600);
    assert_eq!(claimed[0].content_type, "text/plain;charset=utf-8");
    let purged = store.purge_expired(10_000).await.expect("purge");
    assert_eq!(purged.offline_messages, 3);

    let unknown = store
        .store_offline_message(&message("ghost@example.com", b"x", 1), 3, HOUR)
        .await;
    assert!(matches!(
        unknown,
        Err(QuotaError::Store(StoreError::NotFound { .. }))
    ));
    let zero_cap = store
        .store_offline_message(&message("kim@example.com", b"x", 20_000), 0, HOUR)
        .await;
    assert!(matches!(zero_cap, Err(QuotaError::Full { cap: 0, .. })));
}

pub async fn offline_claim_ack_never_lost(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "lee@example.com").await;
    let lee = addr("lee@example.com");
    let lease = Duration::from_secs(30);
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = store
            .store_offline_message(&message("lee@example.com", &[b'0' + i], 100), 10, HOUR)
            .await
            .expect("store");
        ids.push(id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    // A deliverer claims them and crashes before acknowledging: nothing is lost, nothing is
    // handed to anyone else while the lease runs, and all come back once it has run out.
    let first = store
        .claim_offline_messages(&lee, 200, lease)
        .await
        .expect("claim");
    assert_eq!(first.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    assert!(store
        .claim_offline_messages(&lee, 229, lease)
        .await
        .expect("claim")
        .is_empty());
    let again = store
        .claim_offline_messages(&lee, 230, lease)
        .await
        .expect("claim");
    assert_eq!(again, first);

    // Delivered ones are acknowledged and gone; a failed one is released for the next claim.
    assert_eq!(store.ack_offline_messages(&ids[..2]).await.ok(), Some(2));
    assert_eq!(store.ack_offline_messages(&ids[..2]).await.ok(), Some(0));
    assert_eq!(
        store.release_offline_messages(&ids[2..]).await.ok(),
        Some(1)
    );
    let rest = store
        .claim_offline_messages(&lee, 231, lease)
        .await
        .expect("claim");
    assert_eq!(rest.iter().map(|m| m.id).collect::<Vec<_>>(), &ids[2..]);
    assert_eq!(store.ack_offline_messages(&ids[2..]).await.ok(), Some(1));
    assert_eq!(store.offline_message_count(&lee).await.ok(), Some(0));
    assert!(store
        .claim_offline_messages(&lee, 10_000, lease)
        .await
        .expect("claim")
        .is_empty());
    assert_eq!(store.ack_offline_messages(&[]).await.ok(), Some(0));
}

pub async fn offline_concurrent_claims(fx: &Fixture) {
    // Two front-ends (two handles) claim for the same user at the same moment: every message
    // goes to exactly one of them.
    let a = fx.open_with_defaults().await;
    let b = fx.open().await;
    add(&a, "max@example.com").await;
    let max = addr("max@example.com");
    for i in 0..20u8 {
        a.store_offline_message(&message("max@example.com", &[i], 100), 100, HOUR)
            .await
            .expect("store");
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for _ in 0..5 {
        let (x, y) = tokio::join!(
            a.claim_offline_messages(&max, 200, HOUR),
            b.claim_offline_messages(&max, 200, HOUR)
        );
        for m in x.expect("claim a").into_iter().chain(y.expect("claim b")) {
            total += 1;
            assert!(seen.insert(m.id), "message {} handed out twice", m.id);
        }
    }
    assert_eq!(total, 20);
    assert_eq!(seen.len(), 20);
}

pub async fn registrations_replaced_in_batches(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    for name in ["kim", "lee", "max", "ned"] {
        add(&store, &format!("{name}@example.com")).await;
    }
    let (kim, lee, max, ned) = (
        addr("kim@example.com"),
        addr("lee@example.com"),
        addr("max@example.com"),
        addr("ned@example.com"),
    );
    let ghost = addr("ghost@example.com");
    // ned has a registration the batch does not name: it is left alone.
    let neds = registration(&ned, "sip:ned@h", 5_000);
    store.upsert_registration(&neds).await.expect("ned");
    let kim_desk = registration(&kim, "sip:kim@10.0.0.1", 5_000);
    let mut kim_phone = registration(&kim, "sip:kim@10.0.0.2", 5_000);
    kim_phone.path = Some("<sip:edge;lr>".into());
    let lees = registration(&lee, "sip:lee@h", 5_000);
    let unknown = store
        .replace_registrations(
            &[kim.clone(), lee.clone(), max.clone(), ghost.clone()],
            &[
                kim_desk.clone(),
                kim_phone.clone(),
                lees.clone(),
                registration(&ghost, "sip:g@h", 5_000),
            ],
        )
        .await
        .expect("batch");
    assert_eq!(unknown, [ghost], "a user the store has not is skipped");
    assert_eq!(
        store.registrations_of(&kim).await.ok(),
        Some(vec![kim_desk.clone(), kim_phone.clone()])
    );
    assert_eq!(store.registrations_of(&lee).await.ok(), Some(vec![lees]));
    assert_eq!(
        store.registrations_of(&ned).await.ok(),
        Some(vec![neds.clone()])
    );

    // Second batch: kim drops the desk and refreshes the phone; lee has none left; a
    // contact given twice is written once, the later one.
    let mut refreshed = kim_phone.clone();
    refreshed.cseq = 2;
    refreshed.expires_at = 9_000;
    let mut first = registration(&max, "sip:max@h", 100);
    first.cseq = 7;
    let second = registration(&max, "sip:max@h", 200);
    store
        .replace_registrations(
            &[kim.clone(), lee.clone(), max.clone(), max.clone()],
            &[refreshed.clone(), first, second.clone()],
        )
        .await
        .expect("second batch");
    assert_eq!(
        store.registrations_of(&kim).await.ok(),
        Some(vec![refreshed])
    );
    assert_eq!(store.registrations_of(&lee).await.ok(), Some(vec![]));
    assert_eq!(store.registrations_of(&max).await.ok(), Some(vec![second]));
    assert_eq!(store.registrations_of(&ned).await.ok(), Some(vec![neds]));
    assert_eq!(
        store.replace_registrations(&[], &[]).await.ok(),
        Some(vec![])
    );

    // A batch larger than one statement's rows, and one that is refused whole.
    let many: Vec<_> = (0..1_300)
        .map(|i| {
            registration(
                &lee,
                &format!("sip:lee@10.1.{}.{}", i / 256, i % 256),
                5_000,
            )
        })
        .collect();
    store
        .replace_registrations(std::slice::from_ref(&lee), &many)
        .await
        .expect("many");
    assert_eq!(
        store.registrations_of(&lee).await.map(|r| r.len()).ok(),
        Some(1_300)
    );
    let mut bad_q = registration(&kim, "sip:kim@h", 1);
    bad_q.q = 1001;
    assert!(matches!(
        store
            .replace_registrations(&[kim.clone(), lee.clone()], &[bad_q])
            .await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        store
            .replace_registrations(
                std::slice::from_ref(&kim),
                &[registration(&lee, "sip:x@h", 1)]
            )
            .await,
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(
        store.registrations_of(&lee).await.map(|r| r.len()).ok(),
        Some(1_300),
        "a refused batch changes nothing"
    );
}
