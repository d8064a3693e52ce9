//! Source networks blocked at ingress: the emergency operation that stops an attack. Running
//! front-ends drop every message from a blocked network within a second (the change feed);
//! each block and unblock is a change record of its own.

use confab_store::Store;
use serde::Serialize;

use crate::control::{self, ChangeContext, Done, Right};
use crate::OpsError;

/// A block or unblock done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceChange {
    /// The network, normalised (`203.0.113.0/24`).
    pub cidr: String,
    /// Blocked now (false: unblocked).
    pub blocked: bool,
    /// False when it was so already.
    pub changed: bool,
}

/// Blocks `cidr` (an address or a network) at ingress.
pub async fn block(
    store: &Store,
    ctx: &ChangeContext<'_>,
    cidr: &str,
    reason: &str,
) -> Result<SourceChange, OpsError> {
    ctx.require(Right::ManageTopology)?;
    let (cidr, changed) = store
        .block_source(cidr, reason, ctx.operator().name())
        .await?;
    finish(store, ctx, cidr, true, changed).await
}

/// Unblocks `cidr`.
pub async fn unblock(
    store: &Store,
    ctx: &ChangeContext<'_>,
    cidr: &str,
) -> Result<SourceChange, OpsError> {
    ctx.require(Right::ManageTopology)?;
    let (cidr, changed) = store.unblock_source(cidr, ctx.operator().name()).await?;
    finish(store, ctx, cidr, false, changed).await
}

async fn finish(
    store: &Store,
    ctx: &ChangeContext<'_>,
    cidr: String,
    blocked: bool,
    changed: bool,
) -> Result<SourceChange, OpsError> {
    let verb = if blocked { "block" } else { "unblock" };
    if changed {
        tracing::info!(%cidr, blocked, "source network {verb}ed");
        control::record(
            store,
            ctx,
            Done {
                title: format!("{verb} source {cidr}"),
                reason: format!("{verb} a source network at ingress"),
                operation: control::json(&serde_json::json!({
                    "op": format!("source.{verb}"),
                    "cidr": cidr,
                })),
                before: Some(control::json(&serde_json::json!({ "blocked": !blocked }))),
                after: Some(control::json(&serde_json::json!({ "blocked": blocked }))),
            },
        )
        .await?;
    }
    Ok(SourceChange {
        cidr,
        blocked,
        changed,
    })
}
