//! Change records: what an administrator changed or asks to change, its class (standard,
//! normal, emergency), where it stands (requested → approved → implemented → reviewed, or
//! rejected, or rolled back), who approved, the operation (JSON written by the ops layer),
//! and what it changed before and after. Each transition is one transaction that checks the
//! state it starts from inside it and appends to the audit log, so two administrators acting
//! on one change at once cannot both succeed. Normal changes need the approval of an
//! administrator other than the requester; standard and emergency changes are implemented
//! straight from their request.
//!
//! These are `change_records`; the change feed that front-ends follow (`changes`) is another
//! thing ([`crate::feed`]).

use std::str::FromStr;

use crate::audit;
use crate::db::{Row, Tx};
use crate::error::Context;
use crate::feed;
use crate::model::unix_now;
use crate::{Store, StoreError};

macro_rules! names {
    ($ty:ident, $what:literal, $($variant:ident = $text:literal),+ $(,)?) => {
        impl $ty {
            /// Its name.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }
        impl FromStr for $ty {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(StoreError::invalid(
                        $what,
                        s,
                        concat!("give one of: ", $($text, " "),+),
                    )),
                }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// How a change is controlled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeClass {
    /// A pre-approved procedure: implemented at once.
    Standard,
    /// Waits for another administrator's approval.
    Normal,
    /// Implemented at once by an administrator with the emergency right; reviewed after.
    Emergency,
}
names!(
    ChangeClass,
    "change class",
    Standard = "standard",
    Normal = "normal",
    Emergency = "emergency"
);

/// Where a change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeState {
    /// Asked for.
    Requested,
    /// Approved by another administrator (normal changes).
    Approved,
    /// Made.
    Implemented,
    /// Reviewed after it was made.
    Reviewed,
    /// Refused by an approver.
    Rejected,
    /// Undone by a later change.
    RolledBack,
}
names!(
    ChangeState,
    "change state",
    Requested = "requested",
    Approved = "approved",
    Implemented = "implemented",
    Reviewed = "reviewed",
    Rejected = "rejected",
    RolledBack = "rolled-back",
);

/// An approver's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Approved.
    Approve,
    /// Rejected.
    Reject,
}
names!(Decision, "decision", Approve = "approve", Reject = "reject");

/// One approver's decision on a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Who decided.
    pub approver: String,
    /// What.
    pub decision: Decision,
    /// Why, if said.
    pub comment: Option<String>,
    /// When, Unix seconds.
    pub at: i64,
}

/// A change record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    /// Its number.
    pub id: i64,
    /// Standard, normal or emergency.
    pub class: ChangeClass,
    /// What it is, in a line.
    pub title: String,
    /// Why.
    pub reason: String,
    /// What it affects, if said.
    pub impact: Option<String>,
    /// Who asked for it.
    pub requested_by: String,
    /// Where it stands.
    pub state: ChangeState,
    /// The operation, JSON.
    pub operation: String,
    /// What it changed, before, JSON.
    pub before: Option<String>,
    /// And after, JSON.
    pub after: Option<String>,
    /// Where the snapshot taken before it is.
    pub snapshot: Option<String>,
    /// The change this one undoes.
    pub rolls_back: Option<i64>,
    /// The change that undid this one.
    pub rolled_back_by: Option<i64>,
    /// When it was asked for, Unix seconds.
    pub requested_at: i64,
    /// When it was approved or rejected.
    pub decided_at: Option<i64>,
    /// When it was made.
    pub implemented_at: Option<i64>,
    /// Who made it.
    pub implemented_by: Option<String>,
    /// When its review is due (emergency changes).
    pub review_due: Option<i64>,
    /// When it was reviewed.
    pub reviewed_at: Option<i64>,
    /// Who reviewed it.
    pub reviewed_by: Option<String>,
    /// What the review said.
    pub review_comment: Option<String>,
    /// The approvers' decisions.
    pub approvals: Vec<Approval>,
}

/// A change asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    /// Standard, normal or emergency.
    pub class: ChangeClass,
    /// What it is, in a line.
    pub title: String,
    /// Why.
    pub reason: String,
    /// What it affects.
    pub impact: Option<String>,
    /// Who asks.
    pub requested_by: String,
    /// The operation, JSON.
    pub operation: String,
    /// The change it undoes.
    pub rolls_back: Option<i64>,
}

/// Which change records to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    /// Only in this state.
    pub state: Option<ChangeState>,
    /// Only of this class.
    pub class: Option<ChangeClass>,
}

const COLUMNS: &str = "id, class, title, reason, impact, requested_by, state, operation, \
     before_state, after_state, snapshot, rolls_back, rolled_back_by, requested_at, decided_at, \
     implemented_at, implemented_by, review_due, reviewed_at, reviewed_by, review_comment";

fn parsed<T: FromStr>(row: &Row, column: &str) -> Result<T, StoreError> {
    let text = row.text(column)?;
    text.parse()
        .map_err(|_| StoreError::corrupt(format!("change record {column} '{text}'")))
}

fn record(row: &Row) -> Result<ChangeRecord, StoreError> {
    Ok(ChangeRecord {
        id: row.int("id")?,
        class: parsed(row, "class")?,
        title: row.text("title")?,
        reason: row.text("reason")?,
        impact: row.opt_text("impact")?,
        requested_by: row.text("requested_by")?,
        state: parsed(row, "state")?,
        operation: row.text("operation")?,
        before: row.opt_text("before_state")?,
        after: row.opt_text("after_state")?,
        snapshot: row.opt_text("snapshot")?,
        rolls_back: row.opt_int("rolls_back")?,
        rolled_back_by: row.opt_int("rolled_back_by")?,
        requested_at: row.int("requested_at")?,
        decided_at: row.opt_int("decided_at")?,
        implemented_at: row.opt_int("implemented_at")?,
        implemented_by: row.opt_text("implemented_by")?,
        review_due: row.opt_int("review_due")?,
        reviewed_at: row.opt_int("reviewed_at")?,
        reviewed_by: row.opt_text("reviewed_by")?,
        review_comment: row.opt_text("review_comment")?,
        approvals: Vec::new(),
    })
}

async fn approvals(tx: &mut Tx, id: i64) -> Result<Vec<Approval>, StoreError> {
    let rows = tx
        .fetch_all(
            "SELECT approver, decision, comment, at FROM change_approvals WHERE change_id = $1 \
             ORDER BY at, approver",
            &[id.into()],
        )
        .await
        .ctx("reading a change's approvals")?;
    rows.iter()
        .map(|row| {
            Ok(Approval {
                approver: row.text("approver")?,
                decision: parsed(row, "decision")?,
                comment: row.opt_text("comment")?,
                at: row.int("at")?,
            })
        })
        .collect()
}

async fn read(tx: &mut Tx, id: i64) -> Result<Option<ChangeRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM change_records WHERE id = $1");
    let Some(row) = tx
        .fetch_optional(&sql, &[id.into()])
        .await
        .ctx("reading a change record")?
    else {
        return Ok(None);
    };
    let mut c = record(&row)?;
    c.approvals = approvals(tx, id).await?;
    Ok(Some(c))
}

fn unknown(id: i64) -> StoreError {
    StoreError::NotFound {
        what: "change",
        name: id.to_string(),
        fix: "list the changes with `confab change list`",
    }
}

fn wrong_state(c: &ChangeRecord, wanted: &str, fix: &str) -> StoreError {
    StoreError::invalid(
        "change",
        &c.id.to_string(),
        format!(
            "it is {} ({} change); it must be {wanted}: {fix}",
            c.state.as_str(),
            c.class.as_str()
        ),
    )
}

fn check_text(what: &'static str, text: &str, max: usize) -> Result<(), StoreError> {
    if text.trim().is_empty() || text.len() > max {
        return Err(StoreError::invalid(
            what,
            text,
            format!("say it in 1 to {max} characters"),
        ));
    }
    Ok(())
}

/// A transaction with the feed's lock (so audit appends and state checks are serialised)
/// and change `id` read in it.
async fn begin(
    store: &Store,
    id: i64,
    context: &'static str,
) -> Result<(Tx, ChangeRecord), StoreError> {
    let mut tx = store.db.begin().await.ctx(context)?;
    feed::lock(&mut tx).await?;
    let c = read(&mut tx, id).await?.ok_or_else(|| unknown(id))?;
    Ok((tx, c))
}

async fn finish(mut tx: Tx, id: i64, context: &'static str) -> Result<ChangeRecord, StoreError> {
    let c = read(&mut tx, id).await?.ok_or_else(|| unknown(id))?;
    tx.commit().await.ctx(context)?;
    Ok(c)
}

impl Store {
    /// Records a change asked for (state requested).
    pub async fn request_change(&self, new: &NewChange) -> Result<ChangeRecord, StoreError> {
        const CONTEXT: &str = "requesting a change";
        check_text("change title", &new.title, 500)?;
        check_text("change reason", &new.reason, 4000)?;
        check_text("requester", &new.requested_by, 64)?;
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        if let Some(target) = new.rolls_back {
            if read(&mut tx, target).await?.is_none() {
                return Err(unknown(target));
            }
        }
        let id = tx
            .fetch_one(
                "INSERT INTO change_records (class, title, reason, impact, requested_by, state, \
                 operation, rolls_back, requested_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 RETURNING id",
                &[
                    new.class.as_str().into(),
                    new.title.trim().into(),
                    new.reason.trim().into(),
                    new.impact.as_deref().into(),
                    new.requested_by.as_str().into(),
                    ChangeState::Requested.as_str().into(),
                    new.operation.as_str().into(),
                    new.rolls_back.into(),
                    unix_now().into(),
                ],
            )
            .await
            .ctx(CONTEXT)?
            .int("id")?;
        let detail = format!(
            "{{\"class\":\"{}\",\"operation\":{}}}",
            new.class.as_str(),
            if new.operation.trim().is_empty() {
                "null"
            } else {
                new.operation.as_str()
            }
        );
        audit::append(
            &mut tx,
            &new.requested_by,
            "change.request",
            &id.to_string(),
            &detail,
        )
        .await?;
        finish(tx, id, CONTEXT).await
    }

    /// One change record, with its approvals.
    pub async fn change(&self, id: i64) -> Result<Option<ChangeRecord>, StoreError> {
        let mut tx = self.db.begin_read().await.ctx("reading a change record")?;
        let c = read(&mut tx, id).await?;
        tx.commit().await.ctx("reading a change record")?;
        Ok(c)
    }

    /// The change records matching `filter`, newest first, with their approvals.
    pub async fn changes(&self, filter: &ChangeFilter) -> Result<Vec<ChangeRecord>, StoreError> {
        const CONTEXT: &str = "listing change records";
        let mut tx = self.db.begin_read().await.ctx(CONTEXT)?;
        let sql = format!(
            "SELECT {COLUMNS} FROM change_records \
             WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR class = $2) ORDER BY id DESC"
        );
        let rows = tx
            .fetch_all(
                &sql,
                &[
                    filter.state.map(ChangeState::as_str).into(),
                    filter.class.map(ChangeClass::as_str).into(),
                ],
            )
            .await
            .ctx(CONTEXT)?;
        let mut out = rows.iter().map(record).collect::<Result<Vec<_>, _>>()?;
        for c in &mut out {
            c.approvals = approvals(&mut tx, c.id).await?;
        }
        tx.commit().await.ctx(CONTEXT)?;
        Ok(out)
    }

    /// Implemented changes whose review was due before `now` (Unix seconds).
    pub async fn overdue_reviews(&self, now: i64) -> Result<Vec<ChangeRecord>, StoreError> {
        let filter = ChangeFilter {
            state: Some(ChangeState::Implemented),
            class: None,
        };
        Ok(self
            .changes(&filter)
            .await?
            .into_iter()
            .filter(|c| c.review_due.is_some_and(|due| due < now))
            .collect())
    }

    /// An approver's decision on a normal change that waits for one: approved or rejected.
    /// The requester cannot decide on its own change.
    pub async fn decide_change(
        &self,
        id: i64,
        approver: &str,
        decision: Decision,
        comment: Option<&str>,
    ) -> Result<ChangeRecord, StoreError> {
        const CONTEXT: &str = "deciding on a change";
        let (mut tx, c) = begin(self, id, CONTEXT).await?;
        if c.class != ChangeClass::Normal {
            return Err(StoreError::invalid(
                "change",
                &id.to_string(),
                format!(
                    "it is a {} change, which needs no approval",
                    c.class.as_str()
                ),
            ));
        }
        if c.state != ChangeState::Requested {
            return Err(wrong_state(
                &c,
                "requested",
                "only a change waiting for approval is decided on",
            ));
        }
        if c.requested_by == approver {
            return Err(StoreError::invalid(
                "approver",
                approver,
                format!(
                    "{approver} requested change {id}; another administrator with the approver \
                     role must approve or reject it"
                ),
            ));
        }
        let now = unix_now();
        tx.execute(
            "INSERT INTO change_approvals (change_id, approver, decision, comment, at) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                id.into(),
                approver.into(),
                decision.as_str().into(),
                comment.into(),
                now.into(),
            ],
        )
        .await
        .ctx(CONTEXT)?;
        let state = match decision {
            Decision::Approve => ChangeState::Approved,
            Decision::Reject => ChangeState::Rejected,
        };
        tx.execute(
            "UPDATE change_records SET state = $2, decided_at = $3 WHERE id = $1",
            &[id.into(), state.as_str().into(), now.into()],
        )
        .await
        .ctx(CONTEXT)?;
        let action = match decision {
            Decision::Approve => "change.approve",
            Decision::Reject => "change.reject",
        };
        audit::append(&mut tx, approver, action, &id.to_string(), "{}").await?;
        finish(tx, id, CONTEXT).await
    }

    /// Records that change `id` was made by `by`, with what it changed, the snapshot taken
    /// before it and when its review is due. A normal change must have been approved.
    pub async fn record_implemented(
        &self,
        id: i64,
        by: &str,
        before: Option<&str>,
        after: Option<&str>,
        snapshot: Option<&str>,
        review_due: Option<i64>,
    ) -> Result<ChangeRecord, StoreError> {
        const CONTEXT: &str = "recording a change as implemented";
        let (mut tx, c) = begin(self, id, CONTEXT).await?;
        let ready = match c.class {
            ChangeClass::Normal => c.state == ChangeState::Approved,
            ChangeClass::Standard | ChangeClass::Emergency => c.state == ChangeState::Requested,
        };
        if !ready {
            let wanted = if c.class == ChangeClass::Normal {
                "approved"
            } else {
                "requested"
            };
            return Err(wrong_state(&c, wanted, "a change is implemented once"));
        }
        tx.execute(
            "UPDATE change_records SET state = $2, implemented_at = $3, implemented_by = $4, \
             before_state = $5, after_state = $6, snapshot = $7, review_due = $8 WHERE id = $1",
            &[
                id.into(),
                ChangeState::Implemented.as_str().into(),
                unix_now().into(),
                by.into(),
                before.into(),
                after.into(),
                snapshot.into(),
                review_due.into(),
            ],
        )
        .await
        .ctx(CONTEXT)?;
        let action = if c.class == ChangeClass::Emergency {
            "emergency.implement"
        } else {
            "change.implement"
        };
        audit::append(&mut tx, by, action, &id.to_string(), "{}").await?;
        finish(tx, id, CONTEXT).await
    }

    /// Records the review of an implemented change.
    pub async fn record_reviewed(
        &self,
        id: i64,
        reviewer: &str,
        comment: &str,
    ) -> Result<ChangeRecord, StoreError> {
        const CONTEXT: &str = "recording a change's review";
        check_text("review", comment, 4000)?;
        let (mut tx, c) = begin(self, id, CONTEXT).await?;
        if c.state != ChangeState::Implemented {
            return Err(wrong_state(
                &c,
                "implemented",
                "a change is reviewed once, after it is made",
            ));
        }
        tx.execute(
            "UPDATE change_records SET state = $2, reviewed_at = $3, reviewed_by = $4, \
             review_comment = $5 WHERE id = $1",
            &[
                id.into(),
                ChangeState::Reviewed.as_str().into(),
                unix_now().into(),
                reviewer.into(),
                comment.trim().into(),
            ],
        )
        .await
        .ctx(CONTEXT)?;
        audit::append(&mut tx, reviewer, "change.review", &id.to_string(), "{}").await?;
        finish(tx, id, CONTEXT).await
    }

    /// Records that change `id` was undone by change `by_change`.
    pub async fn record_rolled_back(
        &self,
        id: i64,
        by_change: i64,
        by: &str,
    ) -> Result<ChangeRecord, StoreError> {
        const CONTEXT: &str = "recording a rollback";
        let (mut tx, c) = begin(self, id, CONTEXT).await?;
        if !matches!(c.state, ChangeState::Implemented | ChangeState::Reviewed) {
            return Err(wrong_state(
                &c,
                "implemented or reviewed",
                "only a change that was made is rolled back",
            ));
        }
        if read(&mut tx, by_change).await?.is_none() {
            return Err(unknown(by_change));
        }
        tx.execute(
            "UPDATE change_records SET state = $2, rolled_back_by = $3 WHERE id = $1",
            &[
                id.into(),
                ChangeState::RolledBack.as_str().into(),
                by_change.into(),
            ],
        )
        .await
        .ctx(CONTEXT)?;
        audit::append(
            &mut tx,
            by,
            "change.rollback",
            &id.to_string(),
            &format!("{{\"by_change\":{by_change}}}"),
        )
        .await?;
        finish(tx, id, CONTEXT).await
    }
}
