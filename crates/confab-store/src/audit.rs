//! The audit log: every administrative change, approval and emergency action, appended in
//! order and chained by hashes so that an entry edited, deleted or moved afterwards shows.
//!
//! Entry `seq` (1, 2, 3 … without gaps) holds when (`at`, Unix milliseconds), who (`actor`),
//! what (`action`, e.g. `change.implement`), on what (`subject`), a JSON `detail`, the hash
//! of the entry before it (`prev_hash`; 64 zeros for the first) and its own `hash`: the hex
//! SHA-256 of
//!
//! ```text
//! "confab-audit-v1" ‖ field(seq) ‖ field(at) ‖ field(actor) ‖ field(action) ‖ field(subject)
//!                   ‖ field(detail) ‖ field(prev_hash)
//! field(x) = the length of x's UTF-8 text (decimal for seq and at) as 8 bytes big-endian,
//!            then the text
//! ```
//!
//! so that an auditor can recompute the chain with any SHA-256 tool. The head (last `seq`
//! and `hash`) is kept in its own row, updated in the same transaction as each append:
//! deleting the last entries leaves the head pointing past the end. Appends happen inside
//! the transaction of what they record and take the change feed's lock, so they are
//! serialised and never out of order. [`Store::verify_audit`] walks the whole chain and names
//! the first entry that does not hold.
//!
//! What the chain cannot do: someone able to write the database can rewrite every entry from
//! some point on and the head with them. Keeping copies of the head elsewhere (backups do)
//! catches that.

use sha2::{Digest, Sha256};

use crate::db::{Row, Tx};
use crate::error::Context;
use crate::feed;
use crate::{Store, StoreError};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its place in the log, from 1.
    pub seq: i64,
    /// When, Unix milliseconds.
    pub at: i64,
    /// Who: an administrator's name, or `confab` for the deployment itself.
    pub actor: String,
    /// What, e.g. `change.implement`.
    pub action: String,
    /// On what: a change number, a user, an administrator.
    pub subject: String,
    /// Details, JSON.
    pub detail: String,
    /// The hash of the entry before.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditBreak {
    /// The first entry that does not hold (or the missing one).
    pub seq: i64,
    /// What is wrong with it.
    pub problem: String,
}

/// What [`Store::verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerdict {
    /// Entries read.
    pub entries: u64,
    /// The first break, if any.
    pub first_bad: Option<AuditBreak>,
}

/// The hash of an entry with these fields (see the module documentation).
pub fn entry_hash(
    seq: i64,
    at: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
    prev_hash: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(b"confab-audit-v1");
    let (seq, at) = (seq.to_string(), at.to_string());
    for field in [
        seq.as_str(),
        at.as_str(),
        actor,
        action,
        subject,
        detail,
        prev_hash,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn entry(row: &Row) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        seq: row.int("seq")?,
        at: row.int("at")?,
        actor: row.text("actor")?,
        action: row.text("action")?,
        subject: row.text("subject")?,
        detail: row.text("detail")?,
        prev_hash: row.text("prev_hash")?,
        hash: row.text("hash")?,
    })
}

/// Appends an entry inside the caller's transaction (which holds, or here takes, the feed's
/// lock: appends are serialised).
pub(crate) async fn append(
    tx: &mut Tx,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> Result<AuditEntry, StoreError> {
    const CONTEXT: &str = "appending to the audit log";
    feed::lock(tx).await?;
    let head = tx
        .fetch_one("SELECT seq, hash FROM audit_head WHERE id = 1", &[])
        .await
        .ctx(CONTEXT)?;
    let (last, prev_hash) = (head.int("seq")?, head.text("hash")?);
    let seq = last + 1;
    let at = now_ms();
    let hash = entry_hash(seq, at, actor, action, subject, detail, &prev_hash);
    tx.execute(
        "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            seq.into(),
            at.into(),
            actor.into(),
            action.into(),
            subject.into(),
            detail.into(),
            prev_hash.as_str().into(),
            hash.as_str().into(),
        ],
    )
    .await
    .ctx(CONTEXT)?;
    tx.execute(
        "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
        &[seq.into(), hash.as_str().into()],
    )
    .await
    .ctx(CONTEXT)?;
    Ok(AuditEntry {
        seq,
        at,
        actor: actor.to_owned(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        detail: detail.to_owned(),
        prev_hash,
        hash,
    })
}

impl Store {
    /// Appends an entry on its own (what is not a store change of its own: a sign-in, an
    /// operation the ops layer records).
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<AuditEntry, StoreError> {
        let mut tx = self.db.begin().await.ctx("appending to the audit log")?;
        let e = append(&mut tx, actor, action, subject, detail).await?;
        tx.commit().await.ctx("appending to the audit log")?;
        Ok(e)
    }

    /// Up to `limit` entries after `after_seq`, in order.
    pub async fn audit_entries(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log \
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[
                    after_seq.into(),
                    i64::try_from(limit).unwrap_or(i64::MAX).into(),
                ],
            )
            .await
            .ctx("reading the audit log")?;
        rows.iter().map(entry).collect()
    }

    /// Checks the whole chain, in one consistent read: every entry's hash, each linked to the
    /// one before, the numbers without gaps, and the head where the last entry is.
    pub async fn verify_audit(&self) -> Result<AuditVerdict, StoreError> {
        const CONTEXT: &str = "verifying the audit log";
        let mut tx = self.db.begin_read().await.ctx(CONTEXT)?;
        let head = tx
            .fetch_one("SELECT seq, hash FROM audit_head WHERE id = 1", &[])
            .await
            .ctx(CONTEXT)?;
        let (head_seq, head_hash) = (head.int("seq")?, head.text("hash")?);
        let rows = tx
            .fetch_all(
                "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log \
                 ORDER BY seq",
                &[],
            )
            .await
            .ctx(CONTEXT)?;
        tx.commit().await.ctx(CONTEXT)?;
        let mut prev = GENESIS.to_owned();
        let mut expected = 1;
        let mut entries = 0u64;
        let broken = |seq: i64, problem: String| Some(AuditBreak { seq, problem });
        for row in &rows {
            let e = entry(row)?;
            entries += 1;
            let bad = if e.seq != expected {
                broken(
                    expected,
                    format!("entry {expected} is missing (the next one is {})", e.seq),
                )
            } else if e.prev_hash != prev {
                broken(
                    e.seq,
                    "it does not follow the entry before it (deleted, inserted or reordered)"
                        .to_owned(),
                )
            } else if entry_hash(
                e.seq,
                e.at,
                &e.actor,
                &e.action,
                &e.subject,
                &e.detail,
                &e.prev_hash,
            ) != e.hash
            {
                broken(
                    e.seq,
                    "its content does not match its hash (edited)".to_owned(),
                )
            } else {
                None
            };
            if bad.is_some() {
                return Ok(AuditVerdict {
                    entries,
                    first_bad: bad,
                });
            }
            prev = e.hash;
            expected += 1;
        }
        let last = expected - 1;
        let first_bad = if head_seq != last {
            broken(
                last + 1,
                format!("the log ends at entry {last} but had {head_seq} (entries removed from the end)"),
            )
        } else if head_hash != prev {
            broken(
                last,
                "the last entry is not the one the log ended with".to_owned(),
            )
        } else {
            None
        };
        Ok(AuditVerdict { entries, first_bad })
    }
}
