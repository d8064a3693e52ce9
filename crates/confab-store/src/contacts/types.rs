//! The records of contact lists and presence rules, and the checks their values pass before
//! they are written. A contact or a watcher is text (`user@domain`, `@domain`); what it means
//! for a SIP request belongs to the layers above.

use std::fmt;
use std::str::FromStr;

use crate::model::{check_domain, UnixTime};
use crate::{Address, StoreError};

/// The longest contact group name, in characters.
pub const MAX_GROUP_NAME: usize = 64;

/// A named group of a user's contact list, shown in `position` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactGroup {
    /// The name, unique within the user's list.
    pub name: String,
    /// Display order: groups are listed by this number, smallest first.
    pub position: i64,
    /// When it was added.
    pub created_at: UnixTime,
}

/// One entry of a user's contact list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactEntry {
    /// The contact's SIP address; a user of this deployment or of another one.
    pub address: Address,
    /// The name the user gave the contact, if any.
    pub display_name: Option<String>,
    /// The group it is shown in, if any.
    pub group: Option<String>,
    /// When it was added.
    pub created_at: UnixTime,
    /// When it last changed.
    pub updated_at: UnixTime,
}

/// A contact to add to a user's list.
#[derive(Debug, Clone)]
pub struct NewContact {
    /// The contact's SIP address.
    pub address: Address,
    /// The name to show for it.
    pub display_name: Option<String>,
    /// An existing group of the user to show it in; `None` for no group.
    pub group: Option<String>,
}

/// What [`crate::Store::add_contact`] does when the list holds the address already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfContactExists {
    /// Refuse with [`StoreError::AlreadyExists`], changing nothing.
    Refuse,
    /// Replace its display name and group with the new ones.
    Update,
}

/// What [`crate::Store::remove_contact_group`] does with a group that still holds contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupEntries {
    /// Refuse with [`StoreError::Conflict`], changing nothing.
    Refuse,
    /// Keep the contacts in the list, in no group.
    MoveToNoGroup,
}

/// How much of a user's presence a watcher may see: the access levels of Lync and Skype for
/// Business, from none to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PresenceLevel {
    /// Sees the user as offline and cannot reach them.
    Blocked,
    /// Availability, name, title and company.
    Colleagues,
    /// As colleagues, plus more detail (meeting location, note) and interruption when busy.
    Workgroup,
    /// As workgroup, plus personal contact details.
    FriendsAndFamily,
}

impl PresenceLevel {
    /// Every level, from none to most.
    pub const ALL: [PresenceLevel; 4] = [
        PresenceLevel::Blocked,
        PresenceLevel::Colleagues,
        PresenceLevel::Workgroup,
        PresenceLevel::FriendsAndFamily,
    ];

    /// The stored name: `blocked`, `colleagues`, `workgroup` or `friends-and-family`.
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceLevel::Blocked => "blocked",
            PresenceLevel::Colleagues => "colleagues",
            PresenceLevel::Workgroup => "workgroup",
            PresenceLevel::FriendsAndFamily => "friends-and-family",
        }
    }
}

impl FromStr for PresenceLevel {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        PresenceLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == wanted)
            .ok_or_else(|| {
                StoreError::invalid(
                    "presence level",
                    s,
                    "give one of blocked, colleagues, workgroup, friends-and-family",
                )
            })
    }
}

impl fmt::Display for PresenceLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whom a presence rule is about: one user address, or every user of a domain. Written
/// `user@domain` and `@domain`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Watcher {
    /// One user, of this deployment or another.
    User(Address),
    /// Every user of the domain (lower case), unless a rule for the user says otherwise.
    Domain(String),
}

impl Watcher {
    /// Parses `user@domain` or `@domain`.
    pub fn parse(text: &str) -> Result<Watcher, StoreError> {
        let text = text.trim();
        match text.strip_prefix('@') {
            Some(domain) => check_domain(domain)
                .map(Watcher::Domain)
                .map_err(|fix| StoreError::invalid("watcher", text, format!("after '@', {fix}"))),
            None if text.contains('@') => Address::parse(text).map(Watcher::User),
            None => Err(StoreError::invalid(
                "watcher",
                text,
                "write USER@DOMAIN for one user or @DOMAIN for every user of a domain, e.g. \
                 bob@example.com or @example.com",
            )),
        }
    }

    /// The user part as stored: empty for a whole domain.
    pub(crate) fn stored_user(&self) -> &str {
        match self {
            Watcher::User(address) => address.user(),
            Watcher::Domain(_) => "",
        }
    }

    /// The domain, in lower case.
    pub fn domain(&self) -> &str {
        match self {
            Watcher::User(address) => address.domain(),
            Watcher::Domain(domain) => domain,
        }
    }

    pub(crate) fn from_stored(user: &str, domain: &str) -> Result<Watcher, StoreError> {
        let watcher = if user.is_empty() {
            check_domain(domain).map(Watcher::Domain).map_err(|fix| {
                StoreError::corrupt(format!("presence rule watcher @{domain}: {fix}"))
            })?
        } else {
            Watcher::User(
                Address::new(user, domain)
                    .map_err(|e| StoreError::corrupt(format!("presence rule watcher: {e}")))?,
            )
        };
        Ok(watcher)
    }
}

impl FromStr for Watcher {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Watcher::parse(s)
    }
}

impl fmt::Display for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Watcher::User(address) => address.fmt(f),
            Watcher::Domain(domain) => write!(f, "@{domain}"),
        }
    }
}

/// One presence rule of a user: what a watcher may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceRule {
    /// Whom it is about.
    pub watcher: Watcher,
    /// What they may see.
    pub level: PresenceLevel,
    /// When it was last set.
    pub updated_at: UnixTime,
}

/// Everything of one user's contact list and presence rules, read in one transaction (for
/// moves and backups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactList {
    /// Whose list.
    pub user: Address,
    /// The groups, in display order.
    pub groups: Vec<ContactGroup>,
    /// The entries, by group order, then domain and user part.
    pub contacts: Vec<ContactEntry>,
    /// The presence rules, by domain, domain-wide rules first.
    pub presence_rules: Vec<PresenceRule>,
}

/// A contact group name, trimmed: 1 to [`MAX_GROUP_NAME`] characters, no control characters.
pub(crate) fn check_group_name(name: &str) -> Result<String, StoreError> {
    let trimmed = name.trim();
    let count = trimmed.chars().count();
    if count == 0 || count > MAX_GROUP_NAME || trimmed.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            "contact group name",
            name,
            format!("give 1 to {MAX_GROUP_NAME} printable characters, e.g. \"Team\""),
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchers_parse_and_print() {
        let one = Watcher::parse("Bob@Example.COM").expect("user");
        assert_eq!(one.to_string(), "Bob@example.com");
        assert_eq!(one.stored_user(), "Bob");
        let all = Watcher::parse(" @Example.COM ").expect("domain");
        assert_eq!(all, Watcher::Domain("example.com".into()));
        assert_eq!(all.to_string(), "@example.com");
        assert_eq!(all.stored_user(), "");
        for bad in ["", "@", "bob", "@exa mple.com", "bob@", "*.example.com"] {
            assert!(Watcher::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Watcher::from_stored("", "example.com").ok(),
            Some(all.clone())
        );
    }

    #[test]
    fn levels_parse_in_any_case() {
        for level in PresenceLevel::ALL {
            assert_eq!(level.as_str().parse::<PresenceLevel>().ok(), Some(level));
        }
        assert_eq!(
            "Friends-And-Family".parse::<PresenceLevel>().ok(),
            Some(PresenceLevel::FriendsAndFamily)
        );
        let err = "public"
            .parse::<PresenceLevel>()
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("friends-and-family")));
    }

    #[test]
    fn group_names() {
        assert_eq!(check_group_name("  Team ").ok().as_deref(), Some("Team"));
        assert!(check_group_name("Équipe ☕").is_ok());
        assert!(check_group_name(&"é".repeat(MAX_GROUP_NAME)).is_ok());
        for bad in [
            "",
            "   ",
            "a\tb",
            "line\nbreak",
            &"x".repeat(MAX_GROUP_NAME + 1),
        ] {
            assert!(check_group_name(bad).is_err(), "{bad:?}");
        }
    }
}
