//! Contact lists and presence rules, as an administrator manages them for a user: list, add
//! and remove contacts; add, rename and remove contact groups; list, set and remove presence
//! rules (what a user, `user@domain`, or every user of a domain, `@domain`, may see).
//!
//! Each operation refuses what it can see is wrong before it writes (an unknown user, group or
//! contact; a group that still holds contacts), with the command that fixes it, and changes
//! nothing then. Each change is one store transaction, which the store's change feed
//! (`contacts.changed`, `presence_rules.changed`) carries to running front-ends.
//!
//! Change control hooks in here as in [`crate::users`] (issue 8).

use crate::control::{self, ChangeContext, Done, Right};
use confab_store::{
    Address, ContactEntry, ContactGroup, ContactList, GroupEntries, IfContactExists, NewContact,
    PresenceLevel, PresenceRule, Store, StoreError, Watcher,
};
use serde::{Serialize, Serializer};

use crate::OpsError;

/// A user's contact list as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactsView {
    /// Whose list.
    #[serde(serialize_with = "as_text")]
    pub user: Address,
    /// The groups, in display order.
    pub groups: Vec<GroupView>,
    /// The contacts, by group order, then address; those in no group last.
    pub contacts: Vec<ContactView>,
}

/// A contact group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupView {
    /// The name.
    pub name: String,
    /// Its place in the display order.
    pub position: i64,
    /// How many contacts it holds.
    pub contacts: usize,
}

/// One contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactView {
    /// The contact's SIP address.
    #[serde(serialize_with = "as_text")]
    pub address: Address,
    /// The name shown for it, if any.
    pub display_name: Option<String>,
    /// Its group, if any.
    pub group: Option<String>,
}

/// One presence rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleView {
    /// `user@domain`, or `@domain` for every user of the domain.
    pub watcher: String,
    /// `blocked`, `colleagues`, `workgroup` or `friends-and-family`.
    pub level: String,
}

/// What [`set_presence_rule`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleChange {
    /// Whose rule.
    #[serde(serialize_with = "as_text")]
    pub user: Address,
    /// The rule as it is now.
    #[serde(flatten)]
    pub rule: RuleView,
    /// Whether that is a change (false: the rule had that level already).
    pub changed: bool,
}

/// What [`remove_group`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupRemoved {
    /// Whose list.
    #[serde(serialize_with = "as_text")]
    pub user: Address,
    /// The group removed.
    pub group: String,
    /// How many contacts it held, now in no group.
    pub moved_to_no_group: u64,
}

fn as_text<S: Serializer>(address: &Address, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(address)
}

impl From<ContactEntry> for ContactView {
    fn from(entry: ContactEntry) -> Self {
        ContactView {
            address: entry.address,
            display_name: entry.display_name,
            group: entry.group,
        }
    }
}

impl From<&PresenceRule> for RuleView {
    fn from(rule: &PresenceRule) -> Self {
        RuleView {
            watcher: rule.watcher.to_string(),
            level: rule.level.to_string(),
        }
    }
}

fn group_view(group: ContactGroup, contacts: &[ContactEntry]) -> GroupView {
    let held = contacts
        .iter()
        .filter(|c| c.group.as_deref() == Some(group.name.as_str()))
        .count();
    GroupView {
        name: group.name,
        position: group.position,
        contacts: held,
    }
}

/// The store's refusals in this crate's words, with the command that fixes them.
fn refusal(user: &Address, error: StoreError) -> OpsError {
    match error {
        StoreError::NotFound { what: "user", .. } => OpsError::UnknownUser {
            address: user.clone(),
        },
        StoreError::NotFound {
            what: "contact group",
            name,
            ..
        } => OpsError::UnknownContactGroup {
            user: user.clone(),
            group: name,
        },
        StoreError::AlreadyExists {
            what: "contact group",
            name,
            ..
        } => OpsError::ContactGroupExists {
            user: user.clone(),
            group: name,
        },
        e => e.into(),
    }
}

/// A display name as given, trimmed; an empty one is refused.
fn display_name(name: Option<String>) -> Result<Option<String>, OpsError> {
    match name {
        None => Ok(None),
        Some(name) if name.trim().is_empty() => Err(OpsError::DisplayName {
            reason: "it is empty; give a name, or leave the name out",
        }),
        Some(name) => Ok(Some(name.trim().to_owned())),
    }
}

/// A user's contact groups and contacts, read in one transaction.
pub async fn list(store: &Store, user: &Address) -> Result<ContactsView, OpsError> {
    let ContactList {
        groups, contacts, ..
    } = store
        .contact_list(user)
        .await
        .map_err(|e| refusal(user, e))?;
    let groups = groups
        .into_iter()
        .map(|g| group_view(g, &contacts))
        .collect();
    Ok(ContactsView {
        user: user.clone(),
        groups,
        contacts: contacts.into_iter().map(ContactView::from).collect(),
    })
}

/// Adds `contact` to a user's list (in an existing group, or none); with `update`, a contact
/// the list holds already gets the new name and group instead of being refused.
pub async fn add(
    store: &Store,
    ctx: &ChangeContext<'_>,
    user: &Address,
    contact: NewContact,
    update: bool,
) -> Result<ContactView, OpsError> {
    ctx.require(Right::ManageUsers)?;
    let contact = NewContact {
        display_name: display_name(contact.display_name)?,
        ..contact
    };
    let if_exists = if update {
        IfContactExists::Update
    } else {
        IfContactExists::Refuse
    };
    let entry = match store.add_contact(user, &contact, if_exists).await {
        Ok(entry) => entry,
        Err(StoreError::AlreadyExists {
            what: "contact", ..
        }) => {
            return Err(OpsError::ContactExists {
                user: user.clone(),
                contact: contact.address,
            })
        }
        Err(e) => return Err(refusal(user, e)),
    };
    tracing::info!(%user, contact = %entry.address, "contact added");
    let view: ContactView = entry.into();
    recorded(
        store,
        ctx,
        user,
        format!("add contact {} to {user}'s list", view.address),
        serde_json::json!({ "op": "contacts.add", "user": user.to_string(), "contact": view.address.to_string() }),
    )
    .await?;
    Ok(view)
}

/// Removes `contact` from a user's list.
pub async fn remove(
    store: &Store,
    ctx: &ChangeContext<'_>,
    user: &Address,
    contact: &Address,
) -> Result<(), OpsError> {
    ctx.require(Right::ManageUsers)?;
    match store.remove_contact(user, contact).await {
        Ok(()) => {}
        Err(StoreError::NotFound {
            what: "contact", ..
        }) => {
            return Err(OpsError::UnknownContact {
                user: user.clone(),
                contact: contact.clone(),
            })
        }
        Err(e) => return Err(refusal(user, e)),
    }
    tracing::info!(%user, %contact, "contact removed");
    recorded(
        store,
        ctx,
        user,
        format!("remove contact {contact} from {user}'s list"),
        serde_json::json!({ "op": "contacts.remove", "user": user.to_string(), "contact": contact.to_string() }),
    )
    .await
}

/// Adds a contact group at the end of a user's display order.
pub async fn add_group(
    store: &Store,
    ctx: &ChangeContext<'_>,
    user: &Address,
    name: &str,
) -> Result<GroupView, OpsError> {
    ctx.require(Right::ManageUsers)?;
    let group = store
        .add_contact_group(user, name)
        .await
        .map_err(|e| refusal(user, e))?;
    tracing::info!(%user, group = %group.name, "contact group added");
    recorded(
        store,
        ctx,
        user,
        format!("add contact group '{}' for {user}", group.name),
        serde_json::json!({ "op": "contacts.group.add", "user": user.to_string(), "group": group.name }),
    )
    .await?;
    Ok(group_view(group, &[]))
}

/// Renames a contact group; its contacts and place stay.
pub async fn rename_group(
    store: &Store,
    ctx: &ChangeContext<'_>,
    user: &Address,
    from: &str,
    to: &str,
) -> Result<(), OpsError> {
    ctx.require(Right::ManageUsers)?;
    store
        .rename_contact_group(user, from, to)
        .await
        .map_err(|e| refusal(user, e))?;
    tracing::info!(%user, from, to, "contact group renamed");
    recorded(
        store,
        ctx,
        user,
        format!("rename contact group '{from}' of {user} to '{to}'"),
        serde_json::json!({ "op": "contacts.group.rename", "user": user.to_string(), "from": from, "to": to }),
    )
    .await
}

/// Removes a contact group. One that holds contacts is refused unless `move_to_no_group`,
/// which keeps them in the list without a group.
pub async fn remove_group(
    store: &Store,
    ctx: &ChangeContext<'_>,
    user: &Address,
    name: &str,
    move_to_no_group: bool,
) -> Result<GroupRemoved, OpsError> {
    ctx.require(Right::ManageUsers)?;
    let entries = if move_to_no_group {
        GroupEntries::MoveToNoGroup
    } else {
        // Say how many and what to do; the store checks again inside its transaction.
        let contacts = store.contacts(user).await.map_err(|e| refusal(user, e))?;
        let held = contacts
            .iter()
            .filter(|c| c.group.as_deref() == Some(name.trim()))
            .count();
        if held > 0 {
            return Err(OpsError::ContactGroupNotEmpty {
                user: user.clone(),
                group: name.trim().to_owned(),
                contacts: held,
            });
        }
        GroupEntries::Refuse
    };
    let moved = store
        .remove_contact_group(user, name, entries)
        .await
        .map_err(|e| refusal(user, e))?;
    tracing::info!(%user, group = name.trim(), moved, "contact group removed");
    recorded(
        store,
        ctx,
        user,
        format!("remove contact group '{}' of {user}", name.trim()),
        serde_json::json!({ "op": "contacts.group.remove", "user": user.to_string(), "group": name.trim(), "moved_to_no_group": moved }),
    )
    .await?;
    Ok(GroupRemoved {
        user: user.clone(),
        group: name.trim().to_owned(),
        moved_to_no_group: moved,
    })
}

/// Records a standard change of a user's contacts or presence rules.
async fn recorded(
    store: &Store,
    ctx: &ChangeContext<'_>,
    user: &Address,
    title: String,
    operation: serde_json::Value,
) -> Result<(), OpsError> {
    control::record(
        store,
        ctx,
        Done {
            title,
            reason: format!("standard change: {user}'s contacts or presence rules"),
            operation: control::json(&operation),
            before: None,
            after: None,
        },
    )
    .await
    .map(|_| ())
}

/// A user's presence rules, by domain, a domain's own rule before its users'.
pub async fn presence_rules(store: &Store, user: &Address) -> Result<Vec<RuleView>, OpsError> {
    let rules = store
        .presence_rules(user)
        .await
        .map_err(|e| refusal(user, e))?;
    Ok(rules.iter().map(RuleView::from).collect())
}

/// Sets what `watcher` may see of a user, replacing the watcher's earlier rule.
pub async fn set_presence_rule(
    store: &Store,
    ctx: &ChangeContext<'_>,
    user: &Address,
    watcher: &Watcher,
    level: PresenceLevel,
) -> Result<RuleChange, OpsError> {
    ctx.require(Right::ManageUsers)?;
    let changed = store
        .set_presence_rule(user, watcher, level)
        .await
        .map_err(|e| refusal(user, e))?;
    if changed {
        tracing::info!(%user, %watcher, %level, "presence rule set");
        recorded(
            store,
            ctx,
            user,
            format!("let {watcher} see {user} as {level}"),
            serde_json::json!({ "op": "presence-rules.set", "user": user.to_string(), "watcher": watcher.to_string(), "level": level.to_string() }),
        )
        .await?;
    }
    Ok(RuleChange {
        user: user.clone(),
        rule: RuleView {
            watcher: watcher.to_string(),
            level: level.to_string(),
        },
        changed,
    })
}

/// Removes the presence rule for `watcher`.
pub async fn remove_presence_rule(
    store: &Store,
    ctx: &ChangeContext<'_>,
    user: &Address,
    watcher: &Watcher,
) -> Result<(), OpsError> {
    ctx.require(Right::ManageUsers)?;
    match store.remove_presence_rule(user, watcher).await {
        Ok(()) => {}
        Err(StoreError::NotFound {
            what: "presence rule for",
            ..
        }) => {
            return Err(OpsError::UnknownPresenceRule {
                user: user.clone(),
                watcher: watcher.to_string(),
            })
        }
        Err(e) => return Err(refusal(user, e)),
    }
    tracing::info!(%user, %watcher, "presence rule removed");
    recorded(
        store,
        ctx,
        user,
        format!("remove the presence rule of {user} for {watcher}"),
        serde_json::json!({ "op": "presence-rules.remove", "user": user.to_string(), "watcher": watcher.to_string() }),
    )
    .await
}
