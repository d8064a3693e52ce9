//! The document's checks, each problem at its place; diffs; export and parse round trips.

use confab_store::{Pool, PoolKind, Site, TopologySpec};
use proptest::prelude::*;

use super::diff::diff;
use super::export::to_document;
use super::{check_document, Problem, Severity};

const GOOD: &str = include_str!("../../../confab/tests/data/topology/good.toml");
const BAD: &str = include_str!("../../../confab/tests/data/topology/bad.toml");

fn problems(text: &str) -> Vec<String> {
    match check_document(text) {
        Ok(c) => panic!("expected problems, got {:?}", c.spec),
        Err(p) => p.iter().map(Problem::to_string).collect(),
    }
}

#[test]
fn the_good_example_passes_with_its_warning() {
    let checked = check_document(GOOD).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(checked.spec.domains, ["example.com", "corp.example.com"]);
    assert_eq!(checked.spec.pools.len(), 4);
    assert_eq!(checked.warnings.len(), 1);
    let w = &checked.warnings[0];
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!(w.pos.to_string(), "14:1");
    assert!(w.message.contains("cannot reach it"), "{w}");
    let lyon = checked
        .spec
        .pools
        .iter()
        .find(|p| p.name == "fe-lyon")
        .expect("fe-lyon");
    assert_eq!(lyon.servers, ["udp://[::1]:5070"]);
    assert_eq!(lyon.pair.as_deref(), Some("fe-paris"));
}

#[test]
fn every_problem_of_the_bad_example_with_its_place() {
    let got = problems(BAD);
    let want = [
        "1:27: domain 'example.com' is listed twice",
        "1:42: 'not a domain' is not a SIP domain",
        "2:1: unknown key 'colour' at the top of the document",
        "8:8: site 'paris' is listed twice",
        "13:8: pool 'fe-paris' is in site 'berlin', which the document does not list",
        "14:36: 'http://127.0.0.1:80' is not a server address",
        "14:59: 'udp://localhost:5060' is not a server address",
        "15:8: pool 'fe-paris' is paired with itself",
        "16:1: unknown key 'weight' in a [[pool]]",
        "21:12: server udp://127.0.0.1:5070 is a server of pool 'fe-paris' too (at 14:12)",
        "22:8: pool 'fe-lyon' is paired with 'nowhere', which the document does not list",
        "24:1: front-end pool 'fe-lyon' lists no servers",
        "25:8: pool 'fe-lyon' is listed twice",
        "29:8: '-bad name' is not a valid pool name",
        "28:1: legacy pool '-bad name' has no next_hop",
        "31:1: legacy pool '-bad name' lists servers",
        "33:1: a [[pool]] has no name",
        "34:8: unknown pool kind 'edge'",
    ];
    for w in want {
        assert!(
            got.iter().any(|g| g.starts_with(w)),
            "missing {w:?} in {got:#?}"
        );
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
    assert!(
        got.iter().all(|g| g.ends_with(')')),
        "every problem has a fix: {got:#?}"
    );
}

#[test]
fn syntax_errors_and_types_have_places() {
    let got = problems("domains = [\"example.com\"\n[[pool]]\n");
    assert!(
        got[0].starts_with("2:") && got[0].contains("not valid TOML"),
        "{got:?}"
    );
    let got = problems("domains = \"example.com\"\n[[pool]]\nname = 7\nkind = \"legacy\"\nnext_hop = \"udp://127.0.0.1:5090\"\n");
    assert!(
        got.iter()
            .any(|g| g.starts_with("1:11: 'domains' is a string")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("3:8: 'name' is an integer")),
        "{got:?}"
    );
    let got = problems("domains = []\n");
    assert!(got[0].starts_with("1:1: domains is empty"), "{got:?}");
    let got = problems("[[site]]\nname = \"x\"\n");
    assert!(
        got[0].starts_with("1:1: the document lists no SIP domains"),
        "{got:?}"
    );
}

#[test]
fn pairs_must_be_mutual_and_between_front_ends() {
    let text = "domains = [\"example.com\"]\n\
        [[pool]]\nname = \"a\"\nkind = \"front-end\"\nservers = [\"udp://127.0.0.1:5001\"]\npair = \"b\"\n\
        [[pool]]\nname = \"b\"\nkind = \"front-end\"\nservers = [\"udp://127.0.0.1:5002\"]\npair = \"c\"\n\
        [[pool]]\nname = \"c\"\nkind = \"legacy\"\nnext_hop = \"udp://127.0.0.1:5003\"\n";
    let got = problems(text);
    assert!(
        got.iter()
            .any(|g| g.starts_with("6:8: pool 'a' is paired with 'b', but 'b' is paired with 'c'")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("11:8: pool 'b' pairs with 'c', and a legacy pool")),
        "{got:#?}"
    );
}

#[test]
fn store_checks_name_the_users_to_move() {
    let checked = check_document(GOOD).expect("valid");
    let homed = [("old".to_owned(), 3), ("default".to_owned(), 5)].into();
    let in_domain = [
        ("gone.example".to_owned(), 2),
        ("example.com".to_owned(), 1),
    ]
    .into();
    let got: Vec<String> = super::validate::check_against(&checked, &homed, &in_domain)
        .iter()
        .map(Problem::to_string)
        .collect();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        got[0].starts_with("1:1: the document removes pool 'old', the home pool of 3"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("2:1: the document removes SIP domain 'gone.example'"),
        "{got:?}"
    );
}

#[test]
fn uris() {
    use super::parse_uri;
    assert_eq!(
        parse_uri("UDP://127.0.0.1:5060").as_deref(),
        Ok("udp://127.0.0.1:5060")
    );
    assert_eq!(
        parse_uri("ws://[::1]:8080").as_deref(),
        Ok("ws://[::1]:8080")
    );
    for bad in [
        "udp://127.0.0.1",
        "udp://127.0.0.1:0",
        "sip:127.0.0.1:5060",
        "wss://127.0.0.1:1",
        "tcp://host:5060",
        "tcp://::1:5060",
    ] {
        assert!(parse_uri(bad).is_err(), "{bad}");
    }
}

#[test]
fn diff_names_every_change() {
    let now = check_document(GOOD).expect("valid").spec;
    let mut next = now.clone();
    next.domains = vec!["example.com".into(), "new.example".into()];
    next.sites.retain(|s| s.name != "lyon");
    next.sites[0].description = None;
    next.pools.retain(|p| p.name != "fe-lyon");
    for p in &mut next.pools {
        p.pair = None;
        if p.name == "kamailio" {
            p.next_hop = Some("tcp://127.0.0.1:5091".into());
            p.site = None;
        }
    }
    let d = diff(&now, &next);
    assert_eq!(d.domains_added, ["new.example"]);
    assert_eq!(d.domains_removed, ["corp.example.com"]);
    assert_eq!(d.sites_removed, ["lyon"]);
    assert_eq!(d.pools_removed, ["fe-lyon"]);
    let lines = d.lines();
    assert!(
        lines.contains(
            &"~ pool kamailio: next_hop udp://127.0.0.1:5090 -> tcp://127.0.0.1:5091".to_owned()
        ),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"~ pool fe-paris: pair fe-lyon -> (none)".to_owned()),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"~ site paris: description Paris data centre -> (none)".to_owned()),
        "{lines:#?}"
    );
    assert!(diff(&now, &now).is_empty());
}

#[test]
fn export_parses_back_to_the_same_topology() {
    let spec = check_document(GOOD).expect("valid").spec;
    let text = to_document(&spec, "exported\nfor a test").expect("export");
    assert!(text.starts_with("# exported\n# for a test\n"), "{text}");
    let again = check_document(&text).unwrap_or_else(|p| panic!("{p:#?}\n{text}"));
    assert_eq!(again.spec, spec);
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,8}"
}

prop_compose! {
    fn topology()(
        domains in proptest::collection::btree_set("[a-z]{1,6}\\.(com|org)", 1..4),
        sites in proptest::collection::btree_map(name(), proptest::option::of("[ -~]{0,20}"), 0..3),
        pools in proptest::collection::btree_map(name(), (any::<bool>(), 0u8..3, any::<u8>()), 1..5),
    ) -> TopologySpec {
        let sites: Vec<Site> = sites.into_iter().map(|(name, description)| Site { name, description }).collect();
        let mut port = 5000u16;
        let pools = pools.into_iter().map(|(name, (legacy, servers, pick))| {
            let site = (!sites.is_empty() && pick % 2 == 0).then(|| sites[usize::from(pick) % sites.len()].name.clone());
            let mut next = || { port += 1; format!("udp://127.0.0.1:{port}") };
            if legacy {
                Pool { name, kind: PoolKind::Legacy, site, next_hop: Some(next()), servers: Vec::new(), pair: None }
            } else {
                Pool { name, kind: PoolKind::Confab, site, next_hop: None, servers: (0..servers).map(|_| next()).collect(), pair: None }
            }
        }).collect();
        TopologySpec { domains: domains.into_iter().collect(), sites, pools }
    }
}

proptest! {
    #[test]
    fn export_round_trips(spec in topology()) {
        let text = to_document(&spec, "proptest").expect("export");
        let again = check_document(&text).map_err(|p| TestCaseError::fail(format!("{p:#?}\n{text}")))?;
        prop_assert_eq!(again.spec, spec);
    }
}

#[test]
fn the_documented_example_is_valid() {
    let text = include_str!("../../../../docs/topology.example.toml");
    let checked = check_document(text).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(checked.spec.pools.len(), 4);
    assert_eq!(checked.warnings.len(), 1);
}
