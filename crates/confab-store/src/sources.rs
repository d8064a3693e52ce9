//! Source addresses blocked at ingress: networks (`203.0.113.0/24`, `2001:db8::/32`) or single
//! addresses whose every message the front-ends drop — the emergency operation that stops an
//! attack. Each change is in the change feed (`sources.changed`, so running front-ends act on
//! it within a second) and in the audit log, in the same transaction.

use std::net::IpAddr;

use crate::audit;
use crate::error::Context;
use crate::feed::{self, ChangeKind};
use crate::model::unix_now;
use crate::{Store, StoreError};

/// A blocked network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedSource {
    /// The network, normalised: `203.0.113.0/24`, `192.0.2.7/32`.
    pub cidr: String,
    /// Why.
    pub reason: String,
    /// When, Unix seconds.
    pub created_at: i64,
    /// By whom.
    pub created_by: String,
}

/// `text` (`ADDRESS` or `ADDRESS/PREFIX`) as a network: its first address and prefix length,
/// the host bits cleared.
pub fn parse_cidr(text: &str) -> Result<(IpAddr, u8), StoreError> {
    let bad = || {
        StoreError::invalid(
            "source network",
            text,
            "give an address or a network, e.g. 203.0.113.7 or 203.0.113.0/24 or 2001:db8::/32",
        )
    };
    let (addr, prefix) = match text.trim().split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text.trim(), None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        Some(p) => p.parse::<u8>().ok().filter(|&l| l <= max).ok_or_else(bad)?,
        None => max,
    };
    Ok((mask(ip, len), len))
}

/// `ip` with all but its first `len` bits cleared.
pub fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

fn normalised(text: &str) -> Result<String, StoreError> {
    let (ip, len) = parse_cidr(text)?;
    Ok(format!("{ip}/{len}"))
}

impl Store {
    /// Blocks `cidr` at ingress; returns the normalised network and whether it was new.
    pub async fn block_source(
        &self,
        cidr: &str,
        reason: &str,
        by: &str,
    ) -> Result<(String, bool), StoreError> {
        const CONTEXT: &str = "blocking a source network";
        let cidr = normalised(cidr)?;
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        let added = tx
            .execute(
                "INSERT INTO blocked_sources (cidr, reason, created_at, created_by) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[
                    cidr.as_str().into(),
                    reason.into(),
                    unix_now().into(),
                    by.into(),
                ],
            )
            .await
            .ctx(CONTEXT)?
            > 0;
        if added {
            feed::record(&mut tx, ChangeKind::SourcesChanged, &cidr, unix_now()).await?;
            audit::append(&mut tx, by, "source.block", &cidr, "{}").await?;
        }
        tx.commit().await.ctx(CONTEXT)?;
        Ok((cidr, added))
    }

    /// Unblocks `cidr`; returns the normalised network and whether it was blocked.
    pub async fn unblock_source(&self, cidr: &str, by: &str) -> Result<(String, bool), StoreError> {
        const CONTEXT: &str = "unblocking a source network";
        let cidr = normalised(cidr)?;
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        let removed = tx
            .execute(
                "DELETE FROM blocked_sources WHERE cidr = $1",
                &[cidr.as_str().into()],
            )
            .await
            .ctx(CONTEXT)?
            > 0;
        if removed {
            feed::record(&mut tx, ChangeKind::SourcesChanged, &cidr, unix_now()).await?;
            audit::append(&mut tx, by, "source.unblock", &cidr, "{}").await?;
        }
        tx.commit().await.ctx(CONTEXT)?;
        Ok((cidr, removed))
    }

    /// Every blocked network, by network.
    pub async fn blocked_sources(&self) -> Result<Vec<BlockedSource>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT cidr, reason, created_at, created_by FROM blocked_sources ORDER BY cidr",
                &[],
            )
            .await
            .ctx("listing blocked sources")?;
        rows.iter()
            .map(|row| {
                Ok(BlockedSource {
                    cidr: row.text("cidr")?,
                    reason: row.text("reason")?,
                    created_at: row.int("created_at")?,
                    created_by: row.text("created_by")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_normalised() {
        assert_eq!(normalised("203.0.113.77/24").expect("ok"), "203.0.113.0/24");
        assert_eq!(normalised("192.0.2.7").expect("ok"), "192.0.2.7/32");
        assert_eq!(normalised("0.0.0.0/0").expect("ok"), "0.0.0.0/0");
        assert_eq!(normalised("2001:db8::1/32").expect("ok"), "2001:db8::/32");
        assert_eq!(normalised("::1").expect("ok"), "::1/128");
        for bad in ["", "example.com", "10.0.0.1/33", "::/129", "10.0.0.1/x"] {
            assert!(normalised(bad).is_err(), "{bad}");
        }
    }
}
