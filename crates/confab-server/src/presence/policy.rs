//! Who may see a presentity, and how much: the presentity's presence rules, its contact list
//! and the deployment's default for everyone else, after Lync's access levels.
//!
//! For a watcher, in this order:
//!
//! 1. the presentity itself sees everything (friends and family);
//! 2. a rule for the watcher's own address decides;
//! 3. a watcher on the presentity's contact list is allowed, as a colleague;
//! 4. a rule for the watcher's whole domain decides;
//! 5. otherwise the default ([`WatcherDefault`]): an access level, or *pending*, when the
//!    presentity is asked (watcher information, RFC 3857) and the watcher waits until a rule
//!    or a contact-list entry decides.
//!
//! A blocked watcher is not refused: its subscription is active and its NOTIFYs carry the
//! document of a user who is offline (see [`super::pidf::offline`]), so it cannot tell.

use std::collections::{HashMap, HashSet};

use super::pidf::Level;

/// What a watcher with no rule and not on the contact list gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatcherDefault {
    /// The subscription waits, pending, until the presentity decides.
    Pending,
    /// This access level.
    Allow(Level),
}

impl WatcherDefault {
    /// The setting's name: `pending`, or a level's (`blocked`, `colleagues`, `workgroup`,
    /// `friends-and-family`).
    pub fn as_str(self) -> &'static str {
        match self {
            WatcherDefault::Pending => "pending",
            WatcherDefault::Allow(level) => level_name(level),
        }
    }

    /// Parses the setting (case-insensitive); `None` for anything else.
    pub fn parse(text: &str) -> Option<WatcherDefault> {
        let text = text.trim().to_ascii_lowercase();
        if text == "pending" {
            return Some(WatcherDefault::Pending);
        }
        parse_level(&text).map(WatcherDefault::Allow)
    }
}

/// The stored name of a level, as `confab presence-rules` writes it.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Blocked => "blocked",
        Level::Colleagues => "colleagues",
        Level::Workgroup => "workgroup",
        Level::FriendsAndFamily => "friends-and-family",
    }
}

/// A level from its stored name.
pub fn parse_level(name: &str) -> Option<Level> {
    match name.trim().to_ascii_lowercase().as_str() {
        "blocked" => Some(Level::Blocked),
        "colleagues" => Some(Level::Colleagues),
        "workgroup" => Some(Level::Workgroup),
        "friends-and-family" => Some(Level::FriendsAndFamily),
        _ => None,
    }
}

/// What a watcher gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Waits for the presentity.
    Pending,
    /// Sees the presentity at this level (blocked: as offline).
    Allow(Level),
}

/// One presentity's rules and contact list, as authorization reads them. Addresses are
/// `user@domain` with the domain in lower case; domains are lower case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    users: HashMap<String, Level>,
    domains: HashMap<String, Level>,
    contacts: HashSet<String>,
}

/// `user@domain` with the domain lower-cased (the user part is compared exactly).
pub fn normalise(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((user, domain)) => format!("{user}@{}", domain.to_ascii_lowercase()),
        None => address.to_ascii_lowercase(),
    }
}

impl Policy {
    /// A policy from stored rules (`user@domain` or `@domain`, level name) and contact
    /// addresses. Rules with a level this build does not know are skipped.
    pub fn new<'a>(
        rules: impl IntoIterator<Item = (&'a str, &'a str)>,
        contacts: impl IntoIterator<Item = &'a str>,
    ) -> Policy {
        let mut p = Policy::default();
        for (watcher, level) in rules {
            let Some(level) = parse_level(level) else {
                continue;
            };
            match watcher.strip_prefix('@') {
                Some(domain) => {
                    p.domains.insert(domain.to_ascii_lowercase(), level);
                }
                None => {
                    p.users.insert(normalise(watcher), level);
                }
            }
        }
        p.contacts = contacts.into_iter().map(normalise).collect();
        p
    }

    /// What `watcher` gets for `presentity`'s presence (both `user@domain`).
    pub fn decide(&self, presentity: &str, watcher: &str, default: WatcherDefault) -> Decision {
        let watcher = normalise(watcher);
        if watcher == normalise(presentity) {
            return Decision::Allow(Level::FriendsAndFamily);
        }
        if let Some(level) = self.users.get(&watcher) {
            return Decision::Allow(*level);
        }
        if self.contacts.contains(&watcher) {
            return Decision::Allow(Level::Colleagues);
        }
        let domain = watcher.rsplit_once('@').map_or("", |(_, d)| d);
        if let Some(level) = self.domains.get(domain) {
            return Decision::Allow(*level);
        }
        match default {
            WatcherDefault::Pending => Decision::Pending,
            WatcherDefault::Allow(level) => Decision::Allow(level),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::new(
            [
                ("mallory@Example.COM", "blocked"),
                ("@evil.example", "blocked"),
                ("@partner.example", "workgroup"),
                ("carol@partner.example", "friends-and-family"),
                ("dave@evil.example", "colleagues"),
                ("x@y.example", "no-such-level"),
            ],
            ["bob@example.com", "eve@evil.example"],
        )
    }

    #[test]
    fn order_of_precedence() {
        let p = policy();
        let d = WatcherDefault::Pending;
        let alice = "alice@example.com";
        let allow = Decision::Allow;
        assert_eq!(
            p.decide(alice, "alice@EXAMPLE.com", d),
            allow(Level::FriendsAndFamily)
        );
        assert_eq!(
            p.decide(alice, "mallory@example.com", d),
            allow(Level::Blocked)
        );
        assert_eq!(
            p.decide(alice, "bob@example.com", d),
            allow(Level::Colleagues)
        );
        // A user rule beats the domain's; a contact too.
        assert_eq!(
            p.decide(alice, "dave@evil.example", d),
            allow(Level::Colleagues)
        );
        assert_eq!(
            p.decide(alice, "eve@evil.example", d),
            allow(Level::Colleagues)
        );
        assert_eq!(
            p.decide(alice, "trent@evil.example", d),
            allow(Level::Blocked)
        );
        assert_eq!(
            p.decide(alice, "zed@partner.example", d),
            allow(Level::Workgroup)
        );
        assert_eq!(
            p.decide(alice, "carol@partner.example", d),
            allow(Level::FriendsAndFamily)
        );
        assert_eq!(p.decide(alice, "x@y.example", d), Decision::Pending);
        // User parts are exact.
        assert_eq!(p.decide(alice, "Bob@example.com", d), Decision::Pending);
        let colleagues = WatcherDefault::Allow(Level::Colleagues);
        assert_eq!(
            p.decide(alice, "x@y.example", colleagues),
            allow(Level::Colleagues)
        );
    }

    #[test]
    fn default_setting_names() {
        for text in [
            "pending",
            "blocked",
            "colleagues",
            "workgroup",
            "friends-and-family",
        ] {
            let d = WatcherDefault::parse(text).expect("known");
            assert_eq!(d.as_str(), text);
        }
        assert_eq!(
            WatcherDefault::parse(" Colleagues "),
            Some(WatcherDefault::Allow(Level::Colleagues))
        );
        assert_eq!(WatcherDefault::parse("everyone"), None);
    }
}
