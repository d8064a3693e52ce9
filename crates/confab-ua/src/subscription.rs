//! The subscriber and publisher sides of SIP events: [`Subscription`] (RFC 6665 §4.1: a
//! SUBSCRIBE, the dialog it creates, the NOTIFYs that arrive in it, refresh and
//! unsubscription) and [`Publication`] (RFC 3903: a PUBLISH and its entity-tag).
//!
//! A [`Subscription`] is registered with the core *before* its SUBSCRIBE leaves, by Call-ID
//! and our From tag, so that a NOTIFY overtaking the 2xx (RFC 6665 §4.1.2.4 allows it) is
//! still recognised: the core answers every NOTIFY of a live subscription with 200 (489 when
//! its Event is another package, 481 once the handle is gone) and queues it for
//! [`Subscription::next_notify`]; it creates the dialog from whichever of the 2xx or the
//! NOTIFY comes first. A NOTIFY that belongs to no subscription of this user agent (an
//! unsolicited one, say for message waiting) is delivered as an [`crate::Incoming`] as
//! before. A NOTIFY with `Subscription-State: terminated` ends the subscription; nothing is
//! refreshed automatically — the application calls [`Subscription::refresh`] (tests want to
//! see expiry happen).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confab_sip::header_name::HeaderName;
use confab_sip::Message;
use tokio::sync::mpsc;

use crate::core::{Command, SubKey};
use crate::dialog::DialogId;
use crate::error::UaError;
use crate::request::Outgoing;
use crate::shared::Shared;

/// The state a NOTIFY gives its subscription (its Subscription-State, RFC 6665 §8.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionState {
    /// `active`: the notifier accepted the subscription.
    Active,
    /// `pending`: the notifier has not decided yet (the watcher waits for authorization).
    Pending,
    /// `terminated`: the subscription is over; no further NOTIFY comes.
    Terminated,
    /// An extension value, lower-cased; treated as `pending` (RFC 6665 §4.1.3).
    Other(String),
}

impl SubscriptionState {
    fn parse(text: &str) -> SubscriptionState {
        match text.to_ascii_lowercase().as_str() {
            "active" => SubscriptionState::Active,
            "pending" => SubscriptionState::Pending,
            "terminated" => SubscriptionState::Terminated,
            other => SubscriptionState::Other(other.to_owned()),
        }
    }
}

/// One NOTIFY received in a subscription (already answered 200 by the user agent).
#[derive(Debug, Clone)]
pub struct Notify {
    /// Its Subscription-State (a NOTIFY without one is taken as `active`).
    pub state: SubscriptionState,
    /// The `reason` parameter of a terminated state (`timeout`, `deactivated`,
    /// `noresource`, `rejected`, `probation`, `giveup`), lower-cased.
    pub reason: Option<String>,
    /// The `expires` parameter: seconds the subscription has left.
    pub expires: Option<u32>,
    /// The NOTIFY itself.
    pub request: Message,
}

impl Notify {
    pub(crate) fn of(request: Message) -> Notify {
        let (state, reason, expires) = match request.subscription_state() {
            Ok(Some(s)) => (
                SubscriptionState::parse(s.state),
                s.reason().map(str::to_ascii_lowercase),
                s.expires(),
            ),
            _ => (SubscriptionState::Active, None, None),
        };
        Notify {
            state,
            reason,
            expires,
            request,
        }
    }

    /// True when the NOTIFY ends the subscription.
    pub fn is_terminated(&self) -> bool {
        self.state == SubscriptionState::Terminated
    }

    /// The body (empty when there is none, as in a pending subscription's NOTIFY).
    pub fn body(&self) -> &[u8] {
        self.request.body()
    }

    /// The body as UTF-8 text; `None` when it is not.
    pub fn body_str(&self) -> Option<&str> {
        std::str::from_utf8(self.request.body()).ok()
    }

    /// The Content-Type value, as written.
    pub fn content_type(&self) -> Option<&str> {
        self.request.header(HeaderName::ContentType)
    }
}

/// A subscription this user agent holds (see the module documentation). Dropping it
/// forgets it: later NOTIFYs in its dialog are answered 481, which ends it at the notifier.
#[derive(Debug)]
pub struct Subscription {
    shared: Arc<Shared>,
    key: SubKey,
    id: DialogId,
    event: String,
    accept: String,
    notifies: mpsc::UnboundedReceiver<Notify>,
    response: Message,
    expires: u32,
    terminated: bool,
}

impl Subscription {
    /// Subscribes (see [`crate::UserAgent::subscribe`]).
    pub(crate) async fn start(
        shared: Arc<Shared>,
        target: &str,
        event: &str,
        accept: &str,
        expires: u32,
    ) -> Result<Subscription, UaError> {
        let mut out = Outgoing::new("SUBSCRIBE", target);
        out.contact = true;
        out.headers = subscribe_headers(event, accept, expires);
        let key = SubKey {
            call_id: out.call_id.clone(),
            local_tag: out.from_tag.clone(),
        };
        let (tx, notifies) = mpsc::unbounded_channel();
        shared
            .cmd
            .send(Command::Watch {
                key: key.clone(),
                event: package(event),
                notifies: tx,
            })
            .await
            .map_err(|_| UaError::Shutdown)?;
        let forget = Forget {
            shared: shared.clone(),
            key: Some(key.clone()),
        };
        let response = shared.send_out(&mut out).await?;
        let status = response.status().unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(UaError::Rejected {
                status,
                reason: response.reason().unwrap_or_default().to_owned(),
            });
        }
        let Some(remote_tag) = response.to().ok().and_then(|t| t.tag()).map(str::to_owned) else {
            return Err(UaError::Rejected {
                status,
                reason: "2xx to SUBSCRIBE without a To tag: no dialog".into(),
            });
        };
        shared
            .ask(|reply| Command::Subscribed {
                key: key.clone(),
                response: Box::new(response.clone()),
                reply,
            })
            .await??;
        forget.disarm();
        let granted = response.expires().ok().flatten().unwrap_or(expires);
        Ok(Subscription {
            id: DialogId {
                call_id: key.call_id.clone(),
                local_tag: key.local_tag.clone(),
                remote_tag,
            },
            shared,
            key,
            event: event.to_owned(),
            accept: accept.to_owned(),
            notifies,
            response,
            expires: granted,
            terminated: false,
        })
    }

    /// The final response to the SUBSCRIBE that created the subscription (the last
    /// refresh's once there is one).
    pub fn response(&self) -> &Message {
        &self.response
    }

    /// Its status code.
    pub fn status(&self) -> u16 {
        self.response.status().unwrap_or_default()
    }

    /// Seconds granted by the last 2xx (its Expires header; what was asked when it has
    /// none).
    pub fn expires(&self) -> u32 {
        self.expires
    }

    /// True once a terminating NOTIFY was taken from [`Subscription::next_notify`], or a
    /// refresh was answered 481.
    pub fn is_terminated(&self) -> bool {
        self.terminated
    }

    /// The next NOTIFY, waiting at most `within`. After the terminating one, fails with
    /// [`UaError::NoDialog`].
    pub async fn next_notify(&mut self, within: Duration) -> Result<Notify, UaError> {
        match tokio::time::timeout(within, self.notifies.recv()).await {
            Err(_) => Err(UaError::Timeout(within)),
            Ok(None) if self.terminated => Err(UaError::NoDialog),
            Ok(None) => Err(UaError::Shutdown),
            Ok(Some(notify)) => {
                if notify.is_terminated() {
                    self.terminated = true;
                }
                Ok(notify)
            }
        }
    }

    /// A NOTIFY if one is waiting.
    pub fn try_next_notify(&mut self) -> Option<Notify> {
        let notify = self.notifies.try_recv().ok()?;
        if notify.is_terminated() {
            self.terminated = true;
        }
        Some(notify)
    }

    /// Refreshes the subscription for `expires` seconds with a SUBSCRIBE in its dialog
    /// (RFC 6665 §4.1.2.2) and returns the final response; `expires` 0 unsubscribes
    /// ([`Subscription::unsubscribe`]). A 481 means the notifier no longer knows the
    /// subscription: it is terminated here too.
    pub async fn refresh(&mut self, expires: u32) -> Result<Message, UaError> {
        let mut headers = subscribe_headers(&self.event, &self.accept, expires);
        headers.push(("Contact".into(), self.shared.local.contact()));
        let response = self
            .shared
            .in_dialog(&self.id, "SUBSCRIBE", &headers, None)
            .await?;
        let status = response.status().unwrap_or_default();
        if (200..300).contains(&status) {
            self.expires = response.expires().ok().flatten().unwrap_or(expires);
            self.response = response.clone();
        } else if status == 481 {
            self.terminated = true;
        }
        Ok(response)
    }

    /// Ends the subscription (SUBSCRIBE with Expires: 0) and returns the final response;
    /// the notifier's last NOTIFY (`terminated`) still arrives through
    /// [`Subscription::next_notify`].
    pub async fn unsubscribe(&mut self) -> Result<Message, UaError> {
        self.refresh(0).await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.shared.cmd.try_send(Command::Unwatch {
            key: self.key.clone(),
        });
    }
}

/// Forgets a subscription whose SUBSCRIBE failed, unless disarmed.
struct Forget {
    shared: Arc<Shared>,
    key: Option<SubKey>,
}

impl Forget {
    fn disarm(mut self) {
        self.key = None;
    }
}

impl Drop for Forget {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let _ = self.shared.cmd.try_send(Command::Unwatch { key });
        }
    }
}

/// The event package of an Event value (`presence;id=1` → `presence`), lower-cased.
pub(crate) fn package(event: &str) -> String {
    event
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn subscribe_headers(event: &str, accept: &str, expires: u32) -> Vec<(String, String)> {
    let mut headers = vec![("Event".to_owned(), event.to_owned())];
    if !accept.is_empty() {
        headers.push(("Accept".to_owned(), accept.to_owned()));
    }
    headers.push(("Expires".to_owned(), expires.to_string()));
    headers
}

/// The answer to a PUBLISH ([`crate::UserAgent::publish`]).
#[derive(Debug, Clone)]
pub struct Publication {
    /// The final status.
    pub status: u16,
    /// The SIP-ETag of a 2xx: what the next refresh, modification or removal names in
    /// SIP-If-Match.
    pub etag: Option<String>,
    /// Seconds the publication lives (the 2xx's Expires; what was asked when it has none);
    /// 0 for a failure or a removal.
    pub expires: u32,
    /// The final response.
    pub response: Message,
}

impl Publication {
    pub(crate) fn of(response: Message, asked: u32) -> Publication {
        let status = response.status().unwrap_or_default();
        let ok = (200..300).contains(&status);
        let etag = ok
            .then(|| response.sip_etag().ok().flatten().map(str::to_owned))
            .flatten();
        let expires = if ok && asked > 0 {
            response.expires().ok().flatten().unwrap_or(asked)
        } else {
            0
        };
        Publication {
            status,
            etag,
            expires,
            response,
        }
    }

    /// True for a 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What a PUBLISH carries: the whole request but its addressing.
#[derive(Debug, Clone, Default)]
pub struct PublishRequest<'a> {
    /// The Event value, e.g. `presence`.
    pub event: &'a str,
    /// The entity-tag of the publication this one refreshes, modifies or removes; `None`
    /// for an initial publication.
    pub if_match: Option<&'a str>,
    /// Seconds asked; 0 removes the publication named by `if_match`.
    pub expires: u32,
    /// Content-Type and body; none for a refresh or a removal.
    pub body: Option<(&'a str, Bytes)>,
}
