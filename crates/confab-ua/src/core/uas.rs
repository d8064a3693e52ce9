//! The server half of the core: what happens to each incoming request.
//!
//! Every request is delivered to the application as an [`Incoming`]; some are also answered
//! here first, per [`crate::UaConfig`]: OPTIONS and MESSAGE with 200, INVITE with 180 and
//! then the [`InviteAnswer`] policy, BYE with 200 (481 outside a known dialog), CANCEL with
//! 200 and its INVITE with 487. The rest wait for the application, which has
//! [`crate::UaConfig::answer_timeout`] to answer before the core does (480 for INVITE, 500
//! otherwise); so does a request whose [`Incoming`] is dropped unanswered, or that finds the
//! delivery queue full (503).
//!
//! A 2xx to INVITE establishes the callee's dialog. Over UDP the core retransmits it (T1
//! doubling up to T2, RFC 3261 §13.3.1.4) until the ACK arrives; with no ACK after 64·T1 it
//! ends the call with BYE.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Instant;

use confab_sip::transaction::TransactionKey;
use confab_sip::{Message, Method};
use tokio::sync::watch;
use tracing::debug;

use super::{AwaitAck, CallLink, Core, DialogEntry, Due, Reply};
use crate::config::InviteAnswer;
use crate::dialog::{CallState, Dialog, DialogId, EndReason};
use crate::error::UaError;
use crate::incoming::Incoming;
use crate::request::ALLOW;
use crate::{ids, minimal_sdp};

/// A server transaction the core answers or waits for the application to answer.
#[derive(Debug)]
pub(crate) struct ServerTx {
    request: Message,
    source: SocketAddr,
    to_tag: String,
    final_sent: bool,
    /// The INVITE's call state, until its 2xx moves it into the dialog.
    call: Option<watch::Sender<CallState>>,
}

impl Core {
    /// A new request (not ACK or CANCEL).
    pub(super) fn on_request(&mut self, key: TransactionKey, request: Message, peer: SocketAddr) {
        let method = request.method();
        let existing = DialogId::of_request(&request);
        let to_tag = existing
            .as_ref()
            .map_or_else(ids::tag, |id| id.local_tag.clone());
        self.servers.insert(
            key.clone(),
            ServerTx {
                request: request.clone(),
                source: peer,
                to_tag,
                final_sent: false,
                call: None,
            },
        );
        if method == Some(Method::Notify) {
            if let super::subs::NotifyFate::Handled = self.on_notify(&key, &request, peer) {
                return;
            }
        }
        let config = &self.shared.config;
        let auto = match method {
            Some(Method::Invite) => return self.on_invite(key, request, peer, existing),
            Some(Method::Bye) => Some(match existing.and_then(|id| self.dialogs.remove(&id)) {
                Some(entry) => {
                    entry
                        .dialog
                        .state
                        .send_replace(CallState::Ended(EndReason::RemoteBye));
                    Reply::new(200, "OK")
                }
                None => Reply::new(481, "Call/Transaction Does Not Exist"),
            }),
            Some(Method::Options) if config.auto_options => {
                let mut r = Reply::new(200, "OK");
                r.headers.push(("Allow".into(), ALLOW.into()));
                r.headers
                    .push(("Accept".into(), "application/sdp, text/plain".into()));
                Some(r)
            }
            Some(Method::Message) if config.auto_message => Some(Reply::new(200, "OK")),
            _ => None,
        };
        self.answer_and_deliver(key, request, peer, auto, None);
    }

    fn on_invite(
        &mut self,
        key: TransactionKey,
        request: Message,
        peer: SocketAddr,
        existing: Option<DialogId>,
    ) {
        let policy = self.shared.config.invite.clone();
        if let Some(id) = existing {
            // A re-INVITE: only inside a dialog we know.
            if !self.dialogs.contains_key(&id) {
                let r = Reply::new(481, "Call/Transaction Does Not Exist");
                return self.answer_and_deliver(key, request, peer, Some(r), None);
            }
            let auto = matches!(policy, InviteAnswer::Accept { .. }).then(|| self.sdp_answer());
            return self.answer_and_deliver(key, request, peer, auto, None);
        }
        let (state, watcher) = watch::channel(CallState::Early);
        let link = self.servers.get_mut(&key).map(|tx| {
            tx.call = Some(state);
            CallLink {
                id: DialogId {
                    call_id: request.call_id().unwrap_or_default().to_owned(),
                    local_tag: tx.to_tag.clone(),
                    remote_tag: request
                        .from()
                        .ok()
                        .and_then(|f| f.tag())
                        .unwrap_or_default()
                        .to_owned(),
                },
                state: watcher,
            }
        });
        if self.shared.config.ring {
            let _ = self.respond(&key, Reply::new(180, "Ringing"));
        }
        let auto = match policy {
            InviteAnswer::Manual => None,
            InviteAnswer::Reject { status, reason } => Some(Reply::new(status, &reason)),
            InviteAnswer::Accept { after, .. } => {
                self.at(after, Due::AutoAnswer(key.clone()));
                // Delivered as answered: the 200 is the core's business.
                let status = 200;
                let incoming = Incoming::new(
                    self.shared.clone(),
                    request,
                    peer,
                    Some(key),
                    Some(status),
                    link,
                );
                if self.incoming.try_send(incoming).is_err() {
                    self.shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        };
        self.answer_and_deliver(key, request, peer, auto, link);
    }

    /// The policy's 200 with an SDP answer.
    fn sdp_answer(&self) -> Reply {
        let sdp = match &self.shared.config.invite {
            InviteAnswer::Accept { sdp: Some(sdp), .. } => sdp.clone(),
            _ => minimal_sdp(self.sdp_ip()),
        };
        let mut r = Reply::new(200, "OK");
        r.body = Some(("application/sdp".into(), sdp.into_bytes()));
        r
    }

    fn sdp_ip(&self) -> IpAddr {
        self.shared.local.addr.ip()
    }

    /// Answers with `auto` if given, then delivers the request; a request left to the
    /// application gets a deadline, or 503 when it cannot be delivered.
    fn answer_and_deliver(
        &mut self,
        key: TransactionKey,
        request: Message,
        peer: SocketAddr,
        auto: Option<Reply>,
        call: Option<CallLink>,
    ) {
        let status = auto.as_ref().map(|r| r.status);
        if let Some(reply) = auto {
            if let Err(e) = self.respond(&key, reply) {
                debug!(error = %e, "automatic answer refused");
            }
        }
        let incoming = Incoming::new(
            self.shared.clone(),
            request,
            peer,
            Some(key.clone()),
            status,
            call,
        );
        match self.incoming.try_send(incoming) {
            Ok(()) if status.is_none() => {
                let limit = self.shared.config.answer_timeout;
                self.at(limit, Due::AnswerDeadline(key));
            }
            Ok(()) => {}
            Err(e) => {
                self.shared
                    .stats
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // The Incoming comes back in the error; disarm its drop so that the 503
                // below is the only answer.
                let mut incoming = e.into_inner();
                incoming.disarm();
                if status.is_none() {
                    let _ = self.respond(&key, Reply::new(503, "Service Unavailable"));
                }
            }
        }
    }

    /// A CANCEL: 200 (or 481 when it matches nothing), and 487 to its INVITE if that is
    /// still unanswered.
    pub(super) fn on_cancel(
        &mut self,
        key: TransactionKey,
        request: Message,
        peer: SocketAddr,
        invite: Option<TransactionKey>,
    ) {
        let invite_tx = invite.and_then(|k| self.servers.get(&k).map(|tx| (k, tx.to_tag.clone())));
        let to_tag = invite_tx
            .as_ref()
            .map_or_else(ids::tag, |(_, tag)| tag.clone());
        self.servers.insert(
            key.clone(),
            ServerTx {
                request: request.clone(),
                source: peer,
                to_tag,
                final_sent: false,
                call: None,
            },
        );
        let answer = match invite_tx {
            Some((invite_key, _)) => {
                let state = self
                    .servers
                    .get_mut(&invite_key)
                    .filter(|tx| !tx.final_sent)
                    .and_then(|tx| tx.call.take());
                let cancelled = self
                    .respond(&invite_key, Reply::new(487, "Request Terminated"))
                    .is_ok();
                if let (true, Some(state)) = (cancelled, state) {
                    state.send_replace(CallState::Ended(EndReason::Cancelled));
                }
                Reply::new(200, "OK")
            }
            None => Reply::new(481, "Call/Transaction Does Not Exist"),
        };
        self.answer_and_deliver(key, request, peer, Some(answer), None);
    }

    /// The ACK for a 2xx (the layer absorbs the others): the callee's dialog is confirmed.
    pub(super) fn on_ack(&mut self, request: Message, peer: SocketAddr) {
        let Some(id) = DialogId::of_request(&request) else {
            return;
        };
        let Some(entry) = self.dialogs.get_mut(&id) else {
            return;
        };
        if entry.awaiting_ack.take().is_some() {
            entry.dialog.state.send_replace(CallState::Confirmed);
            let incoming = Incoming::new(self.shared.clone(), request, peer, None, None, None);
            if self.incoming.try_send(incoming).is_err() {
                self.shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Sends `reply` on server transaction `key`.
    pub(super) fn respond(&mut self, key: &TransactionKey, reply: Reply) -> Result<(), UaError> {
        let tx = self.servers.get_mut(key).ok_or(UaError::AlreadyAnswered)?;
        if tx.final_sent {
            return Err(UaError::AlreadyAnswered);
        }
        let invite = Core::is_invite(&tx.request);
        let local = &self.shared.local;
        let mut b = local.response(
            &tx.request,
            reply.status,
            &reply.reason,
            &tx.to_tag,
            tx.source,
        );
        if invite && (101..300).contains(&reply.status) {
            b = b.header("Contact", local.contact()).copy_record_route();
        }
        for (name, value) in reply.headers {
            b = b.header(name, value);
        }
        if let Some((ct, body)) = reply.body {
            b = b.body(ct, body);
        }
        let bytes = b.build();
        self.layer
            .send_response(key, bytes.clone(), Instant::now())?;
        if reply.status < 200 {
            return Ok(());
        }
        tx.final_sent = true;
        if !invite {
            return Ok(());
        }
        let state = tx.call.take();
        if reply.status >= 300 {
            if let Some(state) = state {
                state.send_replace(CallState::Ended(EndReason::Rejected(reply.status)));
            }
            return Ok(());
        }
        // A 2xx: the dialog starts (or, for a re-INVITE, takes the new target).
        let request = tx.request.clone();
        let to_tag = tx.to_tag.clone();
        let id = match DialogId::of_request(&request) {
            Some(id) => id,
            None => {
                let state = state.unwrap_or_else(|| watch::channel(CallState::Early).0);
                state.send_replace(CallState::Answered);
                match Dialog::uas(&request, &to_tag, state) {
                    Ok(d) => {
                        let id = d.id.clone();
                        let entry = DialogEntry {
                            dialog: d,
                            awaiting_ack: None,
                        };
                        self.dialogs.insert(id.clone(), entry);
                        id
                    }
                    Err(why) => {
                        debug!(why, "INVITE answered 2xx but establishes no dialog");
                        return Ok(());
                    }
                }
            }
        };
        let Some(entry) = self.dialogs.get_mut(&id) else {
            return Ok(());
        };
        entry.dialog.refresh_target(&request);
        let t1 = self.shared.timers.t1();
        entry.awaiting_ack = Some(AwaitAck {
            key: key.clone(),
            response: bytes,
            interval: t1,
        });
        if !self.reliability.is_reliable() {
            self.at(t1, Due::Resend2xx(id.clone()));
        }
        let limit = self.shared.timers.transaction_timeout();
        self.at(limit, Due::AckDeadline(id));
        Ok(())
    }

    /// The application dropped a request it had not answered.
    pub(super) fn abandon(&mut self, key: &TransactionKey) {
        self.answer_for_application(key);
    }

    fn answer_for_application(&mut self, key: &TransactionKey) {
        let Some(tx) = self.servers.get(key) else {
            return;
        };
        if tx.final_sent {
            return;
        }
        let reply = if Core::is_invite(&tx.request) {
            Reply::new(480, "Temporarily Unavailable")
        } else {
            Reply::new(500, "No Answer From Application")
        };
        let _ = self.respond(key, reply);
    }

    pub(super) fn on_due(&mut self, due: Due) {
        match due {
            Due::AutoAnswer(key) => {
                if self.servers.get(&key).is_some_and(|tx| !tx.final_sent) {
                    let reply = self.sdp_answer();
                    let _ = self.respond(&key, reply);
                }
            }
            Due::AnswerDeadline(key) => self.answer_for_application(&key),
            Due::CancelInvite(key) => {
                // Refused unless the INVITE is still ringing, which is the point.
                let (events, _) = tokio::sync::mpsc::unbounded_channel();
                if self.cancel(&key, events).is_ok() {
                    debug!("INVITE still ringing at invite_timeout; cancelled");
                }
            }
            Due::Resend2xx(id) => {
                let t2 = self.shared.timers.t2();
                let Some(entry) = self.dialogs.get_mut(&id) else {
                    return;
                };
                let Some(wait) = entry.awaiting_ack.as_mut() else {
                    return;
                };
                let now = Instant::now();
                if self
                    .layer
                    .send_response(&wait.key, wait.response.clone(), now)
                    .is_err()
                {
                    return;
                }
                wait.interval = wait.interval.saturating_mul(2).min(t2);
                let next = wait.interval;
                self.at(next, Due::Resend2xx(id));
            }
            Due::AckDeadline(id) => {
                let waiting = self
                    .dialogs
                    .get(&id)
                    .is_some_and(|e| e.awaiting_ack.is_some());
                if !waiting {
                    return;
                }
                debug!(call_id = %id.call_id, "no ACK for our 2xx; ending the call");
                let (events, _) = tokio::sync::mpsc::unbounded_channel();
                let _ = self.in_dialog(&id, "BYE", &[], None, events);
                if let Some(entry) = self.dialogs.remove(&id) {
                    entry
                        .dialog
                        .state
                        .send_replace(CallState::Ended(EndReason::NoAck));
                }
            }
        }
    }
}
