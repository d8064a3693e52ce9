//! The client half of the core: client transactions and whoever waits for their responses,
//! the ACK for a 2xx to an INVITE and the dialog it establishes (RFC 3261 §13.2.2.4), and
//! requests inside a dialog.
//!
//! The ACK is sent here, as soon as the 2xx arrives, not by the [`crate::Call`] handle: a
//! call whose owner is slow to look still gets its ACK in time, and retransmitted 2xx
//! responses (which the layer passes on while the INVITE transaction is Accepted) get the
//! same ACK again without bothering the handle. A 2xx from a second fork, or for a call
//! whose handle is gone, is acknowledged and ended with BYE at once.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use confab_sip::transaction::TransactionKey;
use confab_sip::Message;
use tokio::sync::{mpsc, watch};
use tracing::debug;

use super::{CallLink, Core, DialogEntry, TxEvent};
use crate::dialog::{CallState, Dialog, DialogId, EndReason};
use crate::error::UaError;

/// Provisional responses passed on per transaction; more are dropped (a peer could send
/// any number).
const MAX_PROVISIONAL: u16 = 32;

/// The owner of a client transaction.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(super) events: mpsc::UnboundedSender<TxEvent>,
    invite: bool,
    provisional: u16,
    /// ACKs sent for 2xx responses, by the To tag they answer.
    acks: Vec<(String, SocketAddr, Bytes)>,
    /// The dialog a BYE ends, forgotten once the BYE has its answer.
    ends: Option<DialogId>,
}

impl Waiter {
    fn new(events: mpsc::UnboundedSender<TxEvent>, invite: bool) -> Waiter {
        Waiter {
            events,
            invite,
            provisional: 0,
            acks: Vec::new(),
            ends: None,
        }
    }
}

impl Core {
    /// Starts a client transaction.
    pub(super) fn send_request(
        &mut self,
        request: Bytes,
        to: SocketAddr,
        events: mpsc::UnboundedSender<TxEvent>,
    ) -> Result<TransactionKey, UaError> {
        let invite = request.starts_with(b"INVITE ");
        let key = self
            .layer
            .send_request(request, to, self.reliability, Instant::now())?;
        self.clients
            .insert(key.clone(), Waiter::new(events, invite));
        if invite {
            let limit = self.shared.config.invite_timeout;
            self.at(limit, super::Due::CancelInvite(key.clone()));
        }
        Ok(key)
    }

    /// Cancels an INVITE client transaction (the layer builds the CANCEL).
    pub(super) fn cancel(
        &mut self,
        invite: &TransactionKey,
        events: mpsc::UnboundedSender<TxEvent>,
    ) -> Result<TransactionKey, UaError> {
        let key = self.layer.cancel(invite, Instant::now())?;
        self.clients.insert(key.clone(), Waiter::new(events, false));
        Ok(key)
    }

    /// Sends `method` in dialog `id`; returns the request as sent and where it went.
    pub(super) fn in_dialog(
        &mut self,
        id: &DialogId,
        method: &str,
        headers: &[(String, String)],
        body: Option<&(String, Vec<u8>)>,
        events: mpsc::UnboundedSender<TxEvent>,
    ) -> Result<(Message, SocketAddr), UaError> {
        let server = self.shared.local.server;
        let entry = self.dialogs.get_mut(id).ok_or(UaError::NoDialog)?;
        let to = entry
            .dialog
            .next_hop(server)
            .ok_or_else(|| UaError::NoRoute("the dialog's remote target".into()))?;
        let bytes = entry
            .dialog
            .request(method, &self.shared.local, headers, body);
        if method == "BYE" {
            entry
                .dialog
                .state
                .send_replace(CallState::Ended(EndReason::LocalBye));
            entry.awaiting_ack = None;
        }
        let key = self.send_request(bytes, to, events)?;
        if method == "BYE" {
            if let Some(w) = self.clients.get_mut(&key) {
                w.ends = Some(id.clone());
            }
        }
        // The layer keeps the request it parsed while starting the transaction.
        let sent = self
            .layer
            .request(&key)
            .cloned()
            .ok_or(UaError::Transaction(
                confab_sip::transaction::TransactionError::UnknownTransaction,
            ))?;
        Ok((sent, to))
    }

    /// A response for client transaction `key`.
    pub(super) fn on_response(&mut self, key: TransactionKey, response: Message) {
        let status = response.status().unwrap_or_default();
        let Some(w) = self.clients.get_mut(&key) else {
            return;
        };
        if w.invite && (200..300).contains(&status) {
            self.on_invite_2xx(&key, response);
            return;
        }
        if status < 200 {
            if w.provisional >= MAX_PROVISIONAL {
                return;
            }
            w.provisional += 1;
        } else if !matches!(status, 401 | 407) {
            if let Some(id) = w.ends.take() {
                self.dialogs.remove(&id);
            }
        }
        let _ = w.events.send(TxEvent::Response {
            response,
            call: None,
        });
    }

    fn on_invite_2xx(&mut self, key: &TransactionKey, response: Message) {
        let Some(remote_tag) = response.to().ok().and_then(|t| t.tag()).map(str::to_owned) else {
            debug!("2xx to INVITE without To tag ignored");
            return;
        };
        let server = self.shared.local.server;
        let Some(w) = self.clients.get_mut(key) else {
            return;
        };
        if let Some((_, to, ack)) = w.acks.iter().find(|(tag, _, _)| *tag == remote_tag) {
            // A retransmitted 2xx: our ACK was lost.
            self.direct.push((*to, ack.clone()));
            return;
        }
        let Some(invite) = self.layer.request(key).cloned() else {
            return;
        };
        let (state, watcher) = watch::channel(CallState::Confirmed);
        let mut dialog = match Dialog::uac(&invite, &response, state) {
            Ok(d) => d,
            Err(why) => {
                debug!(
                    why,
                    "2xx to INVITE establishes no dialog; passed on as it is"
                );
                let _ = w.events.send(TxEvent::Response {
                    response,
                    call: None,
                });
                return;
            }
        };
        let Some(to) = dialog.next_hop(server) else {
            debug!("2xx to INVITE with a remote target that cannot be reached; not acknowledged");
            return;
        };
        let ack = dialog.ack(&invite, &self.shared.local);
        self.direct.push((to, ack.clone()));
        let first = w.acks.is_empty();
        w.acks.push((remote_tag, to, ack));
        if first && !w.events.is_closed() {
            let call = CallLink {
                id: dialog.id.clone(),
                state: watcher,
            };
            let _ = w.events.send(TxEvent::Response {
                response,
                call: Some(call),
            });
            self.dialogs.insert(
                dialog.id.clone(),
                DialogEntry {
                    dialog,
                    awaiting_ack: None,
                },
            );
        } else {
            // A second fork answered too, or nobody wants the call any more.
            let bye = dialog.request("BYE", &self.shared.local, &[], None);
            dialog
                .state
                .send_replace(CallState::Ended(EndReason::LocalBye));
            let (events, _) = mpsc::unbounded_channel();
            let _ = self.send_request(bye, to, events);
        }
    }
}
