//! The registrar's write-behind: the contacts of each user, keyed by (user, contact). The
//! front-end keeps registrations in memory and answers from there; the store only has to hold
//! them well enough that a restarted or failed-over front-end recovers them. Writes are single
//! statements, not feed entries: they are hot state, not administration.

use crate::db::Row;
use crate::error::Context;
use crate::model::UnixTime;
use crate::users::user_not_found;
use crate::{Address, Purged, Registration, Store, StoreError};

const COLUMNS: &str = "u.user_part, u.domain, r.contact, r.instance_id, r.q, r.expires_at, \
                       r.call_id, r.cseq, r.path, r.source, r.transport, r.updated_at";

fn registration(row: &Row) -> Result<Registration, StoreError> {
    let (user_part, domain) = (row.text("user_part")?, row.text("domain")?);
    let q = row.int("q")?;
    let cseq = row.int("cseq")?;
    Ok(Registration {
        user: Address::new(&user_part, &domain)
            .map_err(|e| StoreError::corrupt(format!("registration address: {e}")))?,
        contact: row.text("contact")?,
        instance_id: row.opt_text("instance_id")?,
        q: u16::try_from(q).map_err(|_| StoreError::corrupt(format!("registration q {q}")))?,
        expires_at: row.int("expires_at")?,
        call_id: row.text("call_id")?,
        cseq: u32::try_from(cseq)
            .map_err(|_| StoreError::corrupt(format!("registration CSeq {cseq}")))?,
        path: row.opt_text("path")?,
        source: row.opt_text("source")?,
        transport: row.text("transport")?,
        updated_at: row.int("updated_at")?,
    })
}

impl Store {
    /// Writes a registration, replacing the one with the same user and contact.
    pub async fn upsert_registration(&self, reg: &Registration) -> Result<(), StoreError> {
        if reg.q > 1000 {
            return Err(StoreError::invalid(
                "q value",
                &reg.q.to_string(),
                "q is kept in thousandths: 0 to 1000",
            ));
        }
        // INSERT … SELECT resolves the user in the same statement; the WHERE also keeps
        // SQLite's parser from reading ON CONFLICT as part of the SELECT.
        let written = self
            .db
            .execute(
                "INSERT INTO registrations (user_id, contact, instance_id, q, expires_at, \
                 call_id, cseq, path, source, transport, updated_at) \
                 SELECT id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM users \
                 WHERE user_part = $1 AND domain = $2 \
                 ON CONFLICT (user_id, contact) DO UPDATE SET \
                 instance_id = excluded.instance_id, q = excluded.q, \
                 expires_at = excluded.expires_at, call_id = excluded.call_id, \
                 cseq = excluded.cseq, path = excluded.path, source = excluded.source, \
                 transport = excluded.transport, updated_at = excluded.updated_at",
                &[
                    reg.user.user().into(),
                    reg.user.domain().into(),
                    reg.contact.as_str().into(),
                    reg.instance_id.as_deref().into(),
                    i64::from(reg.q).into(),
                    reg.expires_at.into(),
                    reg.call_id.as_str().into(),
                    i64::from(reg.cseq).into(),
                    reg.path.as_deref().into(),
                    reg.source.as_deref().into(),
                    reg.transport.as_str().into(),
                    reg.updated_at.into(),
                ],
            )
            .await
            .ctx("writing a registration")?;
        if written == 0 {
            return Err(user_not_found(&reg.user));
        }
        Ok(())
    }

    /// Removes one contact of a user; returns whether it existed.
    pub async fn remove_registration(
        &self,
        user: &Address,
        contact: &str,
    ) -> Result<bool, StoreError> {
        let gone = self
            .db
            .execute(
                "DELETE FROM registrations WHERE contact = $3 AND user_id = \
                 (SELECT id FROM users WHERE user_part = $1 AND domain = $2)",
                &[user.user().into(), user.domain().into(), contact.into()],
            )
            .await
            .ctx("removing a registration")?;
        Ok(gone > 0)
    }

    /// Removes every contact of a user; returns how many there were.
    pub async fn remove_registrations_of(&self, user: &Address) -> Result<u64, StoreError> {
        self.db
            .execute(
                "DELETE FROM registrations WHERE user_id = \
                 (SELECT id FROM users WHERE user_part = $1 AND domain = $2)",
                &[user.user().into(), user.domain().into()],
            )
            .await
            .ctx("removing registrations")
    }

    /// A user's contacts, most preferred (highest q, then most recently written) first,
    /// expired ones included until [`Store::purge_expired`] runs.
    pub async fn registrations_of(&self, user: &Address) -> Result<Vec<Registration>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM registrations r JOIN users u ON u.id = r.user_id \
             WHERE u.user_part = $1 AND u.domain = $2 \
             ORDER BY r.q DESC, r.updated_at DESC, r.contact"
        );
        let rows = self
            .db
            .fetch_all(&sql, &[user.user().into(), user.domain().into()])
            .await
            .ctx("reading registrations")?;
        rows.iter().map(registration).collect()
    }

    /// Every registration of the deployment, by user: what a front-end reloads on start.
    pub async fn all_registrations(&self) -> Result<Vec<Registration>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM registrations r JOIN users u ON u.id = r.user_id \
             ORDER BY u.domain, u.user_part, r.q DESC, r.contact"
        );
        let rows = self
            .db
            .fetch_all(&sql, &[])
            .await
            .ctx("reading registrations")?;
        rows.iter().map(registration).collect()
    }

    /// Deletes the registrations and offline messages that expired at or before `now`.
    pub async fn purge_expired(&self, now: UnixTime) -> Result<Purged, StoreError> {
        const CONTEXT: &str = "purging expired records";
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        let registrations = tx
            .execute(
                "DELETE FROM registrations WHERE expires_at <= $1",
                &[now.into()],
            )
            .await
            .ctx(CONTEXT)?;
        let offline_messages = tx
            .execute(
                "DELETE FROM offline_messages WHERE expires_at <= $1",
                &[now.into()],
            )
            .await
            .ctx(CONTEXT)?;
        tx.commit().await.ctx(CONTEXT)?;
        Ok(Purged {
            registrations,
            offline_messages,
        })
    }
}
