//! Offline messages: what a user who is not signed in is sent, kept until they next sign in,
//! under a per-user cap and an age limit that the store enforces.
//!
//! Delivery is claim, deliver, acknowledge — never "take and hope":
//! [`Store::claim_offline_messages`] marks the user's messages as claimed for a lease and
//! returns them; the deliverer sends each one and [`Store::ack_offline_messages`] deletes those
//! the client accepted. A crash between claim and ack loses nothing: the lease runs out and the
//! next claim returns the messages again. Two deliverers (two front-ends, or two registrations
//! at once) never get the same message while its lease runs, because the claim is one
//! conditional `UPDATE`. What remains is the window between a client accepting a message and
//! the ack being written; a deliverer that derives the request's identity (e.g. its Call-ID)
//! from the message's [`StoredId`] lets the client recognise the resend there.
//!
//! Keeping a message appends `offline.stored` to the change feed, in the same transaction:
//! every front-end learns that the user has something waiting, without asking the store at
//! each sign-in.

use std::time::Duration;

use crate::db::{BackendKind, Row};
use crate::error::Context;
use crate::feed::{self, ChangeKind};
use crate::model::{check_token, UnixTime};
use crate::users::user_not_found;
use crate::{Address, NewOfflineMessage, OfflineMessage, QuotaError, Store, StoreError, StoredId};

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn message(row: &Row, to_user: &Address) -> Result<OfflineMessage, StoreError> {
    Ok(OfflineMessage {
        id: StoredId(row.int("id")?),
        to_user: to_user.clone(),
        from_uri: row.text("from_uri")?,
        content_type: row.text("content_type")?,
        body: row.bytes("body")?,
        received_at: row.int("received_at")?,
        expires_at: row.int("expires_at")?,
    })
}

impl Store {
    /// Keeps a message for an offline user, unless they already have `cap` messages waiting;
    /// it expires `max_age` after it was received. Messages already past their age are dropped
    /// first, so they never count against the cap.
    pub async fn store_offline_message(
        &self,
        msg: &NewOfflineMessage,
        cap: u32,
        max_age: Duration,
    ) -> Result<StoredId, QuotaError> {
        const CONTEXT: &str = "storing an offline message";
        check_token("sender", &msg.from_uri, 1024)?;
        check_token("content type", &msg.content_type, 255)?;
        if max_age.as_secs() == 0 {
            return Err(StoreError::invalid(
                "offline message age limit",
                &format!("{max_age:?}"),
                "give an age limit of at least one second",
            )
            .into());
        }
        let expires_at = msg.received_at.saturating_add(secs(max_age));
        let user = &msg.to_user;
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        // The feed's lock first, as every writer that appends to it takes it (a consistent
        // order: no deadlock with an administrative write to the same user).
        feed::lock(&mut tx).await?;
        // Lock the recipient's row so that concurrent stores for one user count in turn;
        // SQLite's BEGIN IMMEDIATE already did.
        let lookup = match tx.kind() {
            BackendKind::Sqlite => "SELECT id FROM users WHERE user_part = $1 AND domain = $2",
            BackendKind::Postgres => {
                "SELECT id FROM users WHERE user_part = $1 AND domain = $2 FOR UPDATE"
            }
        };
        let id = tx
            .fetch_optional(lookup, &[user.user().into(), user.domain().into()])
            .await
            .ctx(CONTEXT)?
            .ok_or_else(|| user_not_found(user))?
            .int("id")?;
        tx.execute(
            "DELETE FROM offline_messages WHERE user_id = $1 AND expires_at <= $2",
            &[id.into(), msg.received_at.into()],
        )
        .await
        .ctx(CONTEXT)?;
        let waiting = tx
            .fetch_one(
                "SELECT COUNT(*) AS n FROM offline_messages WHERE user_id = $1",
                &[id.into()],
            )
            .await
            .ctx(CONTEXT)?
            .int("n")?;
        if waiting >= i64::from(cap) {
            // Commit the purge of expired messages, if any; the new one is refused.
            tx.commit().await.ctx(CONTEXT)?;
            return Err(QuotaError::Full {
                user: user.to_string(),
                cap,
            });
        }
        let stored = tx
            .fetch_one(
                "INSERT INTO offline_messages (user_id, from_uri, content_type, body, \
                 received_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    id.into(),
                    msg.from_uri.as_str().into(),
                    msg.content_type.as_str().into(),
                    msg.body.as_slice().into(),
                    msg.received_at.into(),
                    expires_at.into(),
                ],
            )
            .await
            .ctx(CONTEXT)?
            .int("id")?;
        // Front-ends learn from the feed that the user has a message waiting.
        feed::record(
            &mut tx,
            ChangeKind::OfflineMessageStored,
            &user.to_string(),
            msg.received_at,
        )
        .await?;
        tx.commit().await.ctx(CONTEXT)?;
        Ok(StoredId(stored))
    }

    /// Claims a user's unexpired messages that no other deliverer holds, for `lease`, and
    /// returns them oldest first. Deliver them, then [`ack`](Store::ack_offline_messages)
    /// those the client accepted and [`release`](Store::release_offline_messages) the rest
    /// (or let the lease run out).
    pub async fn claim_offline_messages(
        &self,
        user: &Address,
        now: UnixTime,
        lease: Duration,
    ) -> Result<Vec<OfflineMessage>, StoreError> {
        let until = now.saturating_add(secs(lease).max(1));
        let rows = self
            .db
            .fetch_all(
                "UPDATE offline_messages SET claimed_until = $1 \
                 WHERE user_id = (SELECT id FROM users WHERE user_part = $2 AND domain = $3) \
                 AND expires_at > $4 AND (claimed_until IS NULL OR claimed_until <= $4) \
                 RETURNING id, from_uri, content_type, body, received_at, expires_at",
                &[
                    until.into(),
                    user.user().into(),
                    user.domain().into(),
                    now.into(),
                ],
            )
            .await
            .ctx("claiming offline messages")?;
        let mut messages = rows
            .iter()
            .map(|row| message(row, user))
            .collect::<Result<Vec<_>, _>>()?;
        messages.sort_by_key(|m| m.id);
        Ok(messages)
    }

    /// The users with at least one message waiting, received at or after `received_since`
    /// and not expired at `now`, claimed or not: whom a front-end should deliver to when they
    /// next sign in.
    pub async fn offline_recipients(
        &self,
        now: UnixTime,
        received_since: UnixTime,
    ) -> Result<Vec<Address>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT DISTINCT u.user_part, u.domain FROM offline_messages m \
                 JOIN users u ON u.id = m.user_id WHERE m.expires_at > $1 AND m.received_at >= $2 \
                 ORDER BY u.domain, u.user_part",
                &[now.into(), received_since.into()],
            )
            .await
            .ctx("listing the recipients of offline messages")?;
        rows.iter()
            .map(|row| {
                Address::new(&row.text("user_part")?, &row.text("domain")?)
                    .map_err(|e| StoreError::corrupt(format!("user address: {e}")))
            })
            .collect()
    }

    /// Deletes delivered messages; returns how many existed.
    pub async fn ack_offline_messages(&self, ids: &[StoredId]) -> Result<u64, StoreError> {
        self.each_message("DELETE FROM offline_messages WHERE id = $1", ids)
            .await
    }

    /// Gives claimed messages back at once (delivery failed), for the next claim.
    pub async fn release_offline_messages(&self, ids: &[StoredId]) -> Result<u64, StoreError> {
        self.each_message(
            "UPDATE offline_messages SET claimed_until = NULL WHERE id = $1",
            ids,
        )
        .await
    }

    /// How many messages wait for a user (claimed or not, expired or not).
    pub async fn offline_message_count(&self, user: &Address) -> Result<u64, StoreError> {
        let n = self
            .db
            .fetch_optional(
                "SELECT COUNT(*) AS n FROM offline_messages WHERE user_id = \
                 (SELECT id FROM users WHERE user_part = $1 AND domain = $2)",
                &[user.user().into(), user.domain().into()],
            )
            .await
            .ctx("counting offline messages")?
            .map_or(Ok(0), |row| row.int("n"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn each_message(&self, sql: &str, ids: &[StoredId]) -> Result<u64, StoreError> {
        const CONTEXT: &str = "updating offline messages";
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        let mut n = 0;
        for id in ids {
            n += tx.execute(sql, &[id.0.into()]).await.ctx(CONTEXT)?;
        }
        tx.commit().await.ctx(CONTEXT)?;
        Ok(n)
    }
}
