//! The location service's writer: the dirty AORs go to the [`RegistrationStore`] in
//! batches, one store transaction each (see the [module documentation](super) for what a
//! crash can lose).
//!
//! Two cadences. A material change — a binding added, removed, moved to another flow or
//! Call-ID — is written [`WRITE_DELAY`] after it. A refresh that changed nothing but the
//! expiry (and CSeq) is written with the next round of refreshes, every
//! [`REFRESH_WRITE_INTERVAL`], and at shutdown: refreshes are nearly all of a registrar's
//! traffic, and writing each within half a second cost the store a transaction per AOR per
//! refresh (at 16,000 REGISTER/s, bursts of SQLite work every half second that delayed the
//! REGISTERs queued behind them by several milliseconds). What a crash loses of them is
//! the extension of an expiry by at most that interval, which the client's next refresh
//! restores.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{interval_at, Instant as TokioInstant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Location, SlotId};
use crate::directory::{AorBindings, RegistrationStore};

/// How long the writer waits after a change before writing, so that the changes of a burst
/// of REGISTERs go to the store in one transaction. A crash loses at most this much of
/// registration changes (clients repeat them at their next refresh); short next to any
/// registration interval, long next to one store transaction.
pub const WRITE_DELAY: Duration = Duration::from_millis(500);

/// How often refreshes that changed only an expiry are written (see the module
/// documentation): short next to any registration interval (a minute at the least).
pub const REFRESH_WRITE_INTERVAL: Duration = Duration::from_secs(15);

/// The most AORs written in one store transaction: bounds the memory of one batch and the
/// time the store is locked by it.
pub const MAX_BATCH: usize = 2000;

/// How long the writer waits before trying a failed write again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl Location {
    /// Writes dirty AORs to `store` until `shutdown`, then once more.
    pub async fn write_behind(
        self: Arc<Self>,
        store: Arc<dyn RegistrationStore>,
        shutdown: CancellationToken,
    ) {
        let first = TokioInstant::now() + REFRESH_WRITE_INTERVAL;
        let mut refreshes = interval_at(first, REFRESH_WRITE_INTERVAL);
        refreshes.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let mut stop = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = self.dirty.notified() => false,
                _ = refreshes.tick() => {
                    self.lock().promote_stale();
                    false
                }
            };
            if !stop {
                // Collect the rest of a burst.
                stop = tokio::select! {
                    _ = shutdown.cancelled() => true,
                    _ = tokio::time::sleep(WRITE_DELAY) => false,
                };
            }
            if stop {
                // The refreshes not written yet go too.
                self.lock().promote_stale();
            }
            let written = self.flush(store.as_ref()).await;
            if stop {
                break;
            }
            if !written {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(RETRY_AFTER) => {}
                }
                self.dirty.notify_one();
            }
        }
    }

    /// Saves every dirty AOR once, in batches of up to [`MAX_BATCH`] (an AOR the store
    /// refused before is written on its own); returns whether all were written. What was
    /// not stays dirty for the next round.
    pub async fn flush(&self, store: &dyn RegistrationStore) -> bool {
        let mut refused = self.flushing.lock().await;
        let (batched, alone): (Vec<SlotId>, Vec<SlotId>) = {
            let mut t = self.lock();
            let dirty = t.take_dirty();
            dirty
                .into_iter()
                .partition(|&id| !refused.contains(t.name(id)))
        };
        let rounds: Vec<&[SlotId]> = batched.chunks(MAX_BATCH).chain(alone.chunks(1)).collect();
        let mut failed_in_a_row = 0;
        let mut all = true;
        for (i, ids) in rounds.iter().enumerate() {
            let batch = self.batch(ids);
            if batch.is_empty() {
                continue;
            }
            let fates = save(store, &batch, &mut failed_in_a_row).await;
            let mut t = self.lock();
            for (a, fate) in batch.iter().zip(fates) {
                match fate {
                    Fate::Written => {
                        t.written(&a.aor);
                        refused.remove(&a.aor);
                    }
                    Fate::Refused => {
                        t.unwritten(&a.aor);
                        refused.insert(a.aor.clone());
                        all = false;
                    }
                    Fate::Waiting => {
                        t.unwritten(&a.aor);
                        all = false;
                    }
                }
            }
            if failed_in_a_row >= 2 {
                // The store is more likely down than refusing one AOR after another.
                for rest in rounds.get(i + 1..).unwrap_or_default() {
                    t.untake_dirty(rest);
                }
                return false;
            }
        }
        all
    }

    /// The current state of the dirty AORs among `ids`, which are marked clean.
    fn batch(&self, ids: &[SlotId]) -> Vec<AorBindings> {
        let mut t = self.lock();
        let mut batch = Vec::with_capacity(ids.len());
        for &id in ids {
            if t.clean(id) {
                let aor = t.name(id).to_owned();
                let bindings = self.stored_of(&t, &aor, t.entries(id));
                batch.push(AorBindings { aor, bindings });
            }
        }
        batch
    }
}

/// What became of one AOR of a batch.
enum Fate {
    Written,
    /// Not written, on its own.
    Refused,
    /// Not written with its batch, and not tried on its own.
    Waiting,
}

/// Writes `batch` in one transaction; if the store refuses it, AOR by AOR, so that one AOR
/// the store cannot take holds back no other, until two writes in a row failed (counted
/// across batches in `failed_in_a_row`: then the store is more likely down, and the rest
/// waits for the next round).
async fn save(
    store: &dyn RegistrationStore,
    batch: &[AorBindings],
    failed_in_a_row: &mut u32,
) -> Vec<Fate> {
    let error = match store.save_many(batch).await {
        Ok(()) => {
            *failed_in_a_row = 0;
            return batch.iter().map(|_| Fate::Written).collect();
        }
        Err(e) => e,
    };
    if let [one] = batch {
        warn!(aor = %one.aor, %error, "registration not written to the store; will retry");
        *failed_in_a_row += 1;
        return vec![Fate::Refused];
    }
    warn!(aors = batch.len(), %error, "registrations not written to the store; will retry");
    let mut fates: Vec<Fate> = batch.iter().map(|_| Fate::Waiting).collect();
    for (one, fate) in batch.iter().zip(fates.iter_mut()) {
        if *failed_in_a_row >= 2 {
            break;
        }
        match store.save_many(std::slice::from_ref(one)).await {
            Ok(()) => {
                *fate = Fate::Written;
                *failed_in_a_row = 0;
            }
            Err(error) => {
                warn!(aor = %one.aor, %error, "registration not written to the store; will retry");
                *fate = Fate::Refused;
                *failed_in_a_row += 1;
            }
        }
    }
    fates
}
