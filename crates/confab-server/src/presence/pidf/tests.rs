use proptest::prelude::*;

use super::*;

/// What PJSIP's pjsua publishes (pjsip-simple's PIDF with RPID person), written for this
/// test in that shape: prefixed namespaces, the activity and note on the person.
const PJSUA_BUSY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence entity="sip:alice@example.com" xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid">
 <tuple id="pj0b1c2d3e">
  <status>
   <basic>open</basic>
  </status>
  <contact>sip:alice@192.0.2.10:5060</contact>
  <timestamp>2026-11-22T10:00:00.000Z</timestamp>
  <note>In a meeting</note>
 </tuple>
 <dm:person id="pj1f2e3d4c">
  <rpid:activities>
   <rpid:busy />
  </rpid:activities>
  <dm:note>In a meeting</dm:note>
 </dm:person>
</presence>
"#;

const MINIMAL: &str = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple id="x"><status><basic>open</basic></status><note>Hi &amp; welcome</note></tuple></presence>"#;

const PREFIXED: &str = r#"<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf" xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" xmlns:d="urn:ietf:params:xml:ns:pidf:data-model" entity="pres:a@b">
<p:tuple id="t1"><p:status><p:basic>open</p:basic></p:status><d:deviceID>urn:uuid:1</d:deviceID></p:tuple>
<d:person id="q"><r:activities><r:other>Do not disturb</r:other></r:activities></d:person>
<p:unknown-extension><p:note>ignored</p:note></p:unknown-extension>
</p:presence>"#;

/// RFC 3863 §3.4's example, retyped.
const RFC3863: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:im="urn:ietf:params:xml:ns:pidf:im" xmlns:myex="http://id.example.com/presence/" entity="pres:someone@example.com">
  <tuple id="bs35r9">
    <status>
      <basic>open</basic>
      <im:im>busy</im:im>
      <myex:location>home</myex:location>
    </status>
    <contact priority="0.8">im:someone@mobilecarrier.net</contact>
    <note xml:lang="en">Don't Disturb Please!</note>
    <note xml:lang="fr">Ne derangez pas, s'il vous plait</note>
    <timestamp>2001-10-27T16:49:29Z</timestamp>
  </tuple>
  <tuple id="eg92n8">
    <status>
      <basic>open</basic>
    </status>
    <contact priority="1.0">mailto:someone@example.com</contact>
  </tuple>
  <note>I'll be in Tokyo next week</note>
</presence>"#;

fn publication(availability: Availability, note: Option<&str>) -> Publication {
    let body = render(
        "sip:x@example.com",
        &View {
            availability,
            note: note.map(Into::into),
            devices: Vec::new(),
        },
        Level::Colleagues,
    );
    parse(body.as_bytes()).expect("own document")
}

#[test]
fn pjsua_busy_with_note() {
    let p = parse(PJSUA_BUSY.as_bytes()).expect("pjsua body");
    assert_eq!(p.availability, Availability::Busy);
    assert_eq!(p.note.as_deref(), Some("In a meeting"));
    assert_eq!(p.devices.len(), 1);
    let d = &p.devices[0];
    assert_eq!(d.tuple_id, "pj0b1c2d3e");
    assert_eq!(d.basic, Basic::Open);
    assert_eq!(d.contact.as_deref(), Some("sip:alice@192.0.2.10:5060"));
    assert_eq!(d.timestamp.as_deref(), Some("2026-11-22T10:00:00.000Z"));
}

#[test]
fn minimal_and_prefixed_and_rfc_example() {
    let p = parse(MINIMAL.as_bytes()).expect("minimal");
    assert_eq!(p.availability, Availability::Available);
    assert_eq!(p.note.as_deref(), Some("Hi & welcome"));

    let p = parse(PREFIXED.as_bytes()).expect("prefixed");
    assert_eq!(p.availability, Availability::DoNotDisturb);
    assert_eq!(p.devices[0].device_id.as_deref(), Some("urn:uuid:1"));
    assert_eq!(p.note, None);

    let p = parse(RFC3863.as_bytes()).expect("rfc 3863");
    assert_eq!(p.devices.len(), 2);
    assert_eq!(p.availability, Availability::Available);
    assert_eq!(p.note.as_deref(), Some("Don't Disturb Please!"));
}

#[test]
fn closed_is_offline_and_person_only_documents() {
    let closed = MINIMAL.replace("open", "closed");
    let p = parse(closed.as_bytes()).expect("closed");
    assert_eq!(p.availability, Availability::Offline);
    let person_only = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:a@b"><dm:person id="p"><rpid:activities><rpid:vacation/></rpid:activities><dm:note>Back Monday</dm:note></dm:person></presence>"#;
    let p = parse(person_only.as_bytes()).expect("person only");
    assert!(p.devices.is_empty());
    assert_eq!(p.availability, Availability::Away);
    assert_eq!(p.note.as_deref(), Some("Back Monday"));
    let empty_root = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/>"#;
    assert_eq!(
        parse(empty_root.as_bytes()).expect("empty").availability,
        Availability::Available
    );
}

#[test]
fn malformed_documents_are_refused() {
    type Expect = fn(&PidfError) -> bool;
    let cases: &[(&str, Expect)] = &[
        ("", |e| matches!(e, PidfError::NotPidf)),
        ("<presence", |e| matches!(e, PidfError::Xml(_))),
        (
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple>"#,
            |e| matches!(e, PidfError::Xml(_)),
        ),
        (
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple></note></presence>"#,
            |e| matches!(e, PidfError::Xml(_)),
        ),
        (r#"<presence entity="sip:a@b"/>"#, |e| {
            matches!(e, PidfError::NotPidf)
        }),
        (
            r#"<presence xmlns="urn:example:other" entity="sip:a@b"/>"#,
            |e| matches!(e, PidfError::NotPidf),
        ),
        (r#"<presence xmlns="urn:ietf:params:xml:ns:pidf"/>"#, |e| {
            matches!(e, PidfError::NoEntity)
        }),
        (
            r#"<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><note>&a;</note></presence>"#,
            |e| matches!(e, PidfError::DocType),
        ),
        (
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><note>&a;</note></presence>"#,
            |e| matches!(e, PidfError::Xml(_)),
        ),
    ];
    for (doc, expected) in cases {
        let e = parse(doc.as_bytes()).expect_err(doc);
        assert!(expected(&e), "{doc}: {e:?}");
    }
    let many = format!(
        r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">{}</presence>"#,
        r#"<tuple id="t"><status><basic>open</basic></status></tuple>"#.repeat(MAX_TUPLES + 1)
    );
    assert_eq!(parse(many.as_bytes()), Err(PidfError::TooLarge("tuples")));
    let deep = format!(
        r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">{}{}</presence>"#,
        "<x>".repeat(MAX_DEPTH + 1),
        "</x>".repeat(MAX_DEPTH + 1)
    );
    assert_eq!(parse(deep.as_bytes()), Err(PidfError::TooLarge("nesting")));
    let long_note = MINIMAL.replace("Hi &amp; welcome", &"n".repeat(MAX_NOTE + 1));
    assert_eq!(
        parse(long_note.as_bytes()),
        Err(PidfError::TooLarge("note"))
    );
    assert_eq!(
        parse(&vec![b' '; MAX_DOCUMENT + 1]),
        Err(PidfError::TooLarge("document"))
    );
}

#[test]
fn composition_most_available_wins() {
    let busy = publication(Availability::Busy, Some("call"));
    let free = publication(Availability::Available, Some("free"));
    let away = publication(Availability::Away, Some("lunch"));
    let gone = publication(Availability::Offline, None);
    let v = compose([&busy, &free], true);
    assert_eq!(v.availability, Availability::Available);
    assert_eq!(v.note.as_deref(), Some("free"));
    assert_eq!(v.devices.len(), 2);
    let v = compose([&away, &gone], false);
    assert_eq!(v.availability, Availability::Away);
    assert_eq!(v.note.as_deref(), Some("lunch"));
    // The winner has no note: the latest note there is.
    let quiet = publication(Availability::Available, None);
    let v = compose([&busy, &quiet], true);
    assert_eq!(
        (v.availability, v.note.as_deref()),
        (Availability::Available, Some("call"))
    );
    assert_eq!(compose([], true).availability, Availability::Available);
    assert_eq!(compose([], false).availability, Availability::Offline);
}

#[test]
fn blocked_and_offline_are_the_same_bytes() {
    let e = "sip:alice@example.com";
    let really_offline = compose([], false);
    let busy = publication(Availability::Busy, Some("secret"));
    let views = [
        compose([&busy], true),
        compose([], true),
        really_offline.clone(),
        compose([&publication(Availability::Offline, Some("gone"))], true),
    ];
    for v in &views {
        assert_eq!(render(e, v, Level::Blocked), offline(e));
    }
    for level in [
        Level::Colleagues,
        Level::Workgroup,
        Level::FriendsAndFamily,
        Level::Blocked,
    ] {
        assert_eq!(render(e, &really_offline, level), offline(e));
    }
    let p = parse(offline(e).as_bytes()).expect("offline document");
    assert_eq!(p.availability, Availability::Offline);
}

#[test]
fn round_trip_at_every_level() {
    let e = "sip:alice@example.com";
    for a in Availability::ALL {
        for level in [Level::Colleagues, Level::Workgroup, Level::FriendsAndFamily] {
            let mut pub_ = parse(PJSUA_BUSY.as_bytes()).expect("pjsua");
            pub_.availability = a;
            pub_.note = Some("a <note> & more".into());
            let v = compose([&pub_], true);
            let doc = render(e, &v, level);
            let back = parse(doc.as_bytes()).expect("own document");
            assert_eq!(back.availability, a, "{level:?} {a:?}: {doc}");
            if a != Availability::Offline {
                assert_eq!(back.note.as_deref(), Some("a <note> & more"));
            }
            let shows_contact = doc.contains("sip:alice@192.0.2.10");
            assert_eq!(
                shows_contact,
                level == Level::FriendsAndFamily && a != Availability::Offline
            );
            assert!(!doc.contains("pj0b1c2d3e"), "publisher's ids never leak");
        }
    }
    assert!(
        render("sip:a\"<b>@x", &compose([], true), Level::Colleagues).contains("a&quot;&lt;b&gt;")
    );
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn mutated_documents_never_panic(cuts in proptest::collection::vec((0usize..2000, any::<u8>()), 1..8)) {
        let mut doc = PJSUA_BUSY.as_bytes().to_vec();
        for (at, b) in cuts {
            let at = at % doc.len();
            doc[at] = b;
        }
        let _ = parse(&doc);
    }
}
