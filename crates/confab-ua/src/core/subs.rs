//! The subscriber's half of the core (RFC 6665 §4.1): the subscriptions handles hold, the
//! dialog each creates — from its 2xx or from a NOTIFY that overtakes the 2xx — and the
//! NOTIFYs that arrive in them, answered here and queued for their [`crate::Subscription`].

use std::collections::HashMap;
use std::net::SocketAddr;

use confab_sip::transaction::TransactionKey;
use confab_sip::Message;
use tokio::sync::{mpsc, watch};
use tracing::debug;

use super::{Core, DialogEntry, Reply};
use crate::dialog::{CallState, Dialog, DialogId};
use crate::error::UaError;
use crate::subscription::{package, Notify};

/// A subscription as the core finds it: the Call-ID and our From tag of its SUBSCRIBE
/// (the To tag of every NOTIFY in it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SubKey {
    pub call_id: String,
    pub local_tag: String,
}

/// One subscription.
#[derive(Debug)]
pub(crate) struct SubEntry {
    /// The event package, lower-cased.
    event: String,
    /// Where its NOTIFYs go; closed once the handle is gone.
    notifies: mpsc::UnboundedSender<Notify>,
    /// Its dialog, once the 2xx or a NOTIFY established it.
    dialog: Option<DialogId>,
}

/// What the core does with a NOTIFY.
pub(super) enum NotifyFate {
    /// Not ours: deliver it to the application like any request.
    Deliver,
    /// Answered here.
    Handled,
}

impl Core {
    /// A handle is about to send a SUBSCRIBE.
    pub(super) fn watch(
        &mut self,
        key: SubKey,
        event: String,
        notifies: mpsc::UnboundedSender<Notify>,
    ) {
        self.subscriptions.insert(
            key,
            SubEntry {
                event,
                notifies,
                dialog: None,
            },
        );
    }

    /// The SUBSCRIBE's 2xx: the dialog, unless a NOTIFY made it already (then only our
    /// CSeq and the remote target are taken from the 2xx), or a terminating NOTIFY ended the
    /// subscription before the handle got here (a fetch: its NOTIFY waits in the queue).
    pub(super) fn subscribed(&mut self, key: &SubKey, response: &Message) -> Result<(), UaError> {
        let Some(entry) = self.subscriptions.get_mut(key) else {
            return Ok(());
        };
        let seq = response.cseq().map(|c| c.seq).unwrap_or_default();
        if let Some(id) = &entry.dialog {
            if let Some(d) = self.dialogs.get_mut(id) {
                d.dialog.raise_local_cseq(seq);
                d.dialog.refresh_target(response);
            }
            return Ok(());
        }
        // The 2xx echoes the SUBSCRIBE's From, Call-ID and CSeq: it stands in for the request.
        let (state, _) = watch::channel(CallState::Confirmed);
        let dialog = Dialog::uac(response, response, state).map_err(|why| UaError::Rejected {
            status: response.status().unwrap_or_default(),
            reason: format!("2xx to SUBSCRIBE establishes no dialog: {why}"),
        })?;
        attach(&mut self.dialogs, entry, dialog);
        Ok(())
    }

    /// The handle is gone (or its SUBSCRIBE failed). Its dialog stays until the notifier
    /// ends it, so that a NOTIFY still in flight is refused with 481 rather than delivered.
    pub(super) fn unwatch(&mut self, key: &SubKey) {
        if let Some(entry) = self.subscriptions.get(key) {
            if entry.dialog.is_none() {
                self.subscriptions.remove(key);
            }
        }
    }

    /// A NOTIFY: answered and queued when it is in one of our subscriptions.
    pub(super) fn on_notify(
        &mut self,
        key: &TransactionKey,
        request: &Message,
        _peer: SocketAddr,
    ) -> NotifyFate {
        let Some(sub_key) = sub_key(request) else {
            return NotifyFate::Deliver;
        };
        let Some(entry) = self.subscriptions.get(&sub_key) else {
            return NotifyFate::Deliver;
        };
        let gone = entry.notifies.is_closed();
        let remote_tag = request
            .from()
            .ok()
            .and_then(|f| f.tag())
            .unwrap_or_default();
        let reply = if gone
            // A second notifier for a forked SUBSCRIBE: one dialog is all a handle follows.
            || entry.dialog.as_ref().is_some_and(|id| id.remote_tag != remote_tag)
        {
            Reply::new(481, "Subscription Does Not Exist")
        } else if request
            .event()
            .ok()
            .flatten()
            .is_none_or(|e| package(e.package) != entry.event)
        {
            let mut r = Reply::new(489, "Bad Event");
            r.headers.push(("Allow-Events".into(), entry.event.clone()));
            r
        } else {
            Reply::new(200, "OK")
        };
        let ok = reply.status == 200;
        if let Err(e) = self.respond(key, reply) {
            debug!(error = %e, "NOTIFY not answered");
        }
        if gone {
            self.forget(&sub_key);
        }
        if !ok {
            return NotifyFate::Handled;
        }
        let Some(entry) = self.subscriptions.get_mut(&sub_key) else {
            return NotifyFate::Handled;
        };
        match &entry.dialog {
            Some(id) => {
                if let Some(d) = self.dialogs.get_mut(id) {
                    d.dialog.refresh_target(request);
                }
            }
            None => {
                let (state, _) = watch::channel(CallState::Confirmed);
                match Dialog::uas(request, &sub_key.local_tag, state) {
                    Ok(dialog) => attach(&mut self.dialogs, entry, dialog),
                    Err(why) => debug!(why, "NOTIFY before the 2xx establishes no dialog"),
                }
            }
        }
        let notify = Notify::of(request.clone());
        let terminated = notify.is_terminated();
        let _ = entry.notifies.send(notify);
        if terminated {
            self.forget(&sub_key);
        }
        NotifyFate::Handled
    }

    /// Drops a subscription and its dialog.
    fn forget(&mut self, key: &SubKey) {
        if let Some(entry) = self.subscriptions.remove(key) {
            if let Some(id) = entry.dialog {
                self.dialogs.remove(&id);
            }
        }
    }
}

/// Makes `dialog` the subscription's.
fn attach(dialogs: &mut HashMap<DialogId, DialogEntry>, entry: &mut SubEntry, dialog: Dialog) {
    entry.dialog = Some(dialog.id.clone());
    dialogs.insert(
        dialog.id.clone(),
        DialogEntry {
            dialog,
            awaiting_ack: None,
        },
    );
}

/// The subscription a NOTIFY names: its Call-ID and To tag.
fn sub_key(request: &Message) -> Option<SubKey> {
    Some(SubKey {
        call_id: request.call_id().ok()?.to_owned(),
        local_tag: request.to().ok()?.tag()?.to_owned(),
    })
}
