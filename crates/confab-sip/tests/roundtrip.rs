//! Property tests: what Confab builds, Confab parses back to the same values; no input makes
//! the parser, the typed accessors, validation or framing panic.

use bytes::Bytes;
use confab_sip::builder::{RequestBuilder, ResponseBuilder};
use confab_sip::edit::Edit;
use confab_sip::framing::{Frame, StreamFramer};
use confab_sip::validate::{check_request, Policy};
use confab_sip::Message;
use proptest::prelude::*;

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,15}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z]([a-z0-9-]{0,8}[a-z0-9])?){0,3}",
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
    ]
}

#[derive(Debug, Clone)]
struct Req {
    method: String,
    user: String,
    host: String,
    port: Option<u16>,
    branch: String,
    from_tag: String,
    call_id: String,
    seq: u32,
    display: String,
    max_forwards: u8,
    body: Vec<u8>,
}

fn req() -> impl Strategy<Value = Req> {
    (
        prop_oneof![
            Just("INVITE".to_owned()),
            Just("MESSAGE".to_owned()),
            Just("REGISTER".to_owned()),
            "[A-Z]{3,10}"
        ],
        "[a-z0-9_.!~*'()-]{1,12}",
        host(),
        proptest::option::of(1u16..),
        token(),
        token(),
        "[A-Za-z0-9.!%*_+`'~()<>:/?{}-]{1,20}(@[a-z0-9.]{1,10})?",
        0u32..(1 << 31),
        "[A-Za-z0-9 ,<>@;:\"]{0,20}",
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(
            |(
                method,
                user,
                host,
                port,
                branch,
                from_tag,
                call_id,
                seq,
                display,
                max_forwards,
                body,
            )| Req {
                method,
                user,
                host,
                port,
                branch,
                from_tag,
                call_id,
                seq,
                display,
                max_forwards,
                body,
            },
        )
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn build(r: &Req) -> Bytes {
    let port = r.port.map(|p| format!(":{p}")).unwrap_or_default();
    let uri = format!("sip:{}@{}{}", r.user, r.host, port);
    RequestBuilder::new(r.method.clone(), uri.clone())
        .via(
            "UDP",
            &format!("{}{}", r.host, port),
            &format!("z9hG4bK{}", r.branch),
        )
        .header("Max-Forwards", r.max_forwards.to_string())
        .header(
            "From",
            format!("{} <{}>;tag={}", quote(&r.display), uri, r.from_tag),
        )
        .header("To", format!("<{uri}>"))
        .header("Call-ID", r.call_id.clone())
        .header("CSeq", format!("{} {}", r.seq, r.method))
        .header("Contact", format!("<{uri}>;expires=60;q=0.5"))
        .body("application/octet-stream", r.body.clone())
        .build()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn built_requests_parse_back(r in req()) {
        let m = Message::parse(build(&r)).expect("what we build parses");
        prop_assert_eq!(m.method_str(), Some(r.method.as_str()));
        let ruri = m.request_uri().expect("request").expect("uri");
        prop_assert_eq!(ruri.user(), Some(r.user.as_str()));
        prop_assert_eq!(ruri.port(), r.port);
        let via = m.via().expect("via");
        let branch = format!("z9hG4bK{}", r.branch);
        prop_assert_eq!(via.branch(), Some(branch.as_str()));
        prop_assert_eq!(via.port(), r.port);
        let from = m.from().expect("from");
        prop_assert_eq!(from.tag(), Some(r.from_tag.as_str()));
        let dn = from.display_name().expect("display name");
        prop_assert_eq!(dn.text(), r.display.as_str());
        prop_assert_eq!(m.call_id(), Ok(r.call_id.as_str()));
        let cseq = m.cseq().expect("cseq");
        prop_assert_eq!((cseq.seq, cseq.method), (r.seq, r.method.as_str()));
        prop_assert_eq!(m.max_forwards(), Ok(Some(r.max_forwards)));
        let c = m.contacts().next().expect("contact").expect("parses");
        prop_assert_eq!((c.expires(), c.q()), (Some(60), Some(500)));
        prop_assert_eq!(m.body(), &r.body[..]);
        prop_assert!(check_request(&m, &Policy::default()).is_ok());

        // A response built from it carries the same transaction identifiers.
        let resp = ResponseBuilder::new(&m, 486, "Busy Here").to_tag("t").build();
        let resp = Message::parse(resp).expect("response parses");
        prop_assert_eq!(resp.via().expect("via").branch(), Some(branch.as_str()));
        prop_assert_eq!(resp.cseq().expect("cseq").seq, r.seq);
        prop_assert_eq!(resp.to().expect("to").tag(), Some("t"));

        // Proxy edits keep everything else and the body intact.
        if r.max_forwards > 0 {
            let mut e = Edit::new(&m);
            e.push_via("SIP/2.0/UDP proxy.example;branch=z9hG4bKproxy").decrement_max_forwards().expect("mf");
            let fwd = Message::parse(e.apply().expect("apply")).expect("edited parses");
            prop_assert_eq!(fwd.max_forwards(), Ok(Some(r.max_forwards - 1)));
            prop_assert_eq!(fwd.vias().count(), 2);
            prop_assert_eq!(fwd.body(), &r.body[..]);
        }

        // The same bytes framed from a stream in two pieces give the same message.
        let wire = build(&r);
        let mut f = StreamFramer::new(65_535);
        let cut = wire.len() / 3;
        f.push(&wire[..cut]);
        prop_assert!(f.next_frame().expect("partial ok").is_none());
        f.push(&wire[cut..]);
        match f.next_frame().expect("frame") {
            Some(Frame::Message(sm)) => prop_assert_eq!(sm.as_bytes(), m.as_bytes()),
            other => prop_assert!(false, "expected a message, got {:?}", other),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let bytes = Bytes::from(data.clone());
        match Message::parse(bytes) {
            Ok(m) => {
                m.fuzz_touch_all();
                let _ = check_request(&m, &Policy::default());
            }
            Err(e) => {
                if let Some(m) = e.partial() {
                    m.fuzz_touch_all();
                }
            }
        }
        let mut f = StreamFramer::new(1024);
        for piece in data.chunks(7) {
            f.push(piece);
            while let Ok(Some(_)) = f.next_frame() {}
        }
    }

    #[test]
    fn mutated_messages_never_panic(r in req(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut wire = build(&r).to_vec();
        let i = pos.index(wire.len());
        wire[i] = byte;
        if let Ok(m) = Message::parse(Bytes::from(wire)) {
            m.fuzz_touch_all();
            let _ = check_request(&m, &Policy::default());
        }
    }
}
