//! Answers the router's services send after the handler has returned: [`Answer`] (status,
//! reason, extra headers, body) built into a response to the request, and sent through the
//! request's server transaction ([`TransactionDriver::reply`]). Final responses carry a
//! To-tag derived from the request, as the handler's do, so a response built twice for one
//! request carries the same tag — which is what lets challenges (401, 407) be sent
//! statelessly: a retransmitted request is challenged afresh, with the same tag.

use std::borrow::Cow;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use bytes::Bytes;
use confab_sip::builder::ResponseBuilder;
use confab_sip::{HeaderName, Message};

use crate::handler::SERVER;
use crate::transactions::TransactionDriver;
use crate::transport::Source;

/// A response before it is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: Cow<'static, str>,
    /// Extra headers, in order.
    pub headers: Vec<(&'static str, String)>,
    /// Dialog-creating responses copy Record-Route.
    pub record_route: bool,
}

impl Answer {
    /// An answer with no extra header.
    pub fn new(status: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        Answer {
            status,
            reason: reason.into(),
            headers: Vec::new(),
            record_route: false,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// Builds and sends answers.
#[derive(Debug)]
pub struct Responder {
    driver: Arc<TransactionDriver>,
    tag_key: RandomState,
}

impl Responder {
    /// A responder sending through `driver`.
    pub fn new(driver: Arc<TransactionDriver>) -> Self {
        Responder {
            driver,
            tag_key: RandomState::new(),
        }
    }

    /// The driver.
    pub fn driver(&self) -> &Arc<TransactionDriver> {
        &self.driver
    }

    /// The response to `request` that `answer` describes.
    pub fn build(&self, request: &Message, answer: &Answer, source: &Source) -> Bytes {
        let mut b = ResponseBuilder::new(request, answer.status, answer.reason.clone())
            .to_tag(self.to_tag(request))
            .received_from(source.peer)
            .header("Server", SERVER);
        if answer.record_route {
            b = b.copy_record_route();
        }
        for (name, value) in &answer.headers {
            b = b.header(*name, value.clone());
        }
        b.build()
    }

    /// Builds and sends `answer` to `request`.
    pub async fn send(&self, request: &Message, answer: Answer, source: &Source) {
        let bytes = self.build(request, &answer, source);
        self.driver.reply(request, bytes, source).await;
    }

    /// Sends a response built elsewhere (a downstream response the proxy relays). Unlike
    /// the core's own challenges, a relayed 401 or 407 is kept by the transaction
    /// ([`TransactionDriver::relay`]).
    pub async fn relay(&self, request: &Message, response: Bytes, source: &Source) {
        self.driver.relay(request, response, source).await;
    }

    /// The To tag the answers to `req` carry when it has none.
    pub fn to_tag(&self, req: &Message) -> String {
        let key = (
            req.header_bytes(HeaderName::CallId),
            req.from().ok().and_then(|f| f.tag()),
            req.header_bytes(HeaderName::CSeq),
            req.via().ok().map(|v| v.as_str()),
        );
        format!("{:016x}", self.tag_key.hash_one(key))
    }
}
