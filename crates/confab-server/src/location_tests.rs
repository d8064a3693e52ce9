use super::*;
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
        .map(|b| b.contact)
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
    assert_eq!(b[0].path, ["<sip:edge.example;lr>"]);
    assert_eq!(b[0].flow, flow());
}
