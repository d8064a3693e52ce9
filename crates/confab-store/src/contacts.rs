//! Server-side contact lists and presence rules, per user.
//!
//! This module owns a user's contact groups (named, unique per user, in a display order), the
//! entries of their contact list (any SIP address, optionally named and grouped, each once per
//! user) and their presence rules (which level of presence a user or a whole domain of
//! watchers may see). All of it belongs to the user: removing the user removes it.
//!
//! Every write checks its values before it begins, then runs in one transaction that takes
//! the change feed's lock first and appends `contacts.changed` or `presence_rules.changed`
//! (subject: the user's address) before it commits, so that a running front-end learns of it
//! and a refused change leaves nothing behind.

use crate::db::{Db, Row, Tx};
use crate::error::Context;
use crate::feed::{self, ChangeKind};
use crate::model::{check_token, unix_now};
use crate::users::{user_id, user_not_found};
use crate::{Address, Store, StoreError};

mod types;

pub use types::{
    ContactEntry, ContactGroup, ContactList, GroupEntries, IfContactExists, NewContact,
    PresenceLevel, PresenceRule, Watcher, MAX_GROUP_NAME,
};

use types::check_group_name;

const GROUPS: &str = "SELECT name, position, created_at FROM contact_groups \
                      WHERE user_id = $1 ORDER BY position, name";

// Grouped entries by their group's order, then those in no group; the CASE keeps that order
// the same on both backends, which sort NULL at opposite ends.
const CONTACTS: &str = "SELECT c.contact_user, c.contact_domain, c.display_name, \
                        g.name AS group_name, c.created_at, c.updated_at \
                        FROM contacts c LEFT JOIN contact_groups g ON g.id = c.group_id \
                        WHERE c.user_id = $1 \
                        ORDER BY CASE WHEN g.position IS NULL THEN 1 ELSE 0 END, g.position, \
                        c.contact_domain, c.contact_user";

const RULES: &str = "SELECT watcher_user, watcher_domain, level, updated_at FROM presence_rules \
                     WHERE user_id = $1 ORDER BY watcher_domain, watcher_user";

const USER_ID: &str = "SELECT id FROM users WHERE user_part = $1 AND domain = $2";

fn group(row: &Row) -> Result<ContactGroup, StoreError> {
    Ok(ContactGroup {
        name: row.text("name")?,
        position: row.int("position")?,
        created_at: row.int("created_at")?,
    })
}

fn entry(row: &Row) -> Result<ContactEntry, StoreError> {
    let (user, domain) = (row.text("contact_user")?, row.text("contact_domain")?);
    Ok(ContactEntry {
        address: Address::new(&user, &domain)
            .map_err(|e| StoreError::corrupt(format!("contact address: {e}")))?,
        display_name: row.opt_text("display_name")?,
        group: row.opt_text("group_name")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

fn rule(row: &Row) -> Result<PresenceRule, StoreError> {
    let level = row.text("level")?;
    Ok(PresenceRule {
        watcher: Watcher::from_stored(&row.text("watcher_user")?, &row.text("watcher_domain")?)?,
        level: level
            .parse()
            .map_err(|_| StoreError::corrupt(format!("presence level '{level}'")))?,
        updated_at: row.int("updated_at")?,
    })
}

fn group_not_found(name: &str) -> StoreError {
    StoreError::NotFound {
        what: "contact group",
        name: name.to_owned(),
        fix: "check the name (it matches exactly), list the user's contacts, or add the group \
              first",
    }
}

/// The id of a user, outside a transaction.
async fn read_user_id(db: &Db, user: &Address) -> Result<i64, StoreError> {
    db.fetch_optional(USER_ID, &[user.user().into(), user.domain().into()])
        .await
        .ctx("looking up a user")?
        .ok_or_else(|| user_not_found(user))?
        .int("id")
}

/// The id of one of the user's groups, if it exists, inside a write transaction.
async fn find_group_id(tx: &mut Tx, uid: i64, name: &str) -> Result<Option<i64>, StoreError> {
    tx.fetch_optional(
        "SELECT id FROM contact_groups WHERE user_id = $1 AND name = $2",
        &[uid.into(), name.into()],
    )
    .await
    .ctx("looking up a contact group")?
    .map(|row| row.int("id"))
    .transpose()
}

/// The id of one of the user's groups, or [`StoreError::NotFound`].
async fn group_id(tx: &mut Tx, uid: i64, name: &str) -> Result<i64, StoreError> {
    find_group_id(tx, uid, name)
        .await?
        .ok_or_else(|| group_not_found(name))
}

/// Opens an administrative write on a user's list: the transaction, the feed's lock, the id.
async fn begin_for(
    store: &Store,
    user: &Address,
    context: &'static str,
) -> Result<(Tx, i64), StoreError> {
    let mut tx = store.db.begin().await.ctx(context)?;
    feed::lock(&mut tx).await?;
    let uid = user_id(&mut tx, user).await?;
    Ok((tx, uid))
}

/// Records the change and commits.
async fn finish(
    mut tx: Tx,
    kind: ChangeKind,
    user: &Address,
    now: i64,
    context: &'static str,
) -> Result<(), StoreError> {
    feed::record(&mut tx, kind, &user.to_string(), now).await?;
    tx.commit().await.ctx(context)
}

impl Store {
    /// A user's contact groups, in display order. An unknown user is
    /// [`StoreError::NotFound`], not an empty list.
    pub async fn contact_groups(&self, user: &Address) -> Result<Vec<ContactGroup>, StoreError> {
        self.user_rows(user, GROUPS, "listing contact groups", group)
            .await
    }

    /// A user's contact list: grouped entries in their groups' order, then those in no
    /// group; by domain and user part within each.
    pub async fn contacts(&self, user: &Address) -> Result<Vec<ContactEntry>, StoreError> {
        self.user_rows(user, CONTACTS, "listing contacts", entry)
            .await
    }

    /// A user's presence rules, by domain, a domain's own rule before its users'.
    pub async fn presence_rules(&self, user: &Address) -> Result<Vec<PresenceRule>, StoreError> {
        self.user_rows(user, RULES, "listing presence rules", rule)
            .await
    }

    /// The rows of `sql` (one parameter: the user's id) for `user`, each read with `read`;
    /// an unknown user is [`StoreError::NotFound`].
    async fn user_rows<T>(
        &self,
        user: &Address,
        sql: &str,
        context: &'static str,
        read: fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let uid = read_user_id(&self.db, user).await?;
        let rows = self.db.fetch_all(sql, &[uid.into()]).await.ctx(context)?;
        rows.iter().map(read).collect()
    }

    /// Everything of a user's contact list and presence rules as of one moment: read in one
    /// transaction under the change feed's lock, so no administrative write lands half-way.
    pub async fn contact_list(&self, user: &Address) -> Result<ContactList, StoreError> {
        const CONTEXT: &str = "reading a contact list";
        let (mut tx, uid) = begin_for(self, user, CONTEXT).await?;
        let groups = tx.fetch_all(GROUPS, &[uid.into()]).await.ctx(CONTEXT)?;
        let contacts = tx.fetch_all(CONTACTS, &[uid.into()]).await.ctx(CONTEXT)?;
        let rules = tx.fetch_all(RULES, &[uid.into()]).await.ctx(CONTEXT)?;
        tx.commit().await.ctx(CONTEXT)?;
        Ok(ContactList {
            user: user.clone(),
            groups: groups.iter().map(group).collect::<Result<_, _>>()?,
            contacts: contacts.iter().map(entry).collect::<Result<_, _>>()?,
            presence_rules: rules.iter().map(rule).collect::<Result<_, _>>()?,
        })
    }

    /// Adds a group at the end of the user's display order.
    pub async fn add_contact_group(
        &self,
        user: &Address,
        name: &str,
    ) -> Result<ContactGroup, StoreError> {
        const CONTEXT: &str = "adding a contact group";
        let name = check_group_name(name)?;
        let now = unix_now();
        let (mut tx, uid) = begin_for(self, user, CONTEXT).await?;
        let position = tx
            .fetch_one(
                "SELECT COALESCE(MAX(position), 0) + 1 AS next FROM contact_groups \
                 WHERE user_id = $1",
                &[uid.into()],
            )
            .await
            .ctx(CONTEXT)?
            .int("next")?;
        let inserted = tx
            .fetch_optional(
                "INSERT INTO contact_groups (user_id, name, position, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING id",
                &[
                    uid.into(),
                    name.as_str().into(),
                    position.into(),
                    now.into(),
                ],
            )
            .await
            .ctx(CONTEXT)?;
        if inserted.is_none() {
            return Err(StoreError::AlreadyExists {
                what: "contact group",
                name,
                fix: "choose another name, or use the existing group",
            });
        }
        finish(tx, ChangeKind::ContactsChanged, user, now, CONTEXT).await?;
        Ok(ContactGroup {
            name,
            position,
            created_at: now,
        })
    }

    /// Renames a group; its place in the order and its contacts stay.
    pub async fn rename_contact_group(
        &self,
        user: &Address,
        from: &str,
        to: &str,
    ) -> Result<(), StoreError> {
        const CONTEXT: &str = "renaming a contact group";
        let from = check_group_name(from)?;
        let to = check_group_name(to)?;
        let now = unix_now();
        let (mut tx, uid) = begin_for(self, user, CONTEXT).await?;
        let id = group_id(&mut tx, uid, &from).await?;
        if from == to {
            return Ok(());
        }
        if find_group_id(&mut tx, uid, &to).await?.is_some() {
            return Err(StoreError::AlreadyExists {
                what: "contact group",
                name: to,
                fix: "choose another new name, or move the contacts into the existing group",
            });
        }
        tx.execute(
            "UPDATE contact_groups SET name = $1 WHERE id = $2",
            &[to.as_str().into(), id.into()],
        )
        .await
        .ctx(CONTEXT)?;
        finish(tx, ChangeKind::ContactsChanged, user, now, CONTEXT).await
    }

    /// Removes a group. One that still holds contacts is refused unless `entries` says to
    /// keep them in no group; returns how many contacts were moved so.
    pub async fn remove_contact_group(
        &self,
        user: &Address,
        name: &str,
        entries: GroupEntries,
    ) -> Result<u64, StoreError> {
        const CONTEXT: &str = "removing a contact group";
        let name = check_group_name(name)?;
        let now = unix_now();
        let (mut tx, uid) = begin_for(self, user, CONTEXT).await?;
        let id = group_id(&mut tx, uid, &name).await?;
        let held = tx
            .fetch_one(
                "SELECT COUNT(*) AS n FROM contacts WHERE group_id = $1",
                &[id.into()],
            )
            .await
            .ctx(CONTEXT)?
            .int("n")?;
        if held > 0 && entries == GroupEntries::Refuse {
            return Err(StoreError::Conflict {
                message: format!(
                    "contact group '{name}' of {user} still holds {held} contact(s); remove \
                     or regroup them first, or remove the group with its contacts moved to \
                     no group"
                ),
            });
        }
        let moved = tx
            .execute(
                "UPDATE contacts SET group_id = NULL, updated_at = $1 WHERE group_id = $2",
                &[now.into(), id.into()],
            )
            .await
            .ctx(CONTEXT)?;
        tx.execute("DELETE FROM contact_groups WHERE id = $1", &[id.into()])
            .await
            .ctx(CONTEXT)?;
        finish(tx, ChangeKind::ContactsChanged, user, now, CONTEXT).await?;
        Ok(moved)
    }

    /// Adds a contact to a user's list, in an existing group of theirs or in none. An
    /// address the list holds already is refused, or with [`IfContactExists::Update`] gets
    /// the new display name and group.
    pub async fn add_contact(
        &self,
        user: &Address,
        new: &NewContact,
        if_exists: IfContactExists,
    ) -> Result<ContactEntry, StoreError> {
        const CONTEXT: &str = "adding a contact";
        if new.address == *user {
            return Err(StoreError::invalid(
                "contact",
                &new.address.to_string(),
                "a user's own address has no place in their contact list; give another address",
            ));
        }
        if let Some(name) = &new.display_name {
            check_token("contact display name", name, 255)?;
        }
        let group = new.group.as_deref().map(check_group_name).transpose()?;
        let now = unix_now();
        let (mut tx, uid) = begin_for(self, user, CONTEXT).await?;
        let gid = match &group {
            Some(name) => Some(group_id(&mut tx, uid, name).await?),
            None => None,
        };
        let address = &new.address;
        let key = [uid.into(), address.user().into(), address.domain().into()];
        let existing = tx
            .fetch_optional(
                "SELECT created_at FROM contacts \
                 WHERE user_id = $1 AND contact_user = $2 AND contact_domain = $3",
                &key,
            )
            .await
            .ctx(CONTEXT)?;
        let created_at = match (existing, if_exists) {
            (Some(_), IfContactExists::Refuse) => {
                return Err(StoreError::AlreadyExists {
                    what: "contact",
                    name: address.to_string(),
                    fix: "the user's list holds it already; update it instead, or remove it \
                          first",
                })
            }
            (Some(row), IfContactExists::Update) => {
                tx.execute(
                    "UPDATE contacts SET display_name = $4, group_id = $5, updated_at = $6 \
                     WHERE user_id = $1 AND contact_user = $2 AND contact_domain = $3",
                    &[
                        key[0],
                        key[1],
                        key[2],
                        new.display_name.as_deref().into(),
                        gid.into(),
                        now.into(),
                    ],
                )
                .await
                .ctx(CONTEXT)?;
                row.int("created_at")?
            }
            (None, _) => {
                tx.execute(
                    "INSERT INTO contacts (user_id, contact_user, contact_domain, display_name, \
                     group_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
                    &[
                        key[0],
                        key[1],
                        key[2],
                        new.display_name.as_deref().into(),
                        gid.into(),
                        now.into(),
                    ],
                )
                .await
                .ctx(CONTEXT)?;
                now
            }
        };
        finish(tx, ChangeKind::ContactsChanged, user, now, CONTEXT).await?;
        Ok(ContactEntry {
            address: address.clone(),
            display_name: new.display_name.clone(),
            group,
            created_at,
            updated_at: now,
        })
    }

    /// Removes a contact from a user's list.
    pub async fn remove_contact(
        &self,
        user: &Address,
        contact: &Address,
    ) -> Result<(), StoreError> {
        const CONTEXT: &str = "removing a contact";
        let now = unix_now();
        let (mut tx, uid) = begin_for(self, user, CONTEXT).await?;
        let removed = tx
            .execute(
                "DELETE FROM contacts \
                 WHERE user_id = $1 AND contact_user = $2 AND contact_domain = $3",
                &[uid.into(), contact.user().into(), contact.domain().into()],
            )
            .await
            .ctx(CONTEXT)?;
        if removed == 0 {
            return Err(StoreError::NotFound {
                what: "contact",
                name: contact.to_string(),
                fix: "check the address (the domain matches in any case, the user part \
                      exactly), or list the user's contacts",
            });
        }
        finish(tx, ChangeKind::ContactsChanged, user, now, CONTEXT).await
    }

    /// Sets what `watcher` may see of `user`, replacing the watcher's earlier rule; returns
    /// whether that changed anything (setting the level a rule has already writes nothing).
    pub async fn set_presence_rule(
        &self,
        user: &Address,
        watcher: &Watcher,
        level: PresenceLevel,
    ) -> Result<bool, StoreError> {
        const CONTEXT: &str = "setting a presence rule";
        let now = unix_now();
        let (mut tx, uid) = begin_for(self, user, CONTEXT).await?;
        let key = [
            uid.into(),
            watcher.stored_user().into(),
            watcher.domain().into(),
        ];
        let current = tx
            .fetch_optional(
                "SELECT level FROM presence_rules \
                 WHERE user_id = $1 AND watcher_user = $2 AND watcher_domain = $3",
                &key,
            )
            .await
            .ctx(CONTEXT)?;
        if let Some(row) = current {
            if row.text("level")? == level.as_str() {
                return Ok(false);
            }
        }
        tx.execute(
            "INSERT INTO presence_rules (user_id, watcher_user, watcher_domain, level, \
             updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id, watcher_user, watcher_domain) \
             DO UPDATE SET level = excluded.level, updated_at = excluded.updated_at",
            &[key[0], key[1], key[2], level.as_str().into(), now.into()],
        )
        .await
        .ctx(CONTEXT)?;
        finish(tx, ChangeKind::PresenceRulesChanged, user, now, CONTEXT).await?;
        Ok(true)
    }

    /// Removes the rule for `watcher`; the watcher then gets the default level again.
    pub async fn remove_presence_rule(
        &self,
        user: &Address,
        watcher: &Watcher,
    ) -> Result<(), StoreError> {
        const CONTEXT: &str = "removing a presence rule";
        let now = unix_now();
        let (mut tx, uid) = begin_for(self, user, CONTEXT).await?;
        let removed = tx
            .execute(
                "DELETE FROM presence_rules \
                 WHERE user_id = $1 AND watcher_user = $2 AND watcher_domain = $3",
                &[
                    uid.into(),
                    watcher.stored_user().into(),
                    watcher.domain().into(),
                ],
            )
            .await
            .ctx(CONTEXT)?;
        if removed == 0 {
            return Err(StoreError::NotFound {
                what: "presence rule for",
                name: watcher.to_string(),
                fix: "check the watcher (USER@DOMAIN for one user, @DOMAIN for a domain), or \
                      list the user's presence rules",
            });
        }
        finish(tx, ChangeKind::PresenceRulesChanged, user, now, CONTEXT).await
    }
}
