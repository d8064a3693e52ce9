//! `confab contacts …` and `confab presence-rules …` as an operator and a script run them: the
//! built binary on a data directory in a temporary directory, every change checked through
//! the management store itself, and every refusal shown to change nothing.
#![cfg(unix)]

mod common;

use common::store::*;
use confab_store::{ContactList, PresenceLevel, Watcher};

fn list_of(d: &Deployment, user: &str) -> ContactList {
    let who = addr(user);
    with_store(&d.data, |store| async move {
        store.contact_list(&who).await.expect("contact list")
    })
}

#[test]
fn contacts_groups_and_presence_rules_end_to_end() {
    let d = Deployment::new();
    d.add("alice@localhost", "password 1");
    d.add("bob@localhost", "password 2");
    let run = |args: &[&str]| {
        let out = d.run(args, None);
        assert_success(&out);
        stdout(&out)
    };

    run(&["contacts", "group", "add", "alice@localhost", "Team"]);
    run(&["contacts", "group", "add", "alice@localhost", "Partners"]);
    let added = run(&[
        "contacts",
        "add",
        "alice@localhost",
        "bob@localhost",
        "--name",
        "Bob Builder",
        "--group",
        "Team",
    ]);
    assert!(
        added.contains("bob@localhost is in the contact list of alice@localhost"),
        "{added}"
    );
    run(&[
        "contacts",
        "add",
        "alice@localhost",
        "carol@Partner.Example",
        "--group",
        "Partners",
    ]);
    run(&["contacts", "add", "alice@localhost", "dave@partner.example"]);

    let text = run(&["contacts", "list", "alice@localhost"]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("GROUP") && lines[0].contains("CONTACTS"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("Team") && lines[1].ends_with('1'),
        "{text}"
    );
    assert!(lines[2].starts_with("Partners"), "{text}");
    let contacts_at = lines
        .iter()
        .position(|l| l.starts_with("CONTACT "))
        .unwrap_or_else(|| panic!("no contact table: {text}"));
    assert!(
        lines[contacts_at + 1].starts_with("bob@localhost"),
        "{text}"
    );
    assert!(lines[contacts_at + 1].contains("Bob Builder"), "{text}");
    assert!(
        lines[contacts_at + 2].starts_with("carol@partner.example"),
        "{text}"
    );
    assert!(
        lines[contacts_at + 3].starts_with("dave@partner.example"),
        "{text}"
    );

    let listed = json(&d.run(&["contacts", "list", "alice@localhost", "--json"], None));
    assert_eq!(listed["user"], "alice@localhost");
    assert_eq!(listed["groups"][0]["name"], "Team");
    assert_eq!(listed["groups"][0]["contacts"], 1);
    assert_eq!(listed["contacts"][0]["address"], "bob@localhost");
    assert_eq!(listed["contacts"][0]["display_name"], "Bob Builder");
    assert_eq!(listed["contacts"][2]["group"], serde_json::Value::Null);

    run(&[
        "contacts",
        "group",
        "rename",
        "alice@localhost",
        "Team",
        "Work",
    ]);
    run(&[
        "contacts",
        "add",
        "alice@localhost",
        "dave@partner.example",
        "--group",
        "Work",
        "--update",
    ]);
    run(&["contacts", "remove", "alice@localhost", "bob@localhost"]);
    let removed = run(&[
        "contacts",
        "group",
        "remove",
        "alice@localhost",
        "Work",
        "--move-to-no-group",
    ]);
    assert!(
        removed.contains("1 contact(s) are now in no group"),
        "{removed}"
    );

    let list = list_of(&d, "alice@localhost");
    assert_eq!(
        list.groups
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>(),
        ["Partners"]
    );
    let shown: Vec<String> = list
        .contacts
        .iter()
        .map(|c| format!("{} {}", c.address, c.group.as_deref().unwrap_or("-")))
        .collect();
    assert_eq!(
        shown,
        ["carol@partner.example Partners", "dave@partner.example -"]
    );

    // Presence rules: one domain, one user; set twice is no change.
    run(&[
        "presence-rules",
        "set",
        "alice@localhost",
        "@Partner.Example",
        "blocked",
    ]);
    run(&[
        "presence-rules",
        "set",
        "alice@localhost",
        "bob@localhost",
        "workgroup",
    ]);
    let again = run(&[
        "presence-rules",
        "set",
        "alice@localhost",
        "bob@localhost",
        "workgroup",
    ]);
    assert!(again.contains("nothing changed"), "{again}");
    let text = run(&["presence-rules", "list", "alice@localhost"]);
    assert!(text.starts_with("WATCHER"), "{text}");
    assert!(
        text.contains("@partner.example") && text.contains("blocked"),
        "{text}"
    );
    let rules = json(&d.run(
        &["presence-rules", "list", "alice@localhost", "--json"],
        None,
    ));
    assert_eq!(rules[0]["watcher"], "bob@localhost");
    assert_eq!(rules[0]["level"], "workgroup");
    assert_eq!(rules[1]["watcher"], "@partner.example");
    run(&[
        "presence-rules",
        "remove",
        "alice@localhost",
        "bob@localhost",
    ]);
    let rules = list_of(&d, "alice@localhost").presence_rules;
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].watcher, Watcher::Domain("partner.example".into()));
    assert_eq!(rules[0].level, PresenceLevel::Blocked);
}

#[test]
fn refusals_say_what_to_do_and_change_nothing() {
    let d = Deployment::new();
    d.add("alice@localhost", "password 1");
    let ok = d.run(
        &["contacts", "group", "add", "alice@localhost", "Team"],
        None,
    );
    assert_success(&ok);
    let ok = d.run(
        &[
            "contacts",
            "add",
            "alice@localhost",
            "bob@localhost",
            "--group",
            "Team",
        ],
        None,
    );
    assert_success(&ok);
    let before = list_of(&d, "alice@localhost");
    let head = d.changes();

    let refused = [
        (
            &["contacts", "add", "alice@localhost", "bob@localhost"][..],
            1,
            "--update",
        ),
        (
            &[
                "contacts",
                "add",
                "alice@localhost",
                "carol@localhost",
                "--group",
                "Nope",
            ][..],
            1,
            "confab contacts group add alice@localhost",
        ),
        (
            &["contacts", "group", "remove", "alice@localhost", "Team"][..],
            1,
            "--move-to-no-group",
        ),
        (
            &["contacts", "group", "add", "alice@localhost", "Team"][..],
            1,
            "already",
        ),
        (
            &["contacts", "remove", "alice@localhost", "carol@localhost"][..],
            1,
            "confab contacts list alice@localhost",
        ),
        (
            &["contacts", "list", "nobody@localhost"][..],
            1,
            "confab user list",
        ),
        (
            &["presence-rules", "remove", "alice@localhost", "@localhost"][..],
            1,
            "confab presence-rules list alice@localhost",
        ),
        (
            &["contacts", "add", "alice@localhost", "alice@localhost"][..],
            1,
            "own address",
        ),
        (
            &["contacts", "group", "add", "alice@localhost", "a\tb"][..],
            1,
            "printable",
        ),
        (
            &[
                "presence-rules",
                "set",
                "alice@localhost",
                "*.example.com",
                "blocked",
            ][..],
            2,
            "@DOMAIN",
        ),
        (
            &[
                "presence-rules",
                "set",
                "alice@localhost",
                "@example.com",
                "public",
            ][..],
            2,
            "friends-and-family",
        ),
    ];
    for (args, code, fragment) in refused {
        let out = d.run(args, None);
        assert_fails(&out, code, fragment);
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
    assert_eq!(list_of(&d, "alice@localhost"), before);
    assert_eq!(d.changes(), head, "nothing changed");
}
