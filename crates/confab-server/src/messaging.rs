//! Page-mode instant messages (RFC 3428) for users who are offline: a MESSAGE to a local
//! user with no registration is stored ([`OfflineMessages`]) and answered `202 Accepted`;
//! when the user next registers, each stored message is sent to the contact that
//! registered, by the server as a UAC, with the original From, Content-Type and body. A
//! message kept by another front-end sharing the store is announced on the change feed
//! (`offline.stored`): delivered at once if the user is signed in here, else at the next
//! REGISTER.
//! (A MESSAGE to a registered user is proxied like any other request.)
//!
//! - **Limits**: at most [`OfflineLimits::max_per_user`] messages wait per user; one more is
//!   refused with `480 Temporarily Unavailable` — the user is not signed in and nothing more
//!   can be kept for them — rather than 486, which would claim the user is busy. Messages
//!   older than [`OfflineLimits::max_age`] are neither delivered nor kept.
//! - **Never lost**: 202 goes out only after the store has taken the message, and a message
//!   is deleted only when the recipient's client answered its delivery 2xx. A failure,
//!   timeout or error response stops the delivery round (later messages wait too, to keep
//!   the order) until the next REGISTER.
//! - **Never delivered twice** by this front-end: one delivery round per user at a time, and
//!   a message is acknowledged before the next is sent. Every delivery attempt of a message
//!   carries the same Call-ID (`confab-offline-<id>@<domain>`) and CSeq, so a client whose
//!   2xx was lost can recognise the retry as a duplicate (RFC 3261 §8.2.2.2).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use confab_sip::builder::RequestBuilder;
use confab_sip::{HeaderName, Message};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::OfflineLimits;
use crate::directory::{OfflineError, OfflineMessage, OfflineMessages};
use crate::forward::{prepend_routes, Listeners};
use crate::ids;
use crate::location::Binding;
use crate::respond::Answer;
use crate::transactions::{ClientEvent, TransactionDriver};

/// Stores and delivers offline messages (see the module documentation).
pub struct Messaging {
    store: Arc<dyn OfflineMessages>,
    limits: OfflineLimits,
    driver: Arc<TransactionDriver>,
    listeners: Arc<Listeners>,
    delivering: Mutex<HashSet<String>>,
    /// Recipients who may have messages waiting in the store (see [`Messaging::deliver`]).
    waiting: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Messaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messaging")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Removes `aor` from the delivering set when a round ends, however it ends.
struct Round<'a> {
    messaging: &'a Messaging,
    aor: String,
}

impl Drop for Round<'_> {
    fn drop(&mut self) {
        self.messaging.delivering().remove(&self.aor);
    }
}

/// Delivery rounds one [`Messaging::deliver`] runs at most, one after another, while
/// messages keep arriving for the user during them.
const MAX_ROUNDS: usize = 16;

impl Messaging {
    /// Messaging over this store, sending through `driver`.
    pub fn new(
        store: Arc<dyn OfflineMessages>,
        limits: OfflineLimits,
        driver: Arc<TransactionDriver>,
        listeners: Arc<Listeners>,
    ) -> Self {
        Messaging {
            store,
            limits,
            driver,
            listeners,
            delivering: Mutex::new(HashSet::new()),
            waiting: Mutex::new(HashSet::new()),
        }
    }

    fn delivering(&self) -> MutexGuard<'_, HashSet<String>> {
        self.delivering.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn waiting(&self) -> MutexGuard<'_, HashSet<String>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads from the store who has messages waiting (at start, so that messages kept before
    /// a restart are delivered at their recipient's next REGISTER); returns how many.
    pub async fn load_waiting(&self) -> Result<usize, crate::directory::StoreError> {
        let recipients = self.store.recipients(self.not_before()).await?;
        let mut waiting = self.waiting();
        waiting.extend(recipients);
        Ok(waiting.len())
    }

    fn not_before(&self) -> u64 {
        ids::unix_now().saturating_sub(self.limits.max_age.as_secs())
    }

    /// Stores `req` for `aor`, who is offline; the answer to send.
    pub async fn keep(&self, req: &Message, aor: &str) -> Answer {
        let Some(from) = req.header(HeaderName::From) else {
            return Answer::new(400, "Bad From Header");
        };
        let content_type = req
            .header(HeaderName::ContentType)
            .unwrap_or("text/plain")
            .to_owned();
        let message = OfflineMessage {
            id: 0,
            recipient: aor.to_owned(),
            from: from.to_owned(),
            content_type,
            body: req.body().to_vec(),
            received_at: ids::unix_now(),
        };
        match self
            .store
            .store(message, self.limits.max_per_user, self.not_before())
            .await
        {
            Ok(id) => {
                self.waiting().insert(aor.to_owned());
                info!(%aor, id, "MESSAGE stored for an offline user");
                Answer::new(202, "Accepted")
            }
            Err(OfflineError::OverQuota) => {
                info!(%aor, "offline messages full: MESSAGE refused");
                Answer::new(480, "Temporarily Unavailable")
            }
            Err(OfflineError::Store(e)) => {
                warn!(%aor, error = %e, "MESSAGE could not be stored");
                Answer::new(500, "Server Internal Error")
            }
        }
    }

    /// Notes that `aor` has a message waiting in the store (kept by another front-end: the
    /// change feed said so).
    pub fn waiting_for(&self, aor: &str) {
        self.waiting().insert(aor.to_owned());
    }

    /// Delivers `aor`'s waiting messages to `binding`, one by one, oldest first, after a
    /// REGISTER made or refreshed it, or a message was kept while it is signed in. Returns
    /// how many were delivered (and deleted).
    ///
    /// The store is asked only when `aor` is among the recipients this front-end knows to
    /// have messages waiting — read at start, added to when a message is kept here, when
    /// the change feed says one was kept elsewhere, or when a round stops short — so that a
    /// REGISTER costs no store round trip otherwise: not a refresh, by far the most
    /// frequent request, and not the first REGISTER of every device when a whole site
    /// signs in again at once.
    pub async fn deliver(&self, aor: &str, binding: &Binding) -> usize {
        if !self.waiting().contains(aor) {
            return 0;
        }
        let mut delivered = 0;
        let mut rounds = 0;
        loop {
            if !self.delivering().insert(aor.to_owned()) {
                debug!(%aor, "a delivery round is already running");
                break;
            }
            let round = Round {
                messaging: self,
                aor: aor.to_owned(),
            };
            // A message kept while the round runs (another request found no binding a moment
            // before the REGISTER, or another front-end kept it) puts the user back among
            // those waiting, and a call of this function meanwhile finds the round running
            // and leaves: so the round goes again until nothing is waiting — also when a
            // message came just as the round ended (checked after it let go). Bounded: a
            // steady stream of messages to one user is left to the next trigger.
            let stopped = self.round(aor, binding, &mut delivered).await;
            drop(round);
            rounds += 1;
            if stopped || rounds >= MAX_ROUNDS || !self.waiting().contains(aor) {
                break;
            }
        }
        if delivered > 0 {
            info!(%aor, delivered, "offline messages delivered");
        }
        delivered
    }

    /// One delivery round: `aor`'s pending messages, oldest first, until one is not
    /// acknowledged. Returns true when the round stopped short (the user stays waiting).
    async fn round(&self, aor: &str, binding: &Binding, delivered: &mut usize) -> bool {
        // Taken out before the store is read: a message kept meanwhile puts it back.
        self.waiting().remove(aor);
        let pending = match self.store.pending(aor, self.not_before()).await {
            Ok(p) => p,
            Err(e) => {
                warn!(%aor, error = %e, "offline messages could not be read");
                self.waiting().insert(aor.to_owned());
                return true;
            }
        };
        for message in pending {
            if !self.send_one(aor, binding, &message).await {
                debug!(%aor, id = message.id, "offline message not acknowledged; kept");
                self.waiting().insert(aor.to_owned());
                return true;
            }
            if let Err(e) = self.store.ack(message.id).await {
                warn!(%aor, id = message.id, error = %e, "delivered message not deleted; it may come again");
                self.waiting().insert(aor.to_owned());
                return true;
            }
            *delivered += 1;
        }
        false
    }

    /// The MESSAGE carrying a stored message to `binding`.
    fn request(&self, aor: &str, binding: &Binding, m: &OfflineMessage) -> Bytes {
        let domain = aor.rsplit_once('@').map_or("confab", |(_, d)| d);
        let from = if m.from.contains(";tag=") {
            m.from.clone()
        } else {
            format!("{};tag={}", m.from, ids::token())
        };
        let via = self.listeners.via(&binding.flow, &ids::branch());
        let bytes = RequestBuilder::new("MESSAGE", binding.contact().to_owned())
            .header("Via", via)
            .header("Max-Forwards", "70")
            .header("From", from)
            .header("To", format!("<sip:{aor}>"))
            .header("Call-ID", format!("confab-offline-{}@{domain}", m.id))
            .header("CSeq", "1 MESSAGE")
            .header("Date", http_date(m.received_at))
            .body(m.content_type.clone(), m.body.clone())
            .build();
        prepend_routes(bytes, binding.path())
    }

    /// Sends one message; true on a 2xx.
    async fn send_one(&self, aor: &str, binding: &Binding, m: &OfflineMessage) -> bool {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let request = self.request(aor, binding, m);
        let key = match self.driver.send_request(request, binding.flow, tx) {
            Ok(key) => key,
            Err(e) => {
                warn!(%aor, error = %e, "offline message could not be sent");
                return false;
            }
        };
        // Bounded by the client transaction's own Timer F.
        let mut delivered = false;
        while let Some((_, event)) = rx.recv().await {
            match event {
                ClientEvent::Response(r) => match r.status() {
                    Some(s) if s < 200 => continue,
                    Some(s) if s < 300 => delivered = true,
                    s => debug!(%aor, status = ?s, "offline message refused by the client"),
                },
                ClientEvent::Timeout | ClientEvent::TransportError | ClientEvent::Terminated => {}
            }
            break;
        }
        // What the transaction still does (absorb retransmitted responses) needs nobody.
        self.driver.detach(&key, None);
        delivered
    }
}

/// An RFC 1123 date (RFC 3261 §20.17) for Unix seconds.
pub fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1).clamp(0, 11) as usize],
        year,
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::http_date;

    #[test]
    fn dates_are_rfc1123() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
