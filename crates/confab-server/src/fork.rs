//! The stateful proxy's response context (RFC 3261 §16.7–16.10): one task per proxied
//! request, which sends the request's copies in parallel through client transactions and
//! answers upstream.
//!
//! - Provisional responses (except 100) are relayed at once.
//! - Every 2xx is relayed at once — for INVITE each one, including those of other branches
//!   and retransmissions (RFC 6026) — and the first cancels the other INVITE branches.
//! - A 6xx cancels the other branches and becomes the best response.
//! - Otherwise, once every branch has its final response, the best is relayed: a 6xx if
//!   any, else one of the lowest class; a 503 becomes 500 (§16.7 step 6); a branch that
//!   timed out counts as 408, one whose transport failed as 503.
//! - **CANCEL** from upstream ([`Proxy::cancel`]): 200 to the CANCEL (by the router), CANCEL
//!   on every branch that has a provisional response, a branch that has none yet is
//!   cancelled as soon as one comes (RFC 3261 §9.1) and counts as finished. Once every branch
//!   has finished, the INVITE gets 487 — unless a 2xx went up first.
//! - **Timer C**: an INVITE with no final response after three minutes is cancelled on
//!   every branch, and branches still silent 32 s after a CANCEL count as 408, so the
//!   INVITE is always answered.
//!
//! The task ends once it has answered upstream and every branch is settled — has its final
//! response, timed out or failed — or has terminated. What a settled client transaction
//! still does is absorb retransmissions, which needs no task: the task detaches from it
//! ([`crate::transactions::TransactionDriver::detach`]), and an INVITE branch answered 2xx
//! leaves the driver the upstream server transaction, to which it relays that branch's
//! 2xx retransmissions (RFC 6026, Accepted). The task, and everything it holds, so lives
//! for the exchange, not for Timer K's 5 s or Timer M's 32 s after it — at thousands of
//! requests a second that was most of the server's memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use confab_sip::transaction::TransactionKey;
use confab_sip::{Message, Method};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::forward::upstream;
use crate::respond::{Answer, Responder};
use crate::transactions::ClientEvent;
use crate::transport::Source;

/// Timer C (RFC 3261 §16.6 item 11): more than three minutes.
const TIMER_C: Duration = Duration::from_secs(181);
/// How long cancelled branches may take to answer 487.
const CANCEL_GRACE: Duration = Duration::from_secs(32);

#[derive(Debug, Default)]
struct Branch {
    provisional: bool,
    /// Counts as finished for the best response (it may still be waiting for a CANCEL).
    done: bool,
    cancel_wanted: bool,
    /// Its client transaction has nothing left to report but retransmissions.
    settled: bool,
    /// It was answered 2xx.
    accepted: bool,
}

/// A final response of one branch; `None` when it was made up (timeout, transport error).
#[derive(Debug)]
struct Final {
    status: u16,
    response: Option<Message>,
}

/// The INVITEs being proxied, for CANCEL to find them.
#[derive(Debug)]
pub struct Proxy {
    responder: Arc<Responder>,
    invites: Mutex<HashMap<String, mpsc::UnboundedSender<()>>>,
}

/// What identifies an INVITE server transaction for CANCEL matching: the top Via's branch
/// and sent-by, and the Call-ID. `None` without an RFC 3261 branch.
fn invite_key(req: &Message) -> Option<String> {
    let via = req.via().ok()?;
    if !via.has_rfc3261_branch() {
        return None;
    }
    Some(format!(
        "{}|{}:{}|{}",
        via.branch()?,
        via.host_str().to_ascii_lowercase(),
        via.port().unwrap_or(0),
        req.call_id().ok()?
    ))
}

fn reason(status: u16) -> &'static str {
    match status {
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        487 => "Request Terminated",
        500 => "Server Internal Error",
        _ => "Service Unavailable",
    }
}

struct Context<'a> {
    proxy: &'a Proxy,
    req: &'a Message,
    source: &'a Source,
    invite: bool,
    branches: HashMap<TransactionKey, Branch>,
    finals: Vec<Final>,
    final_sent: bool,
    cancelled: bool,
    deadline: Option<Instant>,
}

impl Proxy {
    /// A proxy answering through `responder`.
    pub fn new(responder: Arc<Responder>) -> Self {
        Proxy {
            responder,
            invites: Mutex::new(HashMap::new()),
        }
    }

    fn invites(&self) -> MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<()>>> {
        self.invites.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Signals the INVITE that `cancel` cancels; false when none is being proxied (the
    /// caller answers 481).
    pub fn cancel(&self, cancel: &Message) -> bool {
        invite_key(cancel)
            .and_then(|k| self.invites().get(&k).map(|tx| tx.send(()).is_ok()))
            .unwrap_or(false)
    }

    /// INVITEs being proxied now.
    pub fn active_invites(&self) -> usize {
        self.invites().len()
    }

    /// Sends `copies` (each rewritten for its target, with its flow) and answers `req`
    /// upstream as the module documentation says, until every branch has ended.
    pub async fn fork(&self, req: &Message, source: &Source, copies: Vec<(Bytes, Source)>) {
        let invite = req.method() == Some(Method::Invite);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut cx = Context {
            proxy: self,
            req,
            source,
            invite,
            branches: HashMap::new(),
            finals: Vec::new(),
            final_sent: false,
            cancelled: false,
            deadline: invite.then(|| Instant::now() + TIMER_C),
        };
        let driver = self.responder.driver();
        for (bytes, flow) in copies {
            match driver.send_request(bytes, flow, tx.clone()) {
                Ok(key) => {
                    cx.branches.insert(key, Branch::default());
                }
                Err(e) => {
                    warn!(peer = %flow.peer, error = %e, "a copy of the request could not be sent");
                    cx.finals.push(Final {
                        status: 503,
                        response: None,
                    });
                }
            }
        }
        drop(tx);
        let (cancel_tx, mut cancel_rx) = mpsc::unbounded_channel();
        let key = invite.then(|| invite_key(req)).flatten();
        if let Some(k) = &key {
            self.invites().insert(k.clone(), cancel_tx);
        }
        let mut cancellable = key.is_some();
        loop {
            if !cx.final_sent && cx.branches.values().all(|b| b.done) {
                cx.answer_best().await;
            }
            if cx.final_sent && cx.branches.values().all(|b| b.settled) {
                cx.detach_all();
                break;
            }
            let deadline = cx.deadline;
            let sleep = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = rx.recv() => match event {
                    Some((k, e)) => cx.on_event(k, e).await,
                    None => break,
                },
                signal = cancel_rx.recv(), if cancellable => match signal {
                    Some(()) => {
                        debug!("INVITE cancelled upstream");
                        cx.cancelled = true;
                        cancellable = false;
                        cx.cancel_branches(None);
                    }
                    None => cancellable = false,
                },
                () = sleep => cx.on_deadline(),
            }
        }
        if let Some(k) = &key {
            self.invites().remove(k);
        }
        if !cx.final_sent {
            cx.answer_best().await;
        }
    }
}

impl Context<'_> {
    /// Leaves the settled branches to the driver (see the module documentation).
    fn detach_all(&mut self) {
        let driver = self.proxy.responder.driver();
        let upstream = self
            .invite
            .then(|| TransactionKey::for_request(self.req).ok())
            .flatten();
        for (key, b) in self.branches.drain() {
            driver.detach(&key, upstream.clone().filter(|_| b.accepted));
        }
    }

    async fn relay(&self, response: &Message) {
        match upstream(response) {
            Some(bytes) => {
                self.proxy
                    .responder
                    .relay(self.req, bytes, self.source)
                    .await
            }
            None => debug!("a response without our Via dropped"),
        }
    }

    async fn on_event(&mut self, key: TransactionKey, event: ClientEvent) {
        match event {
            ClientEvent::Response(resp) => {
                let status = resp.status().unwrap_or(500);
                let Some(branch) = self.branches.get_mut(&key) else {
                    return;
                };
                if status < 200 {
                    branch.provisional = true;
                    if branch.cancel_wanted {
                        let _ = self.proxy.responder.driver().cancel(&key);
                    }
                    if status > 100 && !self.final_sent {
                        self.relay(&resp).await;
                    }
                } else if status < 300 {
                    branch.done = true;
                    branch.settled = true;
                    branch.accepted = true;
                    if self.invite || !self.final_sent {
                        self.relay(&resp).await;
                    }
                    if !self.final_sent {
                        self.final_sent = true;
                        self.cancel_branches(Some(&key));
                    }
                } else {
                    branch.settled = true;
                    if branch.done {
                        return;
                    }
                    branch.done = true;
                    self.finals.push(Final {
                        status,
                        response: Some(*resp),
                    });
                    if status >= 600 {
                        self.cancel_branches(Some(&key));
                    }
                }
            }
            ClientEvent::Timeout => {
                self.finish(&key, 408);
                self.settle(&key);
            }
            ClientEvent::TransportError => {
                self.finish(&key, 503);
                self.settle(&key);
            }
            ClientEvent::Terminated => {
                self.finish(&key, 408);
                self.branches.remove(&key);
            }
        }
    }

    /// A branch ended without a response of its own.
    fn finish(&mut self, key: &TransactionKey, status: u16) {
        if let Some(b) = self.branches.get_mut(key) {
            if !b.done {
                b.done = true;
                self.finals.push(Final {
                    status,
                    response: None,
                });
            }
        }
    }

    fn settle(&mut self, key: &TransactionKey) {
        if let Some(b) = self.branches.get_mut(key) {
            b.settled = true;
        }
    }

    /// CANCEL on every unfinished INVITE branch but `except` (RFC 3261 §16.7 step 10).
    fn cancel_branches(&mut self, except: Option<&TransactionKey>) {
        if !self.invite {
            return;
        }
        let driver = self.proxy.responder.driver();
        for (key, b) in self.branches.iter_mut() {
            if b.done || Some(key) == except {
                continue;
            }
            if b.provisional {
                let _ = driver.cancel(key);
            } else {
                b.cancel_wanted = true;
                b.done = true;
                self.finals.push(Final {
                    status: 487,
                    response: None,
                });
            }
        }
        let grace = Instant::now() + CANCEL_GRACE;
        self.deadline = Some(self.deadline.map_or(grace, |d| d.min(grace)));
    }

    fn on_deadline(&mut self) {
        self.deadline = None;
        if self.final_sent {
            return;
        }
        let unfinished: Vec<TransactionKey> = self
            .branches
            .iter()
            .filter(|(_, b)| !b.done)
            .map(|(k, _)| k.clone())
            .collect();
        if unfinished.is_empty() {
            return;
        }
        debug!(
            branches = unfinished.len(),
            "proxy timer: unfinished branches given up"
        );
        self.cancel_branches(None);
        for k in unfinished {
            self.finish(&k, 408);
        }
        self.deadline = None;
    }

    /// The best final response upstream (RFC 3261 §16.7 step 6).
    async fn answer_best(&mut self) {
        self.final_sent = true;
        if self.cancelled {
            let answer = Answer::new(487, reason(487));
            return self
                .proxy
                .responder
                .send(self.req, answer, self.source)
                .await;
        }
        let best = self
            .finals
            .iter()
            .find(|f| f.status >= 600)
            .or_else(|| self.finals.iter().min_by_key(|f| f.status / 100));
        match best {
            Some(Final { status: 503, .. }) => {
                let answer = Answer::new(500, reason(500));
                self.proxy
                    .responder
                    .send(self.req, answer, self.source)
                    .await;
            }
            Some(Final {
                response: Some(resp),
                ..
            }) => {
                let resp = resp.clone();
                self.relay(&resp).await;
            }
            Some(Final { status, .. }) => {
                let answer = Answer::new(*status, reason(*status));
                self.proxy
                    .responder
                    .send(self.req, answer, self.source)
                    .await;
            }
            None => {
                let answer = Answer::new(480, reason(480));
                self.proxy
                    .responder
                    .send(self.req, answer, self.source)
                    .await;
            }
        }
    }
}
