use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::directory::{AorBindings, RegistrationStore};
use crate::memory::MemoryRegistrations;

fn flow() -> Source {
    Source {
        transport: Transport::Udp,
        peer: "192.0.2.7:5060".parse().expect("addr"),
        local: "192.0.2.1:5060".parse().expect("addr"),
    }
}

fn update(call_id: &str, cseq: u32, contacts: &[(&str, u32)]) -> Update {
    Update {
        aor: "alice@example.com".to_owned(),
        call_id: call_id.to_owned(),
        cseq,
        remove_all: false,
        contacts: contacts
            .iter()
            .map(|(c, e)| ContactUpdate {
                contact: (*c).to_owned(),
                expires: *e,
                q: None,
            })
            .collect(),
        path: Vec::new(),
        flow: flow(),
        user_agent: None,
    }
}

#[test]
fn register_refresh_remove_and_cseq_order() {
    let loc = Location::new(8);
    let now = Instant::now();
    let b = loc
        .update(update("c1", 1, &[("sip:alice@192.0.2.7:5060", 60)]), now)
        .expect("registered");
    assert_eq!(b.len(), 1);
    // Same Call-ID, same CSeq: refused, nothing changes.
    assert_eq!(
        loc.update(update("c1", 1, &[("sip:alice@192.0.2.7:5060", 0)]), now),
        Err(UpdateError::StaleCSeq)
    );
    // An equivalent URI (a parameter only one of them has) is the same binding.
    let b = loc
        .update(
            update("c1", 2, &[("sip:alice@192.0.2.7:5060;x=1", 120)]),
            now,
        )
        .expect("refreshed");
    assert_eq!(b.len(), 1, "{b:?}");
    let b = loc
        .update(update("c1", 3, &[("sip:alice@192.0.2.7:5060", 120)]), now)
        .expect("refreshed");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].remaining(now), 120);
    // Another Call-ID may touch it with any CSeq.
    let b = loc
        .update(update("c2", 1, &[("sip:alice@192.0.2.7:5060", 0)]), now)
        .expect("removed");
    assert!(b.is_empty());
    assert!(loc.is_empty());
    assert_eq!(loc.flow_for("192.0.2.7:5060"), None);
}

#[test]
fn the_cap_drops_the_least_recently_refreshed() {
    let loc = Location::new(2);
    let now = Instant::now();
    for (i, c) in ["sip:a@h1", "sip:a@h2", "sip:a@h3"].iter().enumerate() {
        loc.update(update(&format!("c{i}"), 1, &[(c, 60)]), now)
            .expect("registered");
    }
    let contacts: Vec<String> = loc
        .lookup("alice@example.com", now)
        .into_iter()
        .map(|b| b.contact().to_owned())
        .collect();
    assert_eq!(contacts, ["sip:a@h3", "sip:a@h2"]);
}

#[test]
fn wildcard_and_expiry() {
    let loc = Location::new(8);
    let now = Instant::now();
    loc.update(update("c1", 1, &[("sip:a@h1", 1), ("sip:a@h2", 60)]), now)
        .expect("registered");
    assert_eq!(loc.flow_for("h2:5060"), Some(flow()));
    assert_eq!(loc.sweep(now), 0);
    assert_eq!(loc.sweep(now + Duration::from_secs(2)), 1);
    assert_eq!(
        loc.lookup("alice@example.com", now + Duration::from_secs(2))
            .len(),
        1
    );
    let mut all = update("c1", 1, &[]);
    all.remove_all = true;
    assert_eq!(loc.update(all.clone(), now), Err(UpdateError::StaleCSeq));
    all.cseq = 2;
    assert!(loc.update(all, now).expect("removed").is_empty());
}

#[tokio::test]
async fn written_behind_and_loaded_back() {
    let loc = Location::new(8);
    let now = Instant::now();
    let mut u = update("c1", 1, &[("sip:a@h1", 60)]);
    u.path = vec!["<sip:edge.example;lr>".to_owned()];
    loc.update(u, now).expect("registered");
    let store = MemoryRegistrations::new();
    loc.flush(&store).await;
    let saved = store.get("alice@example.com");
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].flow, "udp 192.0.2.7:5060 192.0.2.1:5060");
    let again = Location::new(8);
    assert_eq!(
        again.load(store.load().await.expect("load"), Instant::now()),
        1
    );
    let b = again.lookup("alice@example.com", Instant::now());
    assert_eq!(b[0].path(), ["<sip:edge.example;lr>"]);
    assert_eq!(b[0].flow, flow());
}

/// A registration store that records each batch, and can be down or refuse some AORs.
#[derive(Default)]
struct Recording {
    kept: MemoryRegistrations,
    batches: Mutex<Vec<Vec<String>>>,
    down: std::sync::atomic::AtomicBool,
    refused: Mutex<Vec<String>>,
}

impl Recording {
    fn batches(&self) -> Vec<Vec<String>> {
        self.batches.lock().expect("lock").clone()
    }

    fn refuse(&self, aors: &[&str]) {
        *self.refused.lock().expect("lock") = aors.iter().map(|a| (*a).to_owned()).collect();
    }

    fn contacts(&self, aor: &str) -> Vec<String> {
        self.kept.get(aor).into_iter().map(|b| b.contact).collect()
    }
}

impl RegistrationStore for Recording {
    fn save_many<'a>(
        &'a self,
        batch: &'a [AorBindings],
    ) -> crate::directory::BoxFuture<'a, Result<(), crate::directory::StoreError>> {
        let aors: Vec<String> = batch.iter().map(|a| a.aor.clone()).collect();
        self.batches.lock().expect("lock").push(aors.clone());
        let refused = self.refused.lock().expect("lock").clone();
        let fail = self.down.load(std::sync::atomic::Ordering::Relaxed)
            || aors.iter().any(|a| refused.contains(a));
        Box::pin(async move {
            if fail {
                return Err(crate::directory::StoreError("refused".to_owned()));
            }
            self.kept.save_many(batch).await
        })
    }

    fn load(
        &self,
    ) -> crate::directory::BoxFuture<'_, Result<Vec<StoredBinding>, crate::directory::StoreError>>
    {
        self.kept.load()
    }
}

fn update_of(aor: &str, contacts: &[(&str, u32)]) -> Update {
    Update {
        aor: aor.to_owned(),
        ..update(&format!("call-{aor}"), 1, contacts)
    }
}

#[tokio::test]
async fn dirty_aors_are_written_in_one_batch_removals_included() {
    let loc = Location::new(8);
    let now = Instant::now();
    for aor in ["a@example.com", "b@example.com", "c@example.com"] {
        loc.update(update_of(aor, &[("sip:x@h1", 60), ("sip:y@h2", 60)]), now)
            .expect("registered");
    }
    let store = Recording::default();
    assert!(loc.flush(&store).await);
    assert_eq!(store.batches().len(), 1, "one batch for three AORs");
    assert_eq!(store.batches()[0].len(), 3);
    assert_eq!(store.contacts("b@example.com"), ["sip:x@h1", "sip:y@h2"]);

    // a: one contact gone; b: removed by an operator; c: unregistered with `*`.
    let mut a = update_of("a@example.com", &[("sip:y@h2", 0)]);
    a.cseq = 2;
    loc.update(a, now).expect("a");
    assert_eq!(loc.remove("b@example.com"), 2);
    let mut c = update_of("c@example.com", &[]);
    c.remove_all = true;
    c.cseq = 2;
    loc.update(c, now).expect("c");
    assert!(loc.flush(&store).await);
    assert_eq!(store.batches().len(), 2);
    assert_eq!(store.batches()[1].len(), 3);
    assert_eq!(store.contacts("a@example.com"), ["sip:x@h1"]);
    assert!(store.contacts("b@example.com").is_empty());
    assert!(store.contacts("c@example.com").is_empty());
    assert_eq!(loc.len(), 1);

    // Nothing dirty: nothing written. An AOR written empty is forgotten; registering it
    // again starts afresh.
    assert!(loc.flush(&store).await);
    assert_eq!(store.batches().len(), 2);
    loc.update(update_of("b@example.com", &[("sip:z@h3", 60)]), now)
        .expect("b again");
    assert!(loc.flush(&store).await);
    assert_eq!(store.batches()[2], ["b@example.com"]);
    assert_eq!(store.contacts("b@example.com"), ["sip:z@h3"]);
}

#[tokio::test]
async fn refreshes_wait_for_the_refresh_round_material_changes_do_not() {
    let loc = Location::new(8);
    let now = Instant::now();
    let store = Recording::default();
    let mut a = update_of("a@example.com", &[("sip:x@h1", 60)]);
    loc.update(a.clone(), now).expect("registered");
    assert!(loc.flush(&store).await);
    assert_eq!(store.batches().len(), 1, "a new binding is written at once");
    let expiry = |s: &Recording| s.kept.get("a@example.com")[0].expires_at;
    let first = expiry(&store);

    // A refresh: only the expiry (and CSeq) moves. Not written by the next flush…
    a.cseq = 2;
    a.contacts[0].expires = 3600;
    loc.update(a.clone(), now).expect("refreshed");
    assert!(loc.flush(&store).await);
    assert_eq!(store.batches().len(), 1, "a refresh waits for its round");
    // … but by the refresh round (or at shutdown), with the new expiry.
    assert_eq!(loc.lock().promote_stale(), 1);
    assert!(loc.flush(&store).await);
    assert_eq!(store.batches().len(), 2);
    assert!(expiry(&store) > first, "the refreshed expiry is stored");
    assert_eq!(loc.lock().promote_stale(), 0, "written once");

    // The same contact from another flow, or a second contact, is material: written at once.
    a.cseq = 3;
    a.flow.peer = "192.0.2.8:5060".parse().expect("addr");
    loc.update(a.clone(), now).expect("moved");
    assert!(loc.flush(&store).await);
    assert_eq!(store.batches().len(), 3);
    a.cseq = 4;
    a.contacts.push(ContactUpdate {
        contact: "sip:y@h2".to_owned(),
        expires: 60,
        q: None,
    });
    loc.update(a.clone(), now).expect("second contact");
    assert!(loc.flush(&store).await);
    assert_eq!(store.batches().len(), 4);
    assert_eq!(store.contacts("a@example.com"), ["sip:x@h1", "sip:y@h2"]);

    // A refresh, then a material change before the round: one write carries both.
    a.cseq = 5;
    loc.update(a.clone(), now).expect("refreshed");
    a.cseq = 6;
    a.contacts.truncate(1);
    a.contacts[0].expires = 0;
    loc.update(a, now).expect("one removed");
    assert!(loc.flush(&store).await);
    assert_eq!(store.batches().len(), 5);
    assert_eq!(store.contacts("a@example.com"), ["sip:y@h2"]);
    assert_eq!(loc.lock().promote_stale(), 0, "nothing left to write");
}

#[tokio::test]
async fn the_writer_writes_pending_refreshes_at_shutdown() {
    let loc = Arc::new(Location::new(8));
    let now = Instant::now();
    let store = Arc::new(Recording::default());
    let mut a = update_of("a@example.com", &[("sip:x@h1", 60)]);
    loc.update(a.clone(), now).expect("registered");
    assert!(loc.flush(store.as_ref()).await);
    a.cseq = 2;
    a.contacts[0].expires = 3600;
    loc.update(a, now).expect("refreshed");
    let shutdown = CancellationToken::new();
    let writer = tokio::spawn(Arc::clone(&loc).write_behind(
        Arc::clone(&store) as Arc<dyn RegistrationStore>,
        shutdown.clone(),
    ));
    shutdown.cancel();
    writer.await.expect("the writer ends");
    assert_eq!(store.batches().len(), 2, "the refresh written at shutdown");
    assert!(store.kept.get("a@example.com")[0].expires_at > crate::ids::unix_now() + 3000);
}

#[tokio::test]
async fn a_failed_write_is_retried_and_a_refused_aor_holds_back_no_other() {
    let loc = Location::new(8);
    let now = Instant::now();
    let register = |aor: &str, cseq: u32| {
        let mut u = update_of(aor, &[("sip:x@h1", 60)]);
        u.cseq = cseq;
        loc.update(u, now).expect("registered");
        // A refresh waits for the refresh round; this test is about how writes fail.
        loc.lock().promote_stale();
    };
    for aor in ["a@example.com", "b@example.com", "c@example.com"] {
        register(aor, 1);
    }
    let sizes =
        |store: &Recording| -> Vec<usize> { store.batches().iter().map(Vec::len).collect() };
    let store = Recording::default();
    store.down.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(!loc.flush(&store).await);
    // The batch, then AOR by AOR until two failed in a row.
    assert_eq!(sizes(&store), [3, 1, 1]);
    store
        .down
        .store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(
        loc.flush(&store).await,
        "still dirty, written once the store is back"
    );
    for aor in ["a@example.com", "b@example.com", "c@example.com"] {
        assert_eq!(store.contacts(aor), ["sip:x@h1"]);
    }

    // The store refuses a: b and c are written all the same, then a alone.
    for aor in ["a@example.com", "b@example.com", "c@example.com"] {
        register(aor, 2);
    }
    store.refuse(&["a@example.com"]);
    let before = store.batches().len();
    assert!(!loc.flush(&store).await);
    assert_eq!(sizes(&store)[before..], [3, 1, 1, 1]);
    assert_eq!(store.kept.get("a@example.com")[0].cseq, 1);
    assert_eq!(store.kept.get("b@example.com")[0].cseq, 2);
    assert_eq!(store.kept.get("c@example.com")[0].cseq, 2);
    // From then on a goes alone, and the others in one batch.
    for aor in ["a@example.com", "b@example.com", "c@example.com"] {
        register(aor, 3);
    }
    let before = store.batches().len();
    assert!(!loc.flush(&store).await);
    assert_eq!(
        store.batches()[before..],
        [
            vec!["b@example.com", "c@example.com"],
            vec!["a@example.com"]
        ]
    );
    store.refuse(&[]);
    assert!(loc.flush(&store).await);
    assert_eq!(store.kept.get("a@example.com")[0].cseq, 3);
    assert_eq!(store.kept.get("c@example.com")[0].cseq, 3);
}

#[tokio::test]
async fn the_writer_collects_a_burst_into_one_batch() {
    let loc = Arc::new(Location::new(8));
    let store = Arc::new(Recording::default());
    let shutdown = CancellationToken::new();
    let writer = tokio::spawn(Arc::clone(&loc).write_behind(
        Arc::clone(&store) as Arc<dyn RegistrationStore>,
        shutdown.clone(),
    ));
    for i in 0..5 {
        loc.update(
            update_of(&format!("u{i}@example.com"), &[("sip:x@h", 60)]),
            Instant::now(),
        )
        .expect("registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(WRITE_DELAY + Duration::from_millis(300)).await;
    assert_eq!(store.batches().len(), 1, "{:?}", store.batches());
    assert_eq!(store.batches()[0].len(), 5);
    // On the way out, what is dirty is written at once.
    loc.update(
        update_of("late@example.com", &[("sip:x@h", 60)]),
        Instant::now(),
    )
    .expect("registered");
    shutdown.cancel();
    writer.await.expect("writer");
    assert_eq!(store.contacts("late@example.com"), ["sip:x@h"]);
}

#[test]
fn a_flow_stays_with_the_aor_that_registered_it_last() {
    let loc = Location::new(8);
    let now = Instant::now();
    let mut other = flow();
    other.peer = "198.51.100.9:5062".parse().expect("addr");
    loc.update(update_of("a@example.com", &[("sip:a@h:5062", 60)]), now)
        .expect("a");
    let mut b = update_of("b@example.com", &[("sip:b@H:5062;ob", 60)]);
    b.flow = other;
    loc.update(b, now).expect("b");
    assert_eq!(loc.flow_for("h:5062"), Some(other));
    assert_eq!(loc.remove("a@example.com"), 1);
    assert_eq!(loc.flow_for("h:5062"), Some(other), "b's flow is b's");
    assert_eq!(loc.remove("b@example.com"), 1);
    assert_eq!(loc.flow_for("h:5062"), None);
    assert_eq!(loc.flow_for("elsewhere:5060"), None);
}

#[test]
fn bindings_share_strings_and_expire_to_the_second() {
    let loc = Location::new(8);
    let now = Instant::now();
    let mut u = update("c1", 1, &[("sip:a@h1", 30), ("sip:a@h2", 90)]);
    u.user_agent = Some("Phone/1.0".to_owned());
    let b = loc.update(u, now).expect("registered");
    assert_eq!(b[0].call_id(), "c1");
    assert_eq!(b[0].user_agent(), Some("Phone/1.0"));
    assert_eq!(b[0].remaining(now), 30);
    assert!(b[0].path().is_empty());
    let looked = loc.lookup("alice@example.com", now + Duration::from_secs(29));
    assert_eq!(looked.len(), 2);
    assert_eq!(looked[1].contact(), "sip:a@h1");
    let looked = loc.lookup("alice@example.com", now + Duration::from_secs(30));
    assert_eq!(looked.len(), 1, "gone at its expiry");
    assert_eq!(looked[0].remaining(now + Duration::from_secs(30)), 60);
    let stored = loc.stored("alice@example.com");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].expires_at - stored[0].expires_at, 60);
    assert_eq!(stored[0].call_id, "c1");
}
