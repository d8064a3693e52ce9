//! The presence write-behind: the live publications (RFC 3903) of local users and the
//! subscriptions (RFC 6665) to their presence and watcher information, as the front-end that
//! serves them last wrote them. The front-end keeps presence in memory and answers from
//! there; these rows let a restarted front-end (or the one that takes its users over) start
//! again from where it was, and send every watcher a fresh NOTIFY. Like registrations, writes
//! are hot state, not administration: no change-feed entries.
//!
//! The store does not read the documents or the dialogs: a publication is a content type and
//! a body, a subscription's dialog is text in the front-end's own format. Every row belongs
//! to a user (the presentity) and goes with it.

use crate::db::{Arg, Row, Tx};
use crate::error::Context;
use crate::model::{check_token, unix_now, UnixTime};
use crate::{Address, Store, StoreError};

/// One live publication of a user's presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPublication {
    /// The presentity.
    pub user: Address,
    /// The entity-tag that names it (RFC 3903 SIP-ETag).
    pub etag: String,
    /// When it expires, in Unix seconds.
    pub expires_at: UnixTime,
    /// The body's content type, e.g. `application/pidf+xml`.
    pub content_type: String,
    /// The document as published.
    pub body: Vec<u8>,
}

/// One subscription to a user's presence (or watcher information).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    /// Names the dialog; unique.
    pub id: String,
    /// The user whose state it is about.
    pub presentity: Address,
    /// The event package: `presence` or `presence.winfo`.
    pub event: String,
    /// Who subscribed: an address `user@domain`, as the front-end knows them.
    pub watcher: String,
    /// When it expires, in Unix seconds.
    pub expires_at: UnixTime,
    /// The rest of the dialog, opaque to the store.
    pub dialog: String,
}

/// One batch of presence writes: rows to insert or replace, and rows to delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresenceWrites {
    /// Publications written (a publication with the same user and entity-tag is replaced).
    pub publications: Vec<StoredPublication>,
    /// Publications gone (removed, expired, or replaced under a new entity-tag).
    pub removed_publications: Vec<(Address, String)>,
    /// Subscriptions written (one with the same id is replaced).
    pub subscriptions: Vec<StoredSubscription>,
    /// Subscriptions gone, by id.
    pub removed_subscriptions: Vec<String>,
}

impl PresenceWrites {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.publications.is_empty()
            && self.removed_publications.is_empty()
            && self.subscriptions.is_empty()
            && self.removed_subscriptions.is_empty()
    }
}

/// Everything [`Store::presence_state`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresenceState {
    /// Every stored publication.
    pub publications: Vec<StoredPublication>,
    /// Every stored subscription.
    pub subscriptions: Vec<StoredSubscription>,
}

const UPSERT_PUBLICATION: &str = "INSERT INTO presence_publications \
     (user_id, etag, expires_at, content_type, body, updated_at) \
     SELECT u.id, $3, $4, $5, $6, $7 FROM users u WHERE u.user_part = $1 AND u.domain = $2 \
     ON CONFLICT (user_id, etag) DO UPDATE SET expires_at = excluded.expires_at, \
     content_type = excluded.content_type, body = excluded.body, updated_at = excluded.updated_at";

const DELETE_PUBLICATION: &str = "DELETE FROM presence_publications WHERE etag = $3 AND \
     user_id IN (SELECT id FROM users WHERE user_part = $1 AND domain = $2)";

const UPSERT_SUBSCRIPTION: &str = "INSERT INTO presence_subscriptions \
     (id, user_id, event, watcher, expires_at, dialog, updated_at) \
     SELECT $3, u.id, $4, $5, $6, $7, $8 FROM users u WHERE u.user_part = $1 AND u.domain = $2 \
     ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, event = excluded.event, \
     watcher = excluded.watcher, expires_at = excluded.expires_at, dialog = excluded.dialog, \
     updated_at = excluded.updated_at";

const PUBLICATIONS: &str = "SELECT u.user_part, u.domain, p.etag, p.expires_at, \
     p.content_type, p.body FROM presence_publications p JOIN users u ON u.id = p.user_id \
     ORDER BY p.user_id, p.updated_at, p.etag";

const SUBSCRIPTIONS: &str = "SELECT s.id, u.user_part, u.domain, s.event, s.watcher, \
     s.expires_at, s.dialog FROM presence_subscriptions s JOIN users u ON u.id = s.user_id \
     ORDER BY s.id";

/// The longest entity-tag, subscription id or watcher kept.
const MAX_TOKEN: usize = 1024;
/// The largest document or dialog kept.
const MAX_BODY: usize = 256 * 1024;

fn check(w: &PresenceWrites) -> Result<(), StoreError> {
    for p in &w.publications {
        check_token("entity-tag", &p.etag, MAX_TOKEN)?;
        check_token("content type", &p.content_type, 255)?;
        if p.body.len() > MAX_BODY {
            return Err(StoreError::invalid(
                "presence document",
                &format!("{} bytes", p.body.len()),
                "keep presence documents under 256 KiB",
            ));
        }
    }
    for s in &w.subscriptions {
        check_token("subscription id", &s.id, MAX_TOKEN)?;
        check_token("event package", &s.event, 64)?;
        check_token("watcher", &s.watcher, MAX_TOKEN)?;
        if s.dialog.len() > MAX_BODY {
            return Err(StoreError::invalid(
                "subscription dialog",
                &format!("{} bytes", s.dialog.len()),
                "keep dialogs under 256 KiB",
            ));
        }
    }
    Ok(())
}

fn address(row: &Row) -> Result<Address, StoreError> {
    let (user, domain) = (row.text("user_part")?, row.text("domain")?);
    Address::new(&user, &domain).map_err(|e| StoreError::corrupt(format!("presentity: {e}")))
}

async fn write(tx: &mut Tx, w: &PresenceWrites, now: i64) -> Result<Vec<Address>, StoreError> {
    const CONTEXT: &str = "writing presence";
    let mut unknown = Vec::new();
    for (user, etag) in &w.removed_publications {
        let args: [Arg<'_>; 3] = [
            user.user().into(),
            user.domain().into(),
            etag.as_str().into(),
        ];
        tx.execute(DELETE_PUBLICATION, &args).await.ctx(CONTEXT)?;
    }
    for id in &w.removed_subscriptions {
        tx.execute(
            "DELETE FROM presence_subscriptions WHERE id = $1",
            &[id.as_str().into()],
        )
        .await
        .ctx(CONTEXT)?;
    }
    for p in &w.publications {
        let args: [Arg<'_>; 7] = [
            p.user.user().into(),
            p.user.domain().into(),
            p.etag.as_str().into(),
            p.expires_at.into(),
            p.content_type.as_str().into(),
            p.body.as_slice().into(),
            now.into(),
        ];
        if tx.execute(UPSERT_PUBLICATION, &args).await.ctx(CONTEXT)? == 0 {
            unknown.push(p.user.clone());
        }
    }
    for s in &w.subscriptions {
        let args: [Arg<'_>; 8] = [
            s.presentity.user().into(),
            s.presentity.domain().into(),
            s.id.as_str().into(),
            s.event.as_str().into(),
            s.watcher.as_str().into(),
            s.expires_at.into(),
            s.dialog.as_str().into(),
            now.into(),
        ];
        if tx.execute(UPSERT_SUBSCRIPTION, &args).await.ctx(CONTEXT)? == 0 {
            unknown.push(s.presentity.clone());
        }
    }
    unknown.sort();
    unknown.dedup();
    Ok(unknown)
}

impl Store {
    /// Applies one batch of presence writes in one transaction: all of it or nothing.
    /// Deletions go first, so a batch may remove a row and write it again. Rows of users the
    /// store does not have are skipped (the user was removed meanwhile); their addresses are
    /// returned.
    pub async fn write_presence(
        &self,
        writes: &PresenceWrites,
    ) -> Result<Vec<Address>, StoreError> {
        const CONTEXT: &str = "writing presence";
        check(writes)?;
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        let unknown = write(&mut tx, writes, unix_now()).await?;
        tx.commit().await.ctx(CONTEXT)?;
        Ok(unknown)
    }

    /// Every stored publication and subscription, expired ones included (the front-end
    /// skips them and writes their removal).
    pub async fn presence_state(&self) -> Result<PresenceState, StoreError> {
        const CONTEXT: &str = "reading presence";
        let mut publications = Vec::new();
        for row in self.db.fetch_all(PUBLICATIONS, &[]).await.ctx(CONTEXT)? {
            publications.push(StoredPublication {
                user: address(&row)?,
                etag: row.text("etag")?,
                expires_at: row.int("expires_at")?,
                content_type: row.text("content_type")?,
                body: row.bytes("body")?,
            });
        }
        let mut subscriptions = Vec::new();
        for row in self.db.fetch_all(SUBSCRIPTIONS, &[]).await.ctx(CONTEXT)? {
            subscriptions.push(StoredSubscription {
                id: row.text("id")?,
                presentity: address(&row)?,
                event: row.text("event")?,
                watcher: row.text("watcher")?,
                expires_at: row.int("expires_at")?,
                dialog: row.text("dialog")?,
            });
        }
        Ok(PresenceState {
            publications,
            subscriptions,
        })
    }
}
