//! [`Incoming`]: a request the user agent received, as the application sees it, with the
//! means to answer it.
//!
//! Every request is delivered, including those the user agent answered itself
//! ([`Incoming::answered`] says with what) and the ACK that confirms a call the user agent
//! answered. A request left to the application must be answered: if its `Incoming` is
//! dropped without a final response, or not answered within
//! [`crate::UaConfig::answer_timeout`], the user agent answers it (480 for INVITE, 500
//! otherwise), so that no transaction is left open.

use std::net::SocketAddr;
use std::sync::Arc;

use confab_sip::transaction::TransactionKey;
use confab_sip::{Message, Method};

use crate::call::Call;
use crate::core::{CallLink, Command, Reply};
use crate::error::UaError;
use crate::shared::Shared;

/// A received request and its answer handle.
#[derive(Debug)]
pub struct Incoming {
    shared: Arc<Shared>,
    request: Message,
    source: SocketAddr,
    key: Option<TransactionKey>,
    auto: Option<u16>,
    call: Option<CallLink>,
    /// Answer for the application if dropped unanswered.
    armed: bool,
}

impl Incoming {
    pub(crate) fn new(
        shared: Arc<Shared>,
        request: Message,
        source: SocketAddr,
        key: Option<TransactionKey>,
        auto: Option<u16>,
        call: Option<CallLink>,
    ) -> Incoming {
        let armed = key.is_some() && auto.is_none();
        Incoming {
            shared,
            request,
            source,
            key,
            auto,
            call,
            armed,
        }
    }

    /// Drop without answering for the application (the core answers by other means).
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    /// The request.
    pub fn request(&self) -> &Message {
        &self.request
    }

    /// The method (`None` cannot happen for a received request, but the type allows it).
    pub fn method(&self) -> Option<Method> {
        self.request.method()
    }

    /// The method as written (`MESSAGE`, `NOTIFY`, an extension …).
    pub fn method_str(&self) -> &str {
        self.request.method_str().unwrap_or_default()
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        self.request.body()
    }

    /// Where the request came from.
    pub fn source(&self) -> SocketAddr {
        self.source
    }

    /// The status the user agent answered with by itself, if it did (for an INVITE
    /// accepted by policy, the 200 it sends after ringing).
    pub fn answered(&self) -> Option<u16> {
        self.auto
    }

    /// True when the application must answer this request.
    pub fn needs_answer(&self) -> bool {
        self.key.is_some() && self.auto.is_none()
    }

    /// Answers with `status` and `reason`, extra `headers` and an optional body given as
    /// (Content-Type, octets). Call it once per provisional response and once for the final
    /// one. To-tag, Via, Contact (for INVITE) and Record-Route are the user agent's.
    pub async fn respond(
        &self,
        status: u16,
        reason: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<(), UaError> {
        let (Some(key), None) = (&self.key, self.auto) else {
            return Err(UaError::AlreadyAnswered);
        };
        let reply = Reply {
            status,
            reason: reason.to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.map(|(ct, b)| (ct.to_owned(), b.to_vec())),
        };
        let key = key.clone();
        self.shared
            .ask(|done| Command::Respond { key, reply, done })
            .await?
    }

    /// Answers with just a status and reason.
    pub async fn reply(&self, status: u16, reason: &str) -> Result<(), UaError> {
        self.respond(status, reason, &[], None).await
    }

    /// For an INVITE that starts a call: the call, to wait for its confirmation or end, or
    /// to hang up once answered.
    pub fn call(&self) -> Option<Call> {
        let link = self.call.clone()?;
        Some(Call::callee(
            self.shared.clone(),
            link,
            self.request.clone(),
        ))
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(key) = self.key.take() {
            // If the queue is full the answer deadline answers instead.
            let _ = self.shared.cmd.try_send(Command::Abandon { key });
        }
    }
}
