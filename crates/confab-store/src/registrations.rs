//! The registrar's write-behind: the contacts of each user, keyed by (user, contact). The
//! front-end keeps registrations in memory and answers from there; the store only has to hold
//! them well enough that a restarted or failed-over front-end recovers them. Writes are not
//! feed entries: they are hot state, not administration.
//!
//! A front-end writes the registrations of many users at once
//! ([`Store::replace_registrations`]): one transaction of a few multi-row statements, whatever
//! the number of users. Statements come in a few fixed sizes ([`SHAPES`]), so that the
//! drivers' caches of prepared statements hold a handful of them, not one per batch size.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use crate::db::{value_rows, Arg, Row};
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

/// The rows of one multi-row statement: a batch is cut into runs of these sizes, largest
/// first. 512 rows of the widest statement (12 parameters a row) stay far below SQLite's limit of
/// 32,766 parameters per statement (PostgreSQL allows 65,535).
const SHAPES: [usize; 4] = [512, 64, 8, 1];

/// `0..len` cut into runs whose lengths are in [`SHAPES`].
fn runs(len: usize) -> impl Iterator<Item = Range<usize>> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let left = len - start;
        let size = SHAPES.into_iter().find(|&s| s <= left)?;
        start += size;
        Some(start - size..start)
    })
}

/// Parameters per row of the batched insert: the user's address (two) and the row's ten
/// other columns.
const INSERT_COLUMNS: usize = 12;

fn check_q(reg: &Registration) -> Result<(), StoreError> {
    if reg.q > 1000 {
        return Err(StoreError::invalid(
            "q value",
            &reg.q.to_string(),
            "q is kept in thousandths: 0 to 1000",
        ));
    }
    Ok(())
}

impl Store {
    /// Replaces every registration of each of `users` with those of `registrations` that are
    /// theirs, in one transaction: either all users get their new registrations or nothing
    /// changes. A user with none in `registrations` is left with none. Returns the users the
    /// store does not have; their registrations are skipped (the user was removed meanwhile).
    ///
    /// Every registration must belong to one of `users`. Should two have the same user and
    /// contact, the later one is written.
    pub async fn replace_registrations(
        &self,
        users: &[Address],
        registrations: &[Registration],
    ) -> Result<Vec<Address>, StoreError> {
        const CONTEXT: &str = "writing registrations";
        let mut wanted: Vec<&Address> = users.iter().collect();
        wanted.sort();
        wanted.dedup();
        let known: HashSet<&Address> = wanted.iter().copied().collect();
        for r in registrations {
            check_q(r)?;
            if !known.contains(&r.user) {
                return Err(StoreError::invalid(
                    "registration",
                    &format!("{} {}", r.user, r.contact),
                    "give its user among the users whose registrations are replaced",
                ));
            }
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        // Users are named by address and resolved to their ids inside each statement, so that
        // a batch is a few statements whatever its size: SQLite's driver hands every result
        // row from its worker thread to the caller's task through a channel, and a row per
        // user cost a thread wake-up per registration.
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        let kind = tx.kind();
        let mut unknown = Vec::new();
        for run in runs(wanted.len()) {
            let some = &wanted[run];
            let names: Vec<Arg<'_>> = some
                .iter()
                .flat_map(|a| [a.user().into(), a.domain().into()])
                .collect();
            // Usually none: no row comes back.
            let sql = format!(
                "SELECT v.column1 AS user_part, v.column2 AS domain FROM (VALUES {}) AS v \
                 WHERE NOT EXISTS (SELECT 1 FROM users u \
                 WHERE u.user_part = v.column1 AND u.domain = v.column2)",
                value_rows(kind, some.len(), 2)
            );
            let by_name: HashMap<(&str, &str), &Address> =
                some.iter().map(|a| ((a.user(), a.domain()), *a)).collect();
            for row in tx.fetch_all(&sql, &names).await.ctx(CONTEXT)? {
                let (user_part, domain) = (row.text("user_part")?, row.text("domain")?);
                if let Some(a) = by_name.get(&(user_part.as_str(), domain.as_str())) {
                    unknown.push((*a).clone());
                }
            }
            let sql = format!(
                "DELETE FROM registrations WHERE user_id IN (SELECT u.id FROM users u \
                 JOIN (VALUES {}) AS v ON u.user_part = v.column1 AND u.domain = v.column2)",
                value_rows(kind, some.len(), 2)
            );
            tx.execute(&sql, &names).await.ctx(CONTEXT)?;
        }
        let gone: HashSet<&Address> = unknown.iter().collect();
        // The last of each (user, contact), in key order.
        let mut rows: Vec<&Registration> = Vec::with_capacity(registrations.len());
        let mut seen: HashSet<(&Address, &str)> = HashSet::with_capacity(registrations.len());
        for r in registrations.iter().rev() {
            if !gone.contains(&r.user) && seen.insert((&r.user, r.contact.as_str())) {
                rows.push(r);
            }
        }
        rows.sort_unstable_by(|a, b| (&a.user, &a.contact).cmp(&(&b.user, &b.contact)));
        for run in runs(rows.len()) {
            let some = &rows[run];
            // The rows were deleted above; ON CONFLICT covers another front-end writing the
            // same user at the same time on PostgreSQL: the later transaction wins. In user
            // id order, so that two front-ends writing the same users lock them in the same
            // order. `WHERE true` keeps SQLite's parser from reading ON CONFLICT as the
            // join's constraint.
            let sql = format!(
                "INSERT INTO registrations (user_id, contact, instance_id, q, expires_at, \
                 call_id, cseq, path, source, transport, updated_at) \
                 SELECT u.id, v.column3, v.column4, v.column5, v.column6, v.column7, \
                 v.column8, v.column9, v.column10, v.column11, v.column12 \
                 FROM (VALUES {}) AS v \
                 JOIN users u ON u.user_part = v.column1 AND u.domain = v.column2 \
                 WHERE true ORDER BY u.id, v.column3 \
                 ON CONFLICT (user_id, contact) DO UPDATE SET \
                 instance_id = excluded.instance_id, q = excluded.q, \
                 expires_at = excluded.expires_at, call_id = excluded.call_id, \
                 cseq = excluded.cseq, path = excluded.path, source = excluded.source, \
                 transport = excluded.transport, updated_at = excluded.updated_at",
                value_rows(kind, some.len(), INSERT_COLUMNS)
            );
            let mut args: Vec<Arg<'_>> = Vec::with_capacity(some.len() * INSERT_COLUMNS);
            for r in some {
                args.extend::<[Arg<'_>; INSERT_COLUMNS]>([
                    r.user.user().into(),
                    r.user.domain().into(),
                    r.contact.as_str().into(),
                    r.instance_id.as_deref().into(),
                    i64::from(r.q).into(),
                    r.expires_at.into(),
                    r.call_id.as_str().into(),
                    i64::from(r.cseq).into(),
                    r.path.as_deref().into(),
                    r.source.as_deref().into(),
                    r.transport.as_str().into(),
                    r.updated_at.into(),
                ]);
            }
            tx.execute(&sql, &args).await.ctx(CONTEXT)?;
        }
        tx.commit().await.ctx(CONTEXT)?;
        Ok(unknown)
    }

    /// Writes a registration, replacing the one with the same user and contact.
    pub async fn upsert_registration(&self, reg: &Registration) -> Result<(), StoreError> {
        check_q(reg)?;
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
