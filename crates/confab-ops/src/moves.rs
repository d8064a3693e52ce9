//! Moving users between pools (`confab user move`): which users a move takes, and the move
//! itself in batches.
//!
//! A move changes a user's home pool in place, in one store transaction per batch
//! ([`confab_store::Store::move_users`]), so that at every moment — a crash, a `kill -9`
//! between two batches or inside one — every user is homed on exactly one pool: the old one
//! (its batch had not committed) or the new one. Running the same move again completes it:
//! users already on the target are passed over, and a bulk move (`--from POOL`) selects what
//! is still on the old pool. The old pool is drained by the same transaction and by its
//! front-ends following the change feed (see the store's documentation); everything the user
//! owns — credentials, contact list, presence rules, queued offline messages — stays with the
//! user. A move is one change record: opened before the first batch
//! ([`crate::control::begin`], with the plan), implemented after the last
//! ([`crate::control::finish`], with who moved): a move killed half-way leaves its record
//! requested, which is what happened.

use confab_store::{Address, MovedUser, Store, UserFilter};

use crate::control::{ChangeContext, Right};
use crate::users::{check_domain, check_pool, UserSummary};
use crate::OpsError;

/// The users batches commit at a time, by default: large enough to move 10,000 users in a
/// few seconds, small enough that a batch holds the store's write lock only briefly.
pub const DEFAULT_BATCH: usize = 100;

/// What an operator asks to move.
#[derive(Debug, Clone, Default)]
pub struct MoveRequest {
    /// These users (none: every user of `from`).
    pub users: Vec<Address>,
    /// Only users homed on this pool (required when `users` is empty).
    pub from: Option<String>,
    /// Only users of this SIP domain.
    pub domain: Option<String>,
    /// Only users whose address matches this pattern: `*` any run of characters, `?` one,
    /// case-insensitive (`sales-*@example.com`).
    pub filter: Option<String>,
    /// The pool they move to.
    pub to: String,
}

/// True when `text` matches the glob `pattern` (`*` any run, `?` one character; letters
/// compared case-insensitively). Linear in practice: on a mismatch after a `*`, the `*`
/// takes one character more and the rest is tried again.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        match p.get(i) {
            Some('*') => {
                star = Some((i, j));
                i += 1;
            }
            Some(&c) if c == '?' || c == t[j] => {
                i += 1;
                j += 1;
            }
            _ => match star {
                Some((si, sj)) => {
                    i = si + 1;
                    j = sj + 1;
                    star = Some((si, sj + 1));
                }
                None => return false,
            },
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// The users `request` would move, checked: the target pool (and `from`, `domain`) exist,
/// every named user exists, and `from` is not the target. Users already homed on the target
/// are left out (so a plan after a completed move is empty).
pub async fn plan(store: &Store, request: &MoveRequest) -> Result<Vec<UserSummary>, OpsError> {
    check_pool(store, &request.to).await?;
    if let Some(from) = &request.from {
        check_pool(store, from).await?;
        if *from == request.to {
            return Err(OpsError::SamePool { pool: from.clone() });
        }
    }
    if let Some(domain) = &request.domain {
        check_domain(store, domain).await?;
    }
    let domain = request.domain.as_deref().map(str::to_ascii_lowercase);
    let selected: Vec<UserSummary> = if request.users.is_empty() {
        let Some(from) = &request.from else {
            return Err(OpsError::MoveSelection(
                "name the users to move (USER@DOMAIN …), or move every user of a pool with --from POOL",
            ));
        };
        store
            .list_users(&UserFilter {
                pool: Some(from.clone()),
                domain: domain.clone(),
            })
            .await?
            .into_iter()
            .map(UserSummary::from)
            .collect()
    } else {
        let mut seen = std::collections::HashSet::new();
        let mut users = Vec::with_capacity(request.users.len());
        for address in &request.users {
            if !seen.insert(address.to_string()) {
                continue;
            }
            let Some(user) = store.find_user(address).await? else {
                return Err(OpsError::UnknownUser {
                    address: address.clone(),
                });
            };
            users.push(UserSummary::from(user));
        }
        users
            .into_iter()
            .filter(|u| request.from.as_ref().is_none_or(|f| u.pool == *f))
            .filter(|u| domain.as_deref().is_none_or(|d| u.address.domain() == d))
            .collect()
    };
    if let Some(f) = &request.filter {
        if f.is_empty() || f.chars().any(char::is_control) {
            return Err(OpsError::MoveSelection(
                "--filter takes a pattern of the users' addresses, e.g. 'sales-*@example.com'",
            ));
        }
    }
    Ok(selected
        .into_iter()
        .filter(|u| u.pool != request.to)
        .filter(|u| {
            request
                .filter
                .as_deref()
                .is_none_or(|f| matches(f, &u.address.to_string()))
        })
        .collect())
}

/// Moves `users` to pool `to` in one transaction (all or none); returns those that moved
/// (a user already there is passed over).
pub async fn move_batch(
    store: &Store,
    ctx: &ChangeContext<'_>,
    users: &[Address],
    to: &str,
) -> Result<Vec<MovedUser>, OpsError> {
    ctx.require(Right::MoveUsers(users.len()))?;
    let moved = store.move_users(users, to).await?;
    for m in &moved {
        tracing::info!(user = %m.address, from = %m.from, to, "user moved");
    }
    // A legacy system in coexistence learns who left it, or came back, at once.
    crate::migration::after_move(store, &moved, to).await?;
    // The history of users per pool (the console's chart) follows moves as they commit.
    if !moved.is_empty() {
        if let Err(e) = store.sample_pool_usage().await {
            tracing::warn!(error = %e, "users per pool not sampled after a move");
        }
    }
    Ok(moved)
}

/// One user of a planned move and the pool it leaves, as a change record carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Planned {
    /// `user@domain`.
    pub address: String,
    /// The pool it is homed on when the move is planned.
    pub from: String,
}

/// One user going back to a pool (a move rolled back), if it is still where the move left it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Return {
    /// `user@domain`.
    pub address: String,
    /// The pool the move took it to: it goes back only from there.
    pub from: String,
    /// The pool it goes back to.
    pub to: String,
}

/// Moves `users` to `to`, `batch` per transaction, calling `progress` with the number of
/// users done after each batch. On a failure, what moved stays moved: the error says how
/// many, and `again` is the command that moves the rest.
pub async fn carry(
    store: &Store,
    ctx: &ChangeContext<'_>,
    users: &[Address],
    to: &str,
    batch: usize,
    again: &str,
    progress: &mut (dyn FnMut(usize) + Send),
) -> Result<Vec<MovedUser>, OpsError> {
    ctx.require(Right::MoveUsers(users.len()))?;
    let mut moved = Vec::with_capacity(users.len());
    let mut done = 0;
    for chunk in users.chunks(batch.max(1)) {
        match move_batch(store, ctx, chunk, to).await {
            Ok(m) => moved.extend(m),
            Err(e) => {
                return Err(OpsError::MoveInterrupted {
                    done,
                    total: users.len(),
                    again: again.to_owned(),
                    source: Box::new(e),
                })
            }
        }
        done += chunk.len();
        progress(done);
    }
    Ok(moved)
}

/// Sends back the users of `returns` that are still homed where the move left them, in
/// batches; returns those sent back and those passed over (moved again since, or removed).
pub async fn carry_back(
    store: &Store,
    ctx: &ChangeContext<'_>,
    returns: &[Return],
    again: &str,
) -> Result<(Vec<MovedUser>, Vec<String>), OpsError> {
    ctx.require(Right::MoveUsers(returns.len()))?;
    let mut by_target: std::collections::BTreeMap<&str, Vec<Address>> = Default::default();
    let mut passed = Vec::new();
    for r in returns {
        let address = Address::parse(&r.address)?;
        match store.find_user(&address).await? {
            Some(u) if u.pool == r.from => by_target.entry(&r.to).or_default().push(address),
            _ => passed.push(r.address.clone()),
        }
    }
    let mut moved = Vec::new();
    for (to, users) in by_target {
        moved.extend(carry(store, ctx, &users, to, DEFAULT_BATCH, again, &mut |_| {}).await?);
    }
    Ok((moved, passed))
}

/// What [`perform`] did.
#[derive(Debug, Clone)]
pub enum Performed {
    /// Nobody to move: every user selected is on the target already.
    Nothing,
    /// A standard change: the users moved, recorded as change `change`.
    Moved {
        /// The change record.
        change: i64,
        /// Who moved, and the pool each left.
        users: Vec<MovedUser>,
    },
    /// More users than a standard change allows: a normal change requested, which another
    /// administrator approves before `control::implement` moves them.
    Requested {
        /// The change record.
        change: Box<confab_store::ChangeRecord>,
        /// How many users it moves.
        users: usize,
    },
}

/// How [`perform`] moves.
#[derive(Debug, Clone, Copy)]
pub struct Order<'a> {
    /// The pool the users move to.
    pub to: &'a str,
    /// Users per store transaction.
    pub batch: usize,
    /// Why, for the change record.
    pub reason: &'a str,
    /// What the operator runs to complete a move that stopped part-way.
    pub again: &'a str,
}

/// Moves the users `planned` (from [`plan`]) as `order` says for `operator`: up to
/// [`crate::control::STANDARD_MOVE_LIMIT`] at once as a standard change, a batch per store
/// transaction, calling `progress` after each; more as a normal change requested.
pub async fn perform(
    store: &Store,
    operator: &crate::control::Operator,
    planned: &[UserSummary],
    order: Order<'_>,
    progress: &mut (dyn FnMut(usize) + Send),
) -> Result<Performed, OpsError> {
    use crate::control::{self, Done, Operation};
    let Order {
        to,
        batch,
        reason,
        again,
    } = order;
    if planned.is_empty() {
        return Ok(Performed::Nothing);
    }
    let operation = Operation::MoveUsers {
        to: to.to_owned(),
        users: planned
            .iter()
            .map(|u| Planned {
                address: u.address.to_string(),
                from: u.pool.clone(),
            })
            .collect(),
        batch: (batch != DEFAULT_BATCH).then_some(batch),
    };
    if planned.len() > control::STANDARD_MOVE_LIMIT {
        let impact = format!(
            "{} user(s) signed out at their pool and signed in again at pool {to}",
            planned.len()
        );
        let change = control::request(store, operator, &operation, reason, Some(&impact)).await?;
        return Ok(Performed::Requested {
            change: Box::new(change),
            users: planned.len(),
        });
    }
    let ctx = control::authorize(
        operator,
        Right::MoveUsers(planned.len()),
        confab_store::ChangeClass::Standard,
    )?;
    let change = control::begin(
        store,
        &ctx,
        Done {
            title: operation.title(),
            reason: reason.to_owned(),
            operation: control::json(&operation),
            before: None,
            after: None,
        },
    )
    .await?;
    let addresses: Vec<Address> = planned.iter().map(|u| u.address.clone()).collect();
    let users = carry(store, &ctx, &addresses, to, batch, again, progress).await?;
    control::finish(
        store,
        &ctx,
        change,
        None,
        Some(&control::json(&serde_json::json!({ "moved": users.len() }))),
    )
    .await?;
    Ok(Performed::Moved { change, users })
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_of_addresses() {
        assert!(matches("sales-*@example.com", "sales-bob@example.com"));
        assert!(matches("SALES-*@Example.com", "sales-bob@example.COM"));
        assert!(matches("*", "anyone@anywhere"));
        assert!(matches("user?@*", "user7@localhost"));
        assert!(!matches("user?@*", "user17@localhost"));
        assert!(matches("*a*b*", "xxaxxbxx"));
        assert!(!matches("*a*b", "xxaxxbxx"));
        assert!(matches("a*a*a", "aaaaa"));
        assert!(!matches("alice@example.com", "alice@example.co"));
        assert!(matches("", ""));
        assert!(!matches("", "x"));
    }
}
