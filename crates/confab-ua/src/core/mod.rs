//! The user agent's background task: the UA core of RFC 3261 §8 and §12–§13 around
//! `confab_sip`'s sans-IO [`TransactionLayer`].
//!
//! One task owns the sockets ([`crate::transport::Sockets`]), the transaction layer, the
//! dialogs and the server transactions awaiting an answer. Handles ([`crate::UserAgent`],
//! [`crate::Call`], [`crate::Incoming`]) talk to it only through [`Command`]s and hear back
//! through channels, so nothing is shared but the channels and nothing is locked across an
//! await. Each turn of the loop takes one input — a command, a received message, or a
//! deadline — then [`Core::flush`]es: sends what the layer and the core queued and hands each
//! layer event to its owner until both queues are empty.
//!
//! * `uac`: client transactions and their waiters; the ACK for a 2xx and the dialog it
//!   establishes; in-dialog requests.
//! * `uas`: incoming requests; automatic answers (OPTIONS, MESSAGE, INVITE policy, BYE,
//!   CANCEL); delivery to the application; 2xx retransmission until the ACK arrives.
//! * `subs`: the subscriptions handles hold (RFC 6665 subscriber), their dialogs and the
//!   NOTIFYs in them.
//!
//! Retransmission and timeout of transactions are the layer's timers; the core keeps only
//! the timers RFC 3261 gives the UA core itself (2xx retransmission, §13.3.1.4) and its own
//! deadlines (automatic answers after ringing, answers the application never gave).
//! The task ends when the user agent's cancellation token fires.

mod subs;
mod uac;
mod uas;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_sip::transaction::{
    Config, Event, Reliability, TransactionKey, TransactionLayer, Transmit,
};
use confab_sip::{Message, Method};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::dialog::{CallState, Dialog, DialogId};
use crate::error::UaError;
use crate::incoming::Incoming;
use crate::shared::Shared;
use crate::transport::{Inbound, Sockets};

use subs::SubEntry;
pub(crate) use subs::SubKey;
pub(crate) use uac::Waiter;
pub(crate) use uas::ServerTx;

/// What the core tells the owner of a client transaction.
// Responses are the common case; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum TxEvent {
    /// A response; for the first 2xx to an INVITE, with the call it established.
    Response {
        response: Message,
        call: Option<CallLink>,
    },
    /// No final response (Timer B or F).
    Timeout,
    /// Sending failed.
    TransportError,
}

/// A dialog as its handle knows it.
#[derive(Debug, Clone)]
pub(crate) struct CallLink {
    pub id: DialogId,
    pub state: watch::Receiver<CallState>,
}

/// A response the application gives to an incoming request.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<(String, Vec<u8>)>,
}

impl Reply {
    pub(crate) fn new(status: u16, reason: &str) -> Reply {
        Reply {
            status,
            reason: reason.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }
}

/// What handles ask of the core.
#[derive(Debug)]
pub(crate) enum Command {
    /// Start a client transaction for `request`, sent to `to`.
    Send {
        request: Bytes,
        to: SocketAddr,
        events: mpsc::UnboundedSender<TxEvent>,
        reply: oneshot::Sender<Result<TransactionKey, UaError>>,
    },
    /// Cancel INVITE client transaction `invite`; the CANCEL's responses go to `events`.
    Cancel {
        invite: TransactionKey,
        events: mpsc::UnboundedSender<TxEvent>,
        reply: oneshot::Sender<Result<TransactionKey, UaError>>,
    },
    /// Send `method` inside dialog `id`; replies with the request as sent and where it
    /// went.
    InDialog {
        id: DialogId,
        method: String,
        headers: Vec<(String, String)>,
        body: Option<(String, Vec<u8>)>,
        events: mpsc::UnboundedSender<TxEvent>,
        reply: oneshot::Sender<Result<(Message, SocketAddr), UaError>>,
    },
    /// Answer server transaction `key`.
    Respond {
        key: TransactionKey,
        reply: Reply,
        done: oneshot::Sender<Result<(), UaError>>,
    },
    /// The application dropped an incoming request without a final answer.
    Abandon { key: TransactionKey },
    /// A SUBSCRIBE is about to leave: NOTIFYs naming `key` go to `notifies`.
    Watch {
        key: SubKey,
        event: String,
        notifies: mpsc::UnboundedSender<crate::subscription::Notify>,
    },
    /// The SUBSCRIBE of `key` was answered 2xx: its dialog.
    Subscribed {
        key: SubKey,
        response: Box<Message>,
        reply: oneshot::Sender<Result<(), UaError>>,
    },
    /// The subscription's handle is gone.
    Unwatch { key: SubKey },
}

/// A deadline of the core itself.
#[derive(Debug, Clone)]
enum Due {
    /// Send the policy's 200 to this INVITE.
    AutoAnswer(TransactionKey),
    /// The application did not answer in time: answer for it.
    AnswerDeadline(TransactionKey),
    /// Send the 2xx of this dialog again (unreliable transports).
    Resend2xx(DialogId),
    /// Give up waiting for the ACK of this dialog's 2xx.
    AckDeadline(DialogId),
    /// Cancel this INVITE client transaction if it is still ringing
    /// ([`crate::UaConfig::invite_timeout`]).
    CancelInvite(TransactionKey),
}

/// A dialog and, for the callee, the 2xx it retransmits until the ACK comes.
#[derive(Debug)]
struct DialogEntry {
    dialog: Dialog,
    awaiting_ack: Option<AwaitAck>,
}

#[derive(Debug)]
struct AwaitAck {
    key: TransactionKey,
    response: Bytes,
    interval: Duration,
}

/// The background task's state (see the module documentation).
pub(crate) struct Core {
    shared: Arc<Shared>,
    layer: TransactionLayer<SocketAddr>,
    reliability: Reliability,
    sockets: Sockets,
    clients: HashMap<TransactionKey, Waiter>,
    servers: HashMap<TransactionKey, ServerTx>,
    dialogs: HashMap<DialogId, DialogEntry>,
    subscriptions: HashMap<SubKey, SubEntry>,
    schedule: BTreeMap<(Instant, u64), Due>,
    next_due: u64,
    /// Messages sent outside any transaction (ACK for 2xx).
    direct: Vec<(SocketAddr, Bytes)>,
    /// Transactions whose messages wait for a connection to open, by peer.
    connecting: HashMap<SocketAddr, Vec<TransactionKey>>,
    incoming: mpsc::Sender<Incoming>,
    /// The flush after a deadline counts what it sends as retransmissions.
    timer_turn: bool,
}

impl Core {
    pub(crate) fn new(
        shared: Arc<Shared>,
        sockets: Sockets,
        incoming: mpsc::Sender<Incoming>,
    ) -> Core {
        // The application answers INVITEs itself, with 180 at once by default; a 100 Trying
        // from the layer covers a slow one.
        let config = Config::new(shared.timers);
        Core {
            reliability: shared.config.transport.reliability(),
            layer: TransactionLayer::new(config),
            shared,
            sockets,
            clients: HashMap::new(),
            servers: HashMap::new(),
            dialogs: HashMap::new(),
            subscriptions: HashMap::new(),
            schedule: BTreeMap::new(),
            next_due: 0,
            direct: Vec::new(),
            connecting: HashMap::new(),
            incoming,
            timer_turn: false,
        }
    }

    /// Runs until `cancel` fires.
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut inbound: mpsc::Receiver<Inbound>,
        cancel: CancellationToken,
    ) {
        loop {
            let wake = self.next_wake();
            let sleep = async move {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            // Unbiased: a flood of received messages must not starve the handles' commands.
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(msg) = inbound.recv() => self.on_inbound(msg),
                Some(cmd) = commands.recv() => self.on_command(cmd),
                _ = sleep => self.on_wake(Instant::now()),
            }
            self.flush().await;
        }
        for entry in self.dialogs.values() {
            entry.dialog.state.send_if_modified(|s| {
                let live = !matches!(s, CallState::Ended(_));
                if live {
                    *s = CallState::Ended(crate::dialog::EndReason::Shutdown);
                }
                live
            });
        }
        debug!("user agent core stopped");
    }

    fn next_wake(&self) -> Option<Instant> {
        let own = self.schedule.keys().next().map(|(at, _)| *at);
        match (self.layer.poll_timeout(), own) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn at(&mut self, after: Duration, due: Due) {
        self.next_due += 1;
        self.schedule
            .insert((Instant::now() + after, self.next_due), due);
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Send {
                request,
                to,
                events,
                reply,
            } => {
                let _ = reply.send(self.send_request(request, to, events));
            }
            Command::Cancel {
                invite,
                events,
                reply,
            } => {
                let _ = reply.send(self.cancel(&invite, events));
            }
            Command::InDialog {
                id,
                method,
                headers,
                body,
                events,
                reply,
            } => {
                let sent = self.in_dialog(&id, &method, &headers, body.as_ref(), events);
                let _ = reply.send(sent);
            }
            Command::Respond { key, reply, done } => {
                let _ = done.send(self.respond(&key, reply));
            }
            Command::Abandon { key } => self.abandon(&key),
            Command::Watch {
                key,
                event,
                notifies,
            } => self.watch(key, event, notifies),
            Command::Subscribed {
                key,
                response,
                reply,
            } => {
                let _ = reply.send(self.subscribed(&key, &response));
            }
            Command::Unwatch { key } => self.unwatch(&key),
        }
    }

    fn on_inbound(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Message { msg, from } => {
                if msg.is_request() && !msg.is_sip_2_0() {
                    debug!(%from, "request of another SIP version dropped");
                    return;
                }
                let now = Instant::now();
                if let Err(e) = self.layer.handle_message(msg, from, self.reliability, now) {
                    debug!(%from, error = %e, "message matches no transaction and starts none");
                }
            }
            Inbound::Accepted { peer, writer } => self.sockets.accepted(peer, writer),
            Inbound::Connected(peer) => {
                self.sockets.connected(peer);
                self.connecting.remove(&peer);
            }
            Inbound::Closed(peer) => {
                self.sockets.closed(peer);
                for key in self.connecting.remove(&peer).unwrap_or_default() {
                    self.layer.transport_error(&key);
                }
            }
        }
    }

    fn on_wake(&mut self, now: Instant) {
        self.timer_turn = true;
        self.layer.handle_timeout(now);
        while let Some(entry) = self.schedule.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let due = entry.remove();
            self.on_due(due);
        }
    }

    fn on_event(&mut self, event: Event<SocketAddr>) {
        match event {
            Event::Request { key, request, peer } => self.on_request(key, request, peer),
            Event::Cancel {
                key,
                request,
                peer,
                invite,
            } => self.on_cancel(key, request, peer, invite),
            Event::Ack { request, peer, .. } => self.on_ack(request, peer),
            Event::Response { key, response } => self.on_response(key, response),
            Event::StrayResponse { response, peer } => {
                // A 2xx retransmitted after Timer M, or a response to nothing we sent.
                debug!(%peer, status = ?response.status(), "stray response dropped");
            }
            Event::Timeout { key, .. } => self.notify_client(&key, TxEvent::Timeout),
            Event::TransportError { key } => self.notify_client(&key, TxEvent::TransportError),
            Event::Terminated { key } => {
                self.clients.remove(&key);
                self.servers.remove(&key);
            }
        }
    }

    /// Sends everything queued and hands out every event, until nothing is left.
    async fn flush(&mut self) {
        loop {
            let mut busy = false;
            while let Some(t) = self.layer.poll_transmit() {
                busy = true;
                self.transmit(t).await;
            }
            for (to, bytes) in std::mem::take(&mut self.direct) {
                busy = true;
                self.count_sent();
                // An ACK that cannot be sent is recovered by the peer's 2xx retransmission.
                let _ = self.sockets.send(to, bytes).await;
            }
            if let Some(event) = self.layer.poll_event() {
                busy = true;
                self.on_event(event);
            }
            if !busy {
                break;
            }
        }
        self.timer_turn = false;
    }

    async fn transmit(&mut self, t: Transmit<SocketAddr>) {
        self.count_sent();
        match self.sockets.send(t.peer, t.bytes).await {
            Ok(true) => {}
            Ok(false) => self.connecting.entry(t.peer).or_default().push(t.key),
            Err(()) => self.layer.transport_error(&t.key),
        }
    }

    fn count_sent(&self) {
        if self.timer_turn {
            self.shared
                .stats
                .retransmissions
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn notify_client(&mut self, key: &TransactionKey, event: TxEvent) {
        if let Some(w) = self.clients.get(key) {
            let _ = w.events.send(event);
        }
    }

    fn is_invite(request: &Message) -> bool {
        request.method() == Some(Method::Invite)
    }
}
