use super::*;

const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK-a1;rport\r\n\
Route: <sip:192.0.2.1:5060;lr>\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=f1\r\nTo: <sip:bob@example.com>\r\n\
Call-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.7:5070>\r\n\
Proxy-Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"n\"\r\n\
Proxy-Authorization: Digest username=\"alice\", realm=\"edge.example\", nonce=\"m\"\r\n\
Content-Length: 0\r\n\r\n";

fn listeners() -> (Listeners, ServiceConfig) {
    let config = ServiceConfig::new(["example.com"]);
    let l = Listeners::new(&config);
    l.set(vec![
        "udp://192.0.2.1:5060".parse().expect("uri"),
        "tcp://0.0.0.0:5070".parse().expect("uri"),
    ]);
    (l, config)
}

fn source() -> Source {
    Source {
        transport: Transport::Udp,
        peer: "192.0.2.7:5070".parse().expect("addr"),
        local: "192.0.2.1:5060".parse().expect("addr"),
    }
}

#[test]
fn a_request_is_rewritten_for_a_contact() {
    let (l, config) = listeners();
    let req = Message::parse(Bytes::from_static(INVITE.as_bytes())).expect("parse");
    let target = Target {
        request_uri: Some("sip:bob@192.0.2.9:5062".to_owned()),
        flow: Source {
            peer: "192.0.2.9:5062".parse().expect("addr"),
            ..source()
        },
        route: vec!["<sip:edge.example;lr>".to_owned()],
    };
    let hash = loop_hash(&RandomState::new(), &req);
    let via = l.via(&target.flow, &branch(&hash, "0"));
    let rr = l.record_route(&source());
    assert_eq!(rr, "<sip:192.0.2.1:5060;transport=udp;lr>");
    let own = |realm: &str| config.is_local_domain(realm);
    let out = build(&req, &target, &via, Some(&rr), true, &own).expect("built");
    let out = Message::parse(out).expect("reparse");
    // Our realm's credentials stay here; the next hop's go on.
    let realms: Vec<Option<String>> = out
        .proxy_authorization()
        .map(|c| c.expect("parses").realm().map(|r| r.into_owned()))
        .collect();
    assert_eq!(realms, [Some("edge.example".to_owned())]);
    assert_eq!(out.request_uri_str(), Some("sip:bob@192.0.2.9:5062"));
    assert_eq!(out.max_forwards(), Ok(Some(69)));
    let routes: Vec<String> = out
        .routes()
        .map(|r| r.expect("route").uri().as_str().to_owned())
        .collect();
    assert_eq!(routes, ["sip:edge.example;lr"]);
    assert_eq!(out.vias().count(), 2);
    assert_eq!(
        out.via().expect("via").branch().map(str::to_owned),
        Some(branch(&hash, "0"))
    );
    assert_eq!(out.record_routes().count(), 1);
    // Coming back in the same form, it has looped; elsewhere it has not.
    assert!(has_looped(&out, &hash, &l));
    assert!(!has_looped(&req, &hash, &l));
    // The response path: our Via popped.
    let resp =
        Message::parse(confab_sip::builder::ResponseBuilder::new(&out, 180, "Ringing").build())
            .expect("response");
    let up = Message::parse(upstream(&resp).expect("popped")).expect("reparse");
    assert_eq!(up.via().expect("via").branch(), Some("z9hG4bK-a1"));
}

#[test]
fn our_uris_and_resolution() {
    let (l, config) = listeners();
    let ours = |s: &str| l.is_ours(&Uri::parse(s).expect("uri"), &config);
    assert!(ours("sip:192.0.2.1:5060;lr"));
    assert!(ours("sip:192.0.2.1;lr"), "default port");
    assert!(!ours("sip:192.0.2.1:5080;lr"));
    assert!(ours("sip:example.com;lr"));
    assert!(
        ours("sip:198.51.100.1:5070;transport=tcp"),
        "wildcard TCP listener"
    );
    assert!(!ours("sip:other.example;lr"));
    let loc = Location::new(8);
    let flow = l.resolve("sip:bob@192.0.2.9:5062", &loc).expect("resolved");
    assert_eq!(flow.transport, Transport::Udp);
    assert_eq!(flow.peer.to_string(), "192.0.2.9:5062");
    assert_eq!(flow.local.to_string(), "192.0.2.1:5060");
    let tcp = l
        .resolve("sip:bob@192.0.2.9;transport=tcp", &loc)
        .expect("resolved");
    assert_eq!(tcp.peer.to_string(), "192.0.2.9:5060");
    assert_eq!(l.resolve("sip:bob@host.example", &loc), None, "no DNS");
    assert_eq!(
        l.resolve("sip:bob@192.0.2.9;transport=tls", &loc),
        None,
        "no listener"
    );
    let config = ServiceConfig {
        advertise: Some("sip.example.com".to_owned()),
        ..config
    };
    let l2 = Listeners::new(&config);
    assert_eq!(
        l2.sent_by("0.0.0.0:5070".parse().expect("addr")),
        "sip.example.com:5070"
    );
}
