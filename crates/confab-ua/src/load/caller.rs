//! The calling side of an operation: the request each step sends, and what each final
//! response leads to.
//!
//! | scenario | requests |
//! |---|---|
//! | register | REGISTER → 401 → REGISTER with Authorization → 2xx |
//! | setup (before message and call) | REGISTER `Contact: *`, `Expires: 0` → 401 → again with Authorization → 2xx (or any refusal) → REGISTER with the user's contact (answering the same challenge, next nonce count) → 2xx |
//! | message | MESSAGE (Proxy-Authorization from the user's cached challenge, if any) → 407 → again → 2xx |
//! | call | INVITE (as MESSAGE) → [407 → ACK → INVITE] → 1xx … 2xx → ACK, BYE → 2xx |
//! | subscribe setup, measured | SUBSCRIBE, PUBLISH (as MESSAGE; see `presence`) |
//!
//! Every user keeps one REGISTER Call-ID (`r<run>.<user>`) with a rising CSeq; each MESSAGE
//! and call has its own Call-ID (`m<run>.<op>`, `c<run>.<op>`). In-dialog requests go to the
//! server whatever the route set says: all traffic is for the server under test, and the
//! Request-URI carries the remote target. Clearing old bindings before the message and call
//! scenarios keeps bindings left by earlier runs (other ports) from being forked to.

use std::io::Write;
use std::time::Instant;

use confab_sip::digest::Algorithm;
use confab_sip::{HeaderName, Message};

use super::auth::{self, Cached, Ha1};
use super::wire::{marker_len, write_body, write_head, write_marker, Name};
use super::worker::{Failure, Step, Which, Wire, Worker};

/// Content of the credentials of one request.
struct Creds {
    authorization: Option<String>,
    proxy_authorization: Option<String>,
}

impl Worker {
    /// The name of this worker's user `j`.
    pub(crate) fn name(&self, j: u32) -> Name<'_> {
        Name(&self.cfg.users_prefix, self.global(j) + 1)
    }

    /// The name of the run-wide user after this worker's user `j` (whom it messages and
    /// calls).
    pub(crate) fn peer(&self, j: u32) -> Name<'_> {
        let next = (self.global(j) + 1) % self.cfg.users as u64;
        Name(&self.cfg.users_prefix, next + 1)
    }

    fn realm_id(&mut self, realm: &str) -> u16 {
        if let Some(i) = self.realms.iter().position(|r| &**r == realm) {
            return i as u16;
        }
        self.realms.push(realm.into());
        (self.realms.len() - 1).min(usize::from(u16::MAX)) as u16
    }

    /// User `j`'s HA1 for `algorithm` in `realm`, computed once and kept.
    fn ha1(&mut self, j: u32, algorithm: Algorithm, realm: &str) -> Ha1 {
        let realm_id = self.realm_id(realm);
        if let Some(h) = self.users.get(j as usize).and_then(|u| u.ha1) {
            if h.fits(algorithm, realm_id) {
                return h;
            }
        }
        let n = self.global(j) as usize;
        let (name, password) = (self.cfg.user_name(n), self.cfg.password(n));
        let h = Ha1::compute(algorithm, realm_id, &name, realm, &password);
        if let Some(u) = self.users.get_mut(j as usize) {
            u.ha1 = Some(h);
        }
        h
    }

    /// Answers `c` for user `j`'s request `method` to `uri`.
    fn answer(&mut self, j: u32, c: &mut Cached, method: &str, uri: &str) -> String {
        let ha1 = self.ha1(j, c.algorithm, &c.realm);
        let name = self.name(j).to_string();
        let cnonce = format!("{:016x}", rand::random::<u64>());
        auth::credentials(c, &name, ha1.as_str(), method, uri, &cnonce)
    }

    /// The credentials of the next request of `slot`.
    fn creds(&mut self, slot: usize, method: &str, uri: &str) -> Creds {
        let op = &mut self.ops[slot];
        let (j, step, bye_auth) = (op.user, op.step, op.bye_auth);
        let mut www = op.www.take();
        let authorization = www.as_mut().map(|c| self.answer(j, c, method, uri));
        self.ops[slot].www = www;
        let uses_proxy = match step {
            Step::Message | Step::Invite | Step::Subscribe | Step::Publish => true,
            Step::Bye => bye_auth,
            Step::Clear | Step::Register => false,
        };
        let mut proxy = if uses_proxy {
            self.users.get_mut(j as usize).and_then(|u| u.proxy.take())
        } else {
            None
        };
        let proxy_authorization = proxy.as_mut().map(|c| self.answer(j, c, method, uri));
        if let (Some(p), Some(u)) = (proxy, self.users.get_mut(j as usize)) {
            u.proxy = Some(p);
        }
        Creds {
            authorization,
            proxy_authorization,
        }
    }

    /// Sends the request of `slot`'s step as a new transaction.
    pub(crate) fn send_step(&mut self, slot: usize, now: Instant, wire: &mut dyn Wire) {
        let seq = self.new_seq();
        let (j, step) = (self.ops[slot].user, self.ops[slot].step);
        if matches!(step, Step::Clear | Step::Register) {
            if let Some(u) = self.users.get_mut(j as usize) {
                u.cseq = u.cseq.wrapping_add(1).max(1);
                self.ops[slot].cseq = u.cseq;
            }
        }
        let domain = &self.cfg.domain;
        let uri = match step {
            Step::Clear | Step::Register => format!("sip:{domain}"),
            Step::Message | Step::Invite => format!("sip:{}@{domain}", self.peer(j)),
            Step::Bye => self.ops[slot].target.clone(),
            Step::Subscribe => {
                let p = self.subscription_presentity(self.ops[slot].sub);
                format!("sip:{}@{domain}", Name(&self.cfg.users_prefix, p + 1))
            }
            Step::Publish => format!("sip:{}@{domain}", self.name(j)),
        };
        let method = match step {
            Step::Clear | Step::Register => "REGISTER",
            Step::Message => "MESSAGE",
            Step::Invite => "INVITE",
            Step::Bye => "BYE",
            Step::Subscribe => "SUBSCRIBE",
            Step::Publish => "PUBLISH",
        };
        let creds = self.creds(slot, method, &uri);
        let mut out = std::mem::take(&mut self.ops[slot].request);
        out.clear();
        self.write_request(&mut out, slot, seq, (method, &uri), &creds, now);
        if step == Step::Invite {
            let op = &mut self.ops[slot];
            op.proxy_auth.clear();
            if let Some(p) = &creds.proxy_authorization {
                op.proxy_auth.push_str(p);
            }
        }
        let op = &mut self.ops[slot];
        op.request = out;
        op.seq = seq;
        op.provisional = false;
        op.answered = false;
        if self.send_or_fail(slot, now, wire, Which::Request) {
            self.arm(slot, seq, now);
        }
    }

    fn write_request(
        &self,
        out: &mut Vec<u8>,
        slot: usize,
        seq: u32,
        (method, uri): (&str, &str),
        creds: &Creds,
        now: Instant,
    ) {
        let op = &self.ops[slot];
        let (s, domain) = (&self.set, &self.cfg.domain);
        let me = self.name(op.user);
        let run = s.run;
        write_head(
            out,
            method,
            format_args!("{uri}"),
            s.local,
            s.tag,
            slot as u32,
            seq,
        );
        if op.step == Step::Bye && !op.route.is_empty() {
            let _ = write!(out, "Route: {}\r\n", op.route);
        }
        let _ = match op.step {
            Step::Clear | Step::Register => {
                let u = self.global(op.user);
                write!(
                    out,
                    "From: <sip:{me}@{domain}>;tag=r{u:x}.{:x}\r\nTo: <sip:{me}@{domain}>\r\n\
                     Call-ID: r{run:016x}.{u}\r\n",
                    run as u32
                )
            }
            Step::Message => write!(
                out,
                "From: <sip:{me}@{domain}>;tag=m{:x}\r\nTo: <sip:{}@{domain}>\r\n\
                 Call-ID: m{run:016x}.{}\r\n",
                op.number,
                self.peer(op.user),
                op.number
            ),
            Step::Invite => write!(
                out,
                "From: <sip:{me}@{domain}>;tag=c{:x}\r\nTo: <sip:{}@{domain}>\r\n\
                 Call-ID: c{run:016x}.{}\r\n",
                op.number,
                self.peer(op.user),
                op.number
            ),
            Step::Bye => write!(
                out,
                "From: <sip:{me}@{domain}>;tag=c{:x}\r\nTo: {}\r\nCall-ID: c{run:016x}.{}\r\n",
                op.number, op.to, op.number
            ),
            // One dialog per subscription: watcher `g`'s `j`th (see `presence`).
            Step::Subscribe => {
                let (u, j) = self.subscription_owner(op.sub);
                let g = self.global(u);
                write!(
                    out,
                    "From: <sip:{me}@{domain}>;tag=s{g:x}.{j:x}\r\nTo: <{uri}>\r\n\
                     Call-ID: s{run:016x}.{g}.{j}\r\n"
                )
            }
            Step::Publish => write!(
                out,
                "From: <sip:{me}@{domain}>;tag=p{:x}\r\nTo: <sip:{me}@{domain}>\r\n\
                 Call-ID: p{run:016x}.{}\r\n",
                op.number, op.number
            ),
        };
        let _ = write!(out, "CSeq: {} {method}\r\n", op.cseq);
        let _ = match op.step {
            Step::Clear => write!(out, "Contact: *\r\nExpires: 0\r\n"),
            Step::Register => write!(
                out,
                "Contact: <sip:{me}@{}>\r\nExpires: {}\r\nUser-Agent: confab-load\r\n",
                s.local, self.cfg.expires
            ),
            Step::Invite => write!(out, "Contact: <sip:{me}@{}>\r\n", s.local),
            Step::Subscribe => write!(
                out,
                "Contact: <sip:{me}@{}>\r\nEvent: presence\r\nAccept: application/pidf+xml\r\n\
                 Expires: {}\r\n",
                s.local, self.cfg.expires
            ),
            Step::Publish => {
                let _ = write!(out, "Event: presence\r\nExpires: {}\r\n", self.cfg.expires);
                match self.etag(op.user) {
                    Some(etag) => write!(out, "SIP-If-Match: {etag}\r\n"),
                    None => Ok(()),
                }
            }
            Step::Message | Step::Bye => Ok(()),
        };
        if let Some(a) = &creds.authorization {
            let _ = write!(out, "Authorization: {a}\r\n");
        }
        if let Some(a) = &creds.proxy_authorization {
            let _ = write!(out, "Proxy-Authorization: {a}\r\n");
        }
        match op.step {
            Step::Message => {
                let _ = write!(
                    out,
                    "Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                    marker_len(op.number)
                );
                write_marker(out, run, op.number);
            }
            Step::Invite => write_body(out, Some(("application/sdp", &self.sdp))),
            Step::Publish => {
                let mut pidf = Vec::with_capacity(320);
                self.write_pidf(&mut pidf, slot, now);
                write_body(out, Some(("application/pidf+xml", &pidf)));
            }
            _ => write_body(out, None),
        }
    }

    /// The final response `status` to `slot`'s current request.
    pub(crate) fn on_final(
        &mut self,
        slot: usize,
        msg: &Message,
        status: u16,
        now: Instant,
        wire: &mut dyn Wire,
    ) {
        let step = self.ops[slot].step;
        if step == Step::Invite && status >= 300 {
            self.ack_failure(slot, msg);
            if !self.send_or_fail(slot, now, wire, Which::Ack) {
                return;
            }
        }
        // Clearing old bindings is a courtesy: a server that refuses `Contact: *` still
        // gets the registration.
        if step == Step::Clear && !matches!(status, 401 | 407) {
            let op = &mut self.ops[slot];
            op.step = Step::Register;
            // The next REGISTER answers the same challenge before being asked: a challenge
            // to it is answered once more.
            op.round = auth::Round::default();
            self.send_step(slot, now, wire);
            return;
        }
        if (200..300).contains(&status) {
            match step {
                Step::Invite => self.answered(slot, msg, now, wire),
                Step::Subscribe => self.subscribed(slot, now, wire),
                Step::Publish => self.published(slot, msg, now),
                _ => self.finish(slot, Ok(()), now),
            }
            return;
        }
        if matches!(status, 401 | 407) {
            match self.challenge(slot, msg, status) {
                Ok(()) => {
                    let op = &mut self.ops[slot];
                    op.cseq = op.cseq.wrapping_add(1);
                    self.send_step(slot, now, wire);
                }
                Err(f) => self.finish(slot, Err(f), now),
            }
            return;
        }
        if step == Step::Publish {
            self.publish_refused(slot, status);
        }
        self.finish(slot, Err(Failure::Status(status)), now);
    }

    /// Takes the challenge of a 401 or 407 for `slot`, if it is to be answered.
    fn challenge(&mut self, slot: usize, msg: &Message, status: u16) -> Result<(), Failure> {
        let op = &mut self.ops[slot];
        let j = op.user as usize;
        let Some((cached, stale)) = auth::pick(msg, status) else {
            return Err(Failure::Status(status));
        };
        let registering = matches!(op.step, Step::Clear | Step::Register);
        if !op.round.answer(stale) || (status == 407 && registering) {
            if status == 407 {
                if let Some(u) = self.users.get_mut(j) {
                    u.proxy = None;
                }
            }
            return Err(Failure::Status(status));
        }
        if status == 401 {
            op.www = Some(cached);
        } else {
            op.bye_auth |= op.step == Step::Bye;
            if let Some(u) = self.users.get_mut(j) {
                u.proxy = Some(Box::new(cached));
            }
        }
        Ok(())
    }

    /// Writes into the slot's ACK buffer the ACK of a non-2xx final response to its INVITE
    /// (RFC 3261 §17.1.1.3: same branch, To of the response).
    fn ack_failure(&mut self, slot: usize, msg: &Message) {
        let mut out = std::mem::take(&mut self.ops[slot].ack);
        out.clear();
        let op = &self.ops[slot];
        let (s, domain, run) = (&self.set, &self.cfg.domain, self.set.run);
        let me = self.name(op.user);
        write_head(
            &mut out,
            "ACK",
            format_args!("sip:{}@{domain}", self.peer(op.user)),
            s.local,
            s.tag,
            slot as u32,
            op.seq,
        );
        let to = msg.header(HeaderName::To).unwrap_or_default();
        let _ = write!(
            out,
            "From: <sip:{me}@{domain}>;tag=c{:x}\r\nTo: {to}\r\nCall-ID: c{run:016x}.{}\r\n\
             CSeq: {} ACK\r\n",
            op.number, op.number, op.cseq
        );
        write_body(&mut out, None);
        let seq = op.seq;
        let op = &mut self.ops[slot];
        op.ack = out;
        op.ack_seq = seq;
    }

    /// A 2xx to the INVITE: the dialog is set up; ACK it, then BYE.
    fn answered(&mut self, slot: usize, msg: &Message, now: Instant, wire: &mut dyn Wire) {
        let op = &mut self.ops[slot];
        op.to.clear();
        op.to
            .push_str(msg.header(HeaderName::To).unwrap_or_default());
        op.target.clear();
        match msg
            .contacts()
            .next()
            .and_then(Result::ok)
            .and_then(|c| c.address().map(|a| a.uri().as_str()))
        {
            Some(target) => op.target.push_str(target),
            None => {
                self.finish(slot, Err(Failure::Error), now);
                return;
            }
        }
        // The route set is the Record-Route of the 2xx, reversed (RFC 3261 §12.1.2).
        op.route.clear();
        let rr: Vec<&str> = msg.values(HeaderName::RecordRoute).collect();
        for (i, r) in rr.iter().rev().enumerate() {
            if i > 0 {
                op.route.push_str(", ");
            }
            op.route.push_str(r);
        }
        op.invite_cseq = op.cseq;
        let invite_seq = op.seq;

        // ACK for the 2xx: in the dialog, a branch of its own, the INVITE's credentials.
        let ack_seq = self.new_seq();
        let mut out = std::mem::take(&mut self.ops[slot].ack);
        out.clear();
        let op = &self.ops[slot];
        let (s, domain, run) = (&self.set, &self.cfg.domain, self.set.run);
        write_head(
            &mut out,
            "ACK",
            format_args!("{}", op.target),
            s.local,
            s.tag,
            slot as u32,
            ack_seq,
        );
        if !op.route.is_empty() {
            let _ = write!(out, "Route: {}\r\n", op.route);
        }
        let _ = write!(
            out,
            "From: <sip:{}@{domain}>;tag=c{:x}\r\nTo: {}\r\nCall-ID: c{run:016x}.{}\r\n\
             CSeq: {} ACK\r\n",
            self.name(op.user),
            op.number,
            op.to,
            op.number,
            op.invite_cseq
        );
        if !op.proxy_auth.is_empty() {
            let _ = write!(out, "Proxy-Authorization: {}\r\n", op.proxy_auth);
        }
        write_body(&mut out, None);
        let op = &mut self.ops[slot];
        op.ack = out;
        op.ack_seq = invite_seq;
        if !self.send_or_fail(slot, now, wire, Which::Ack) {
            return;
        }
        let op = &mut self.ops[slot];
        op.step = Step::Bye;
        op.round = auth::Round::default();
        op.cseq = op.invite_cseq.wrapping_add(1);
        self.send_step(slot, now, wire);
    }
}
