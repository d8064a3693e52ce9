//! The registrar (RFC 3261 §10.3, RFC 3327): REGISTER for the domains this front-end is
//! authoritative for, answered once the directory has been asked.
//!
//! In order, for one REGISTER:
//!
//! 1. The To header names the address-of-record: a `sip:`/`sips:` URI with a user part in a
//!    local domain (else 403 for another domain, 404 without a user). The Request-URI names
//!    a local domain or an address (one that reached us).
//! 2. Digest authentication in the realm of the AOR's domain ([`crate::authenticate`]):
//!    401 with SHA-256 and MD5 challenges until the credentials are right; the authenticated
//!    user may register only its own AOR (403).
//! 3. Contacts: `*` only alone and with `Expires: 0` (else 400). Each contact's time is its
//!    `expires` parameter, else the Expires header, else
//!    [`crate::ServiceConfig::default_expires`]; a non-zero time below `min_expires` gets
//!    423 with Min-Expires, one above `max_expires` is shortened to it.
//! 4. The location service applies the change ([`crate::location`]): a CSeq that is not
//!    above the one of a binding with the same Call-ID fails the whole request. RFC 3261
//!    says only that such a request "fails"; it is answered `500` with the reason phrase
//!    "Out of Order CSeq", as other registrars do (a client treats 500 as retry-later).
//! 5. 200 OK lists every current binding with its remaining time (and q). Path values are
//!    stored whenever present and echoed in the 200 when the client said `Supported: path`
//!    (RFC 3327 §5.3). A REGISTER without Contact is a query and gets the same list.
//!
//! The caller hears which contacts this REGISTER made or refreshed, to deliver offline
//! messages to them ([`crate::messaging`]) after the 200 has gone.

use std::sync::Arc;
use std::time::Instant;

use confab_sip::headers::Contact;
use confab_sip::{Message, Scheme};
use tracing::{debug, warn};

use crate::authenticate::{Asker, Authenticator, Outcome as Auth};
use crate::config::ServiceConfig;
use crate::forward::Listeners;
use crate::location::{Binding, ContactUpdate, Location, Update, UpdateError};
use crate::respond::Answer;
use crate::transport::Source;

/// What the registrar did.
#[derive(Debug)]
pub enum Registration {
    /// Nothing registered; answer this.
    Refused(Answer),
    /// Registered (or queried): answer this 200; `fresh` are the bindings this REGISTER
    /// made or refreshed.
    Done {
        /// The 200.
        answer: Answer,
        /// The address-of-record.
        aor: String,
        /// Bindings made or refreshed by it.
        fresh: Vec<Binding>,
    },
}

/// The registrar.
#[derive(Debug)]
pub struct Registrar {
    config: Arc<ServiceConfig>,
    auth: Arc<Authenticator>,
    location: Arc<Location>,
    listeners: Arc<Listeners>,
}

/// `q` in thousandths as written in a Contact (`0.5`, `1`).
fn format_q(q: u16) -> String {
    if q >= 1000 {
        return "1".to_owned();
    }
    let s = format!("0.{q:03}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn refuse(status: u16, reason: &'static str) -> Registration {
    Registration::Refused(Answer::new(status, reason))
}

impl Registrar {
    /// A registrar over these parts.
    pub fn new(
        config: Arc<ServiceConfig>,
        auth: Arc<Authenticator>,
        location: Arc<Location>,
        listeners: Arc<Listeners>,
    ) -> Self {
        Registrar {
            config,
            auth,
            location,
            listeners,
        }
    }

    /// The Path and flow to keep for a REGISTER whose Path may name this front-end: one that
    /// passed through here on its way to another pool and was sent back (two pools disagreeing
    /// for a moment about the user's home pool, just after a move). What lies beyond this
    /// front-end's own entry is reached from here directly: the entries nearer the client, and
    /// the first of them (or the contact) by its address rather than by the pool it came
    /// back from.
    fn beyond_ourselves(
        &self,
        mut path: Vec<String>,
        contact: Option<&str>,
        source: &Source,
    ) -> (Vec<String>, Source) {
        let own = path.iter().rposition(|p| {
            Contact::parse(p)
                .ok()
                .and_then(|c| {
                    c.address()
                        .map(|a| self.listeners.is_ours(a.uri(), &self.config))
                })
                .unwrap_or(false)
        });
        let Some(own) = own else {
            return (path, *source);
        };
        path.drain(..=own);
        let next = match path.first() {
            Some(p) => Contact::parse(p)
                .ok()
                .and_then(|c| c.address().map(|a| a.uri().as_str().to_owned())),
            None => contact.map(str::to_owned),
        };
        let flow = next
            .and_then(|n| self.listeners.resolve_direct(&n))
            .unwrap_or(*source);
        debug!(?path, peer = %flow.peer, "REGISTER came back through this front-end: its own Path entry dropped");
        (path, flow)
    }

    /// Handles one REGISTER from `source`.
    pub async fn register(&self, req: &Message, source: &Source) -> Registration {
        let Ok(to) = req.to() else {
            return refuse(400, "Bad To Header");
        };
        let uri = to.uri();
        if !matches!(uri.scheme(), Scheme::Sip | Scheme::Sips) {
            return refuse(404, "Not Found");
        }
        let Some(domain) = uri.host_str().map(str::to_ascii_lowercase) else {
            return refuse(404, "Not Found");
        };
        if !self.config.is_local_domain(&domain) {
            return refuse(403, "Not Authoritative For This Domain");
        }
        let Some(user) = uri.user().filter(|u| !u.is_empty()) else {
            return refuse(404, "Not Found");
        };
        let ruri_ok = req.request_uri().and_then(|r| r.ok()).is_some_and(|r| {
            r.host_str().is_some_and(|h| {
                self.config.is_local_domain(h)
                    || h.parse::<std::net::IpAddr>().is_ok()
                    || h.starts_with('[')
            })
        });
        if !ruri_ok {
            return refuse(403, "Not Authoritative For This Domain");
        }
        let aor = format!("{user}@{domain}");
        match self
            .auth
            .authenticate(req, Asker::Registrar, &domain, source.peer.ip())
            .await
        {
            Auth::Authenticated(who) if who == aor => {}
            Auth::Authenticated(who) => {
                debug!(%who, %aor, "authenticated user tried another user's registration");
                return refuse(403, "Authentication ID Does Not Match To");
            }
            Auth::Challenge { stale } => {
                let (status, reason) = Asker::Registrar.status();
                let mut answer = Answer::new(status, reason);
                for c in self.auth.challenges(&domain, stale) {
                    answer = answer.header(Asker::Registrar.challenge_header(), c);
                }
                return Registration::Refused(answer);
            }
            Auth::BadRequest(reason) => return refuse(400, reason),
            Auth::Failed(e) => {
                warn!(error = %e, "registrar cannot read the directory");
                return refuse(500, "Server Internal Error");
            }
        }
        self.apply(req, source, aor)
    }

    fn apply(&self, req: &Message, source: &Source, aor: String) -> Registration {
        let Ok(header_expires) = req.expires() else {
            return refuse(400, "Invalid Expires");
        };
        let Ok(call_id) = req.call_id() else {
            return refuse(400, "Bad Call-ID");
        };
        let Ok(cseq) = req.cseq() else {
            return refuse(400, "Bad CSeq");
        };
        let mut contacts: Vec<Contact<'_>> = Vec::new();
        for c in req.contacts() {
            match c {
                Ok(c) => contacts.push(c),
                Err(_) => return refuse(400, "Bad Contact"),
            }
        }
        let wildcard = contacts.iter().any(|c| matches!(c, Contact::Wildcard));
        if wildcard && (contacts.len() != 1 || header_expires != Some(0)) {
            return refuse(400, "Invalid Wildcard");
        }
        let mut updates = Vec::with_capacity(contacts.len());
        for c in &contacts {
            let Some(addr) = c.address() else { continue };
            let asked = c
                .expires()
                .or(header_expires)
                .unwrap_or(self.config.default_expires);
            if asked != 0 && asked < self.config.min_expires {
                return Registration::Refused(
                    Answer::new(423, "Interval Too Brief")
                        .header("Min-Expires", self.config.min_expires.to_string()),
                );
            }
            updates.push(ContactUpdate {
                contact: addr.uri().as_str().to_owned(),
                expires: asked.min(self.config.max_expires),
                q: c.q(),
            });
        }
        let supports_path = req.supported().any(|t| t.eq_ignore_ascii_case("path"));
        let mut path = Vec::new();
        for p in req.paths() {
            match p {
                Ok(p) => path.push(p.as_str().to_owned()),
                Err(_) => return refuse(400, "Bad Path"),
            }
        }
        let (path, flow) =
            self.beyond_ourselves(path, updates.first().map(|u| u.contact.as_str()), source);
        let now = Instant::now();
        let bindings = if contacts.is_empty() {
            self.location.lookup(&aor, now)
        } else {
            let update = Update {
                aor: aor.clone(),
                call_id: call_id.to_owned(),
                cseq: cseq.seq,
                remove_all: wildcard,
                contacts: updates.clone(),
                path: path.clone(),
                flow,
                user_agent: req.user_agent().map(str::to_owned),
            };
            match self.location.update(update, now) {
                Ok(b) => b,
                Err(UpdateError::StaleCSeq) => return refuse(500, "Out of Order CSeq"),
            }
        };
        let mut answer = Answer::new(200, "OK");
        for b in &bindings {
            let mut value = format!("<{}>;expires={}", b.contact(), b.remaining(now));
            if let Some(q) = b.q {
                value.push_str(";q=");
                value.push_str(&format_q(q));
            }
            answer = answer.header("Contact", value);
        }
        if supports_path && !path.is_empty() {
            answer = answer.header("Path", path.join(", "));
            answer = answer.header("Supported", "path");
        }
        let fresh: Vec<Binding> = bindings
            .iter()
            .filter(|b| {
                updates
                    .iter()
                    .any(|u| u.expires > 0 && b.contact() == u.contact && b.call_id() == call_id)
            })
            .cloned()
            .collect();
        debug!(%aor, bindings = bindings.len(), "registered");
        Registration::Done { answer, aor, fresh }
    }
}

#[cfg(test)]
mod tests {
    use super::format_q;

    #[test]
    fn q_values_are_written_short() {
        assert_eq!(format_q(1000), "1");
        assert_eq!(format_q(500), "0.5");
        assert_eq!(format_q(330), "0.33");
        assert_eq!(format_q(7), "0.007");
        assert_eq!(format_q(0), "0");
    }
}
