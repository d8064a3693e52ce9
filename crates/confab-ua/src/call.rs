//! [`Call`]: one INVITE session, from the caller's side ([`crate::UserAgent::invite`]) or
//! the callee's ([`crate::Incoming::call`]).
//!
//! The caller drives its call by waiting on it: [`Call::next_response`] yields each
//! provisional response and then the final one, answering a 401/407 on the way with a new
//! INVITE (RFC 3261 §22.2); [`Call::wait_final`] skips to the outcome. The ACK for a 2xx is
//! sent by the core as soon as the 2xx arrives, whether or not anybody is waiting.
//! [`Call::cancel`] sends CANCEL once the call rings, [`Call::bye`] hangs up, and either side
//! can wait for the other to hang up ([`Call::wait_ended`]). A caller's call dropped while
//! ringing is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use confab_sip::transaction::TransactionKey;
use confab_sip::Message;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::auth::Exchange;
use crate::core::{CallLink, Command, TxEvent};
use crate::dialog::{CallState, EndReason};
use crate::error::UaError;
use crate::request::Outgoing;
use crate::shared::Shared;

/// How an INVITE ended.
#[derive(Debug, Clone)]
pub enum CallOutcome {
    /// A 2xx: the call is up and acknowledged.
    Answered(Message),
    /// A final failure (486 Busy Here, 480, 487 after CANCEL, 603 …).
    Rejected(Message),
}

impl CallOutcome {
    /// The final status code.
    pub fn status(&self) -> u16 {
        self.response().status().unwrap_or_default()
    }

    /// The final response.
    pub fn response(&self) -> &Message {
        match self {
            CallOutcome::Answered(m) | CallOutcome::Rejected(m) => m,
        }
    }

    /// True for [`CallOutcome::Answered`].
    pub fn is_answered(&self) -> bool {
        matches!(self, CallOutcome::Answered(_))
    }
}

/// The caller's INVITE in flight.
#[derive(Debug)]
struct Invite {
    out: Outgoing,
    to: SocketAddr,
    key: TransactionKey,
    events: mpsc::UnboundedReceiver<TxEvent>,
    exchange: Exchange,
    /// Past this the call is given up, even if the peer keeps ringing.
    deadline: Instant,
}

/// One call (see the module documentation).
#[derive(Debug)]
pub struct Call {
    shared: Arc<Shared>,
    invite: Option<Invite>,
    /// The INVITE as the callee received it.
    received: Option<Message>,
    provisional: Vec<Message>,
    final_response: Option<Message>,
    link: Option<CallLink>,
}

impl Call {
    /// Sends the INVITE of a new call.
    pub(crate) async fn start(shared: Arc<Shared>, mut out: Outgoing) -> Result<Call, UaError> {
        let to = crate::request::next_hop(&shared.local, &out.uri)?;
        let exchange = shared.auth().begin("INVITE");
        let (key, events) = send_invite(&shared, &mut out, &exchange, to).await?;
        let limit = shared.config.invite_timeout + shared.final_wait();
        Ok(Call {
            shared,
            invite: Some(Invite {
                out,
                to,
                key,
                events,
                exchange,
                deadline: Instant::now() + limit,
            }),
            received: None,
            provisional: Vec::new(),
            final_response: None,
            link: None,
        })
    }

    /// The callee's side of an answered INVITE.
    pub(crate) fn callee(shared: Arc<Shared>, link: CallLink, invite: Message) -> Call {
        Call {
            shared,
            invite: None,
            received: Some(invite),
            provisional: Vec::new(),
            final_response: None,
            link: Some(link),
        }
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        match (&self.invite, &self.link) {
            (Some(inv), _) => &inv.out.call_id,
            (None, Some(link)) => &link.id.call_id,
            (None, None) => "",
        }
    }

    /// The provisional responses received so far (caller).
    pub fn provisional(&self) -> &[Message] {
        &self.provisional
    }

    /// The final response, once it has arrived (caller).
    pub fn final_response(&self) -> Option<&Message> {
        self.final_response.as_ref()
    }

    /// The other side's SDP: the body of the 2xx (caller) or of the INVITE (callee).
    pub fn remote_sdp(&self) -> Option<&[u8]> {
        let msg = match &self.received {
            Some(invite) => invite,
            None => self
                .final_response
                .as_ref()
                .filter(|r| r.status().is_some_and(|s| (200..300).contains(&s)))?,
        };
        Some(msg.body()).filter(|b| !b.is_empty())
    }

    /// Where the call stands now.
    pub fn state(&self) -> CallState {
        if let Some(link) = &self.link {
            return *link.state.borrow();
        }
        match self.final_response.as_ref().and_then(Message::status) {
            Some(s) if s >= 300 => CallState::Ended(EndReason::Rejected(s)),
            _ => CallState::Early,
        }
    }

    /// The next response to the INVITE: each provisional response, then the final one
    /// (returned again on every later call). Challenges are answered on the way. Errors:
    /// [`UaError::TransactionTimeout`] when nothing answers, [`UaError::AuthRejected`],
    /// [`UaError::Timeout`] when the call rang past [`crate::UaConfig::invite_timeout`].
    pub async fn next_response(&mut self) -> Result<Message, UaError> {
        if let Some(f) = &self.final_response {
            return Ok(f.clone());
        }
        let shared = self.shared.clone();
        let inv = self.invite.as_mut().ok_or(UaError::NoDialog)?;
        loop {
            let event = tokio::time::timeout_at(inv.deadline, inv.events.recv()).await;
            let (response, call) = match event {
                Err(_) => {
                    let limit = shared.config.invite_timeout;
                    return Err(UaError::Timeout(limit));
                }
                Ok(None) => return Err(UaError::Shutdown),
                Ok(Some(TxEvent::Timeout)) => return Err(UaError::TransactionTimeout),
                Ok(Some(TxEvent::TransportError)) => return Err(UaError::Transport(inv.to)),
                Ok(Some(TxEvent::Response { response, call })) => (response, call),
            };
            let status = response.status().unwrap_or_default();
            if status < 200 {
                self.provisional.push(response.clone());
                return Ok(response);
            }
            if matches!(status, 401 | 407) {
                let retry = shared.auth().on_final(&mut inv.exchange, &response);
                match retry {
                    Ok(true) => {
                        inv.out.cseq = inv.out.cseq.wrapping_add(1);
                        let (key, events) =
                            send_invite(&shared, &mut inv.out, &inv.exchange, inv.to).await?;
                        inv.key = key;
                        inv.events = events;
                        continue;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        self.final_response = Some(response);
                        return Err(e);
                    }
                }
            }
            if (200..300).contains(&status) {
                self.link = call;
            }
            self.final_response = Some(response.clone());
            return Ok(response);
        }
    }

    /// Waits for the final response: [`CallOutcome::Answered`] for a 2xx (the call is up),
    /// [`CallOutcome::Rejected`] otherwise.
    pub async fn wait_final(&mut self) -> Result<CallOutcome, UaError> {
        loop {
            let response = self.next_response().await?;
            let status = response.status().unwrap_or_default();
            if (200..300).contains(&status) {
                return Ok(CallOutcome::Answered(response));
            }
            if status >= 300 {
                return Ok(CallOutcome::Rejected(response));
            }
        }
    }

    /// Cancels the ringing call (RFC 3261 §9.1): waits for a provisional response if none
    /// has come yet, sends CANCEL, and returns the INVITE's outcome — normally
    /// `Rejected(487)`. If the callee answered first, the call is hung up with BYE and the
    /// outcome is `Answered`.
    pub async fn cancel(&mut self) -> Result<CallOutcome, UaError> {
        if self.final_response.is_some() || self.invite.is_none() {
            return Err(UaError::CannotCancel);
        }
        if self.provisional.is_empty() {
            let first = self.next_response().await?;
            if first.status().unwrap_or_default() >= 200 {
                return self.settle_cancelled().await;
            }
        }
        let Some(inv) = &self.invite else {
            return Err(UaError::CannotCancel);
        };
        let (events, mut rx) = mpsc::unbounded_channel();
        let (invite, inv_to) = (inv.key.clone(), inv.to);
        let sent = self
            .shared
            .ask(|reply| Command::Cancel {
                invite,
                events,
                reply,
            })
            .await?;
        if sent.is_ok() {
            // 200 or 481; either way the INVITE's final response tells the outcome.
            let _ = self.shared.final_of(&mut rx, inv_to).await;
        }
        self.settle_cancelled().await
    }

    async fn settle_cancelled(&mut self) -> Result<CallOutcome, UaError> {
        let outcome = self.wait_final().await?;
        if outcome.is_answered() {
            let _ = self.bye().await;
        }
        Ok(outcome)
    }

    /// Hangs up with BYE; returns its final response.
    pub async fn bye(&mut self) -> Result<Message, UaError> {
        self.request("BYE", &[], None).await
    }

    /// Sends `method` inside the call (INFO, MESSAGE, BYE …) and returns its final
    /// response.
    pub async fn request(
        &mut self,
        method: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Message, UaError> {
        let link = self.link.as_ref().ok_or(UaError::NoDialog)?;
        if matches!(*link.state.borrow(), CallState::Ended(_)) {
            return Err(UaError::NoDialog);
        }
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        let body = body.map(|(ct, b)| (ct.to_owned(), b.to_vec()));
        let id = link.id.clone();
        self.shared.in_dialog(&id, method, &headers, body).await
    }

    /// Waits until the call is confirmed (the ACK for the 2xx was sent or received).
    pub async fn wait_confirmed(&mut self, within: Duration) -> Result<(), UaError> {
        match self
            .wait_state(within, |s| {
                !matches!(s, CallState::Early | CallState::Answered)
            })
            .await?
        {
            CallState::Confirmed => Ok(()),
            _ => Err(UaError::NoDialog),
        }
    }

    /// Waits until the call is over, and says why.
    pub async fn wait_ended(&mut self, within: Duration) -> Result<EndReason, UaError> {
        match self
            .wait_state(within, |s| matches!(s, CallState::Ended(_)))
            .await?
        {
            CallState::Ended(reason) => Ok(reason),
            _ => Err(UaError::NoDialog),
        }
    }

    async fn wait_state(
        &mut self,
        within: Duration,
        done: impl FnMut(&CallState) -> bool,
    ) -> Result<CallState, UaError> {
        let link = self.link.as_mut().ok_or(UaError::NoDialog)?;
        match tokio::time::timeout(within, link.state.wait_for(done)).await {
            Err(_) => Err(UaError::Timeout(within)),
            Ok(Err(_)) => Err(UaError::Shutdown),
            Ok(Ok(state)) => Ok(*state),
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // A call dropped while ringing is cancelled; one already answered is left as it is
        // (hang up with `bye` first).
        if self.final_response.is_some() {
            return;
        }
        if let Some(inv) = &self.invite {
            let (events, _) = mpsc::unbounded_channel();
            let (reply, _) = tokio::sync::oneshot::channel();
            let _ = self.shared.cmd.try_send(Command::Cancel {
                invite: inv.key.clone(),
                events,
                reply,
            });
        }
    }
}

/// Sends the INVITE with the credentials the exchange carries.
async fn send_invite(
    shared: &Shared,
    out: &mut Outgoing,
    exchange: &Exchange,
    to: SocketAddr,
) -> Result<(TransactionKey, mpsc::UnboundedReceiver<TxEvent>), UaError> {
    let headers = shared.auth().headers(exchange, &out.method, &out.uri);
    let bytes = out.build(&shared.local, &headers);
    shared.start(bytes, to).await
}
