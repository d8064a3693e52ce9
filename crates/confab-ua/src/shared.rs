//! What every handle of one user agent shares with its core task: the command channel, the
//! fixed local facts, the credentials, counters — and the request/response plumbing built
//! on them: start a client transaction, wait for its final response, and send a request
//! again with credentials when it is challenged ([`Shared::send_out`],
//! [`Shared::in_dialog`]).

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use confab_sip::transaction::{TimerConfig, TransactionKey};
use confab_sip::Message;
use tokio::sync::{mpsc, oneshot};

use crate::auth::Authenticator;
use crate::config::UaConfig;
use crate::core::{Command, TxEvent};
use crate::dialog::DialogId;
use crate::error::UaError;
use crate::request::{next_hop, Local, Outgoing};

/// Slack on top of the transaction timeout for every wait on a final response: the layer's
/// own Timer B or F ends the transaction first; this only bounds a wait that could
/// otherwise hang if the core were gone.
const WAIT_SLACK: Duration = Duration::from_secs(2);

/// Counters the core keeps, read through [`crate::UserAgent::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Messages sent again by a timer (Timer A, E, G, or a 2xx retransmission).
    pub retransmissions: AtomicU64,
    /// Incoming requests not delivered because the queue was full.
    pub dropped: AtomicU64,
}

/// State shared by the handles of one user agent and its core.
#[derive(Debug)]
pub(crate) struct Shared {
    pub cmd: mpsc::Sender<Command>,
    pub local: Local,
    pub config: UaConfig,
    pub timers: TimerConfig,
    pub auth: Mutex<Authenticator>,
    pub stats: Counters,
}

impl Shared {
    /// The authenticator; a panic elsewhere while it was held leaves it usable.
    pub(crate) fn auth(&self) -> MutexGuard<'_, Authenticator> {
        self.auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends a command that answers on a oneshot, and waits for the answer.
    pub(crate) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, UaError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(make(tx))
            .await
            .map_err(|_| UaError::Shutdown)?;
        rx.await.map_err(|_| UaError::Shutdown)
    }

    /// Starts a client transaction for `request` to `to`.
    pub(crate) async fn start(
        &self,
        request: Bytes,
        to: SocketAddr,
    ) -> Result<(TransactionKey, mpsc::UnboundedReceiver<TxEvent>), UaError> {
        let (events, rx) = mpsc::unbounded_channel();
        let key = self
            .ask(|reply| Command::Send {
                request,
                to,
                events,
                reply,
            })
            .await??;
        Ok((key, rx))
    }

    /// How long any wait on a non-INVITE final response may last.
    pub(crate) fn final_wait(&self) -> Duration {
        self.timers.transaction_timeout() + WAIT_SLACK
    }

    /// Waits for the final response of a non-INVITE transaction sent to `peer`.
    pub(crate) async fn final_of(
        &self,
        events: &mut mpsc::UnboundedReceiver<TxEvent>,
        peer: SocketAddr,
    ) -> Result<Message, UaError> {
        let limit = self.final_wait();
        let wait = async {
            loop {
                match events.recv().await {
                    Some(TxEvent::Response { response, .. }) => {
                        if response.status().unwrap_or_default() >= 200 {
                            return Ok(response);
                        }
                    }
                    Some(TxEvent::Timeout) => return Err(UaError::TransactionTimeout),
                    Some(TxEvent::TransportError) => return Err(UaError::Transport(peer)),
                    None => return Err(UaError::Shutdown),
                }
            }
        };
        tokio::time::timeout(limit, wait)
            .await
            .map_err(|_| UaError::Timeout(limit))?
    }

    /// Sends `out` outside any dialog and returns its final response, answering digest
    /// challenges on the way (each retry with the next CSeq and a new branch).
    pub(crate) async fn send_out(&self, out: &mut Outgoing) -> Result<Message, UaError> {
        let to = next_hop(&self.local, &out.uri)?;
        let mut ex = self.auth().begin(&out.method);
        loop {
            let headers = self.auth().headers(&ex, &out.method, &out.uri);
            let bytes = out.build(&self.local, &headers);
            let (_, mut events) = self.start(bytes, to).await?;
            let response = self.final_of(&mut events, to).await?;
            if !self.auth().on_final(&mut ex, &response)? {
                return Ok(response);
            }
            out.cseq = out.cseq.wrapping_add(1);
        }
    }

    /// Sends `method` inside dialog `id` and returns its final response, answering digest
    /// challenges on the way.
    pub(crate) async fn in_dialog(
        &self,
        id: &DialogId,
        method: &str,
        headers: &[(String, String)],
        body: Option<(String, Vec<u8>)>,
    ) -> Result<Message, UaError> {
        let mut ex = self.auth().begin_plain();
        let mut auth: Vec<(String, String)> = Vec::new();
        loop {
            let mut all = headers.to_vec();
            all.append(&mut auth);
            let (events, mut rx) = mpsc::unbounded_channel();
            let (sent, to) = self
                .ask(|reply| Command::InDialog {
                    id: id.clone(),
                    method: method.to_owned(),
                    headers: all,
                    body: body.clone(),
                    events,
                    reply,
                })
                .await??;
            let response = self.final_of(&mut rx, to).await?;
            if !self.auth().on_final(&mut ex, &response)? {
                return Ok(response);
            }
            let uri = sent.request_uri_str().unwrap_or_default();
            auth = self
                .auth()
                .headers(&ex, method, uri)
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v))
                .collect();
        }
    }
}
