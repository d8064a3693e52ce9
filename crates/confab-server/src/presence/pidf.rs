//! The presence document (PIDF, RFC 3863, with the data model of RFC 4479 and the activities
//! of RPID, RFC 4480): what one publication says ([`parse`]), how the publications of a
//! user's devices make one view ([`compose`]), and the document a watcher is sent at its
//! access level ([`render`]). No I/O, no clock; parsed and written with quick-xml.
//!
//! **Availability** follows Lync: available, busy, do not disturb, be right back, away,
//! offline — in that order, most available first. A tuple whose basic status is `closed` is
//! offline; an open one takes the least available of its RPID activities (or the person's):
//! `busy`, `on-the-phone`, `meeting`, `appointment`, `performance`, `presentation`, `meal`
//! are busy; `away`, `vacation`, `sleeping`, `permanent-absence` are away; an `other`
//! activity reading "Do Not Disturb" or "Be Right Back" is those; no activity is available.
//!
//! **What a watcher sees**, by access level:
//!
//! | level | document |
//! |---|---|
//! | any, when the view is offline | [`offline`] |
//! | blocked | [`offline`]: exactly what a user who is really offline shows |
//! | colleagues | one tuple with the composed basic status and note; the availability as RPID activities of a person |
//! | workgroup | as colleagues, plus one tuple per device with its status and note |
//! | friends and family | as workgroup, plus each device's contact address and device id |
//!
//! Element ids are fixed (`presence`, `p`, `d0`, `d1` …), never the publisher's, so that
//! nothing in a document tells a watcher which device or which level it has beyond what the
//! level shows.
//!
//! **Input limits**: 64 KiB, 32 levels of nesting, 32 tuples, notes of 1,024 characters; a
//! document type declaration is refused (no entity is ever expanded).

use std::fmt::Write as _;

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// The PIDF namespace.
pub const NS_PIDF: &str = "urn:ietf:params:xml:ns:pidf";
/// The data-model namespace (person, device, deviceID, note).
pub const NS_DM: &str = "urn:ietf:params:xml:ns:pidf:data-model";
/// The RPID namespace (activities).
pub const NS_RPID: &str = "urn:ietf:params:xml:ns:pidf:rpid";

/// The largest document read.
pub const MAX_DOCUMENT: usize = 64 * 1024;
/// The deepest nesting read.
pub const MAX_DEPTH: usize = 32;
/// The most tuples in one document.
pub const MAX_TUPLES: usize = 32;
/// The longest note, in characters.
pub const MAX_NOTE: usize = 1024;

/// Availability, most available first: composing takes the smallest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Availability {
    /// Available.
    Available,
    /// Busy (in a call, a meeting).
    Busy,
    /// Do not disturb.
    DoNotDisturb,
    /// Be right back.
    BeRightBack,
    /// Away.
    Away,
    /// Offline.
    Offline,
}

impl Availability {
    /// Every value, most available first.
    pub const ALL: [Availability; 6] = [
        Availability::Available,
        Availability::Busy,
        Availability::DoNotDisturb,
        Availability::BeRightBack,
        Availability::Away,
        Availability::Offline,
    ];

    /// The name: `available`, `busy`, `do-not-disturb`, `be-right-back`, `away`, `offline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Available => "available",
            Availability::Busy => "busy",
            Availability::DoNotDisturb => "do-not-disturb",
            Availability::BeRightBack => "be-right-back",
            Availability::Away => "away",
            Availability::Offline => "offline",
        }
    }

    /// The value named (as [`Availability::as_str`] writes it).
    pub fn parse(s: &str) -> Option<Availability> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// The basic status of a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basic {
    /// Reachable.
    Open,
    /// Not reachable.
    Closed,
}

/// One device's state: one tuple of a publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// The tuple's id, as published.
    pub tuple_id: String,
    /// Its basic status.
    pub basic: Basic,
    /// Its availability.
    pub availability: Availability,
    /// Its contact address.
    pub contact: Option<String>,
    /// Its note.
    pub note: Option<String>,
    /// Its device id (data model `deviceID`).
    pub device_id: Option<String>,
    /// Its timestamp, as written.
    pub timestamp: Option<String>,
}

/// What one PUBLISH body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Every tuple.
    pub devices: Vec<DeviceState>,
    /// The publication's availability: the most available of its devices (or the person's,
    /// when there is no tuple).
    pub availability: Availability,
    /// The person's note, else the first tuple note.
    pub note: Option<String>,
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PidfError {
    /// Not well-formed XML (or not UTF-8).
    #[error("not well-formed XML: {0}")]
    Xml(String),
    /// The root is not a PIDF `presence` element.
    #[error("the root element is not <presence> in the PIDF namespace")]
    NotPidf,
    /// The `presence` element has no `entity`.
    #[error("<presence> has no entity")]
    NoEntity,
    /// Over a limit.
    #[error("too large: {0}")]
    TooLarge(&'static str),
    /// A document type declaration (refused: entities are never expanded).
    #[error("document type declarations are not accepted")]
    DocType,
}

/// An access level, as [`render`] applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Sees the user offline.
    Blocked,
    /// Availability and note.
    Colleagues,
    /// As colleagues, plus each device's status and note.
    Workgroup,
    /// As workgroup, plus each device's contact and device id.
    FriendsAndFamily,
}

/// The composed view of one presentity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The most available of all publications (or of the registration).
    pub availability: Availability,
    /// The note that goes with it.
    pub note: Option<String>,
    /// Every device of every publication.
    pub devices: Vec<DeviceState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Pidf,
    Dm,
    Rpid,
    Other,
}

/// Activities read from `activities` elements: the least available of the standard ones,
/// and an `other` one that names a Lync state (it refines them: "Be Right Back" comes with
/// `away` for clients that know only RPID).
#[derive(Debug, Default, Clone)]
struct Activities {
    worst: Option<Availability>,
    named: Option<Availability>,
}

impl Activities {
    fn add(&mut self, a: Availability) {
        self.worst = Some(self.worst.map_or(a, |w| w.max(a)));
    }

    fn add_named(&mut self, a: Availability) {
        self.named = Some(self.named.map_or(a, |w| w.max(a)));
    }

    fn availability(&self) -> Option<Availability> {
        self.named.or(self.worst)
    }
}

fn activity(local: &str) -> Option<Availability> {
    match local {
        "busy" | "on-the-phone" | "meeting" | "appointment" | "performance" | "presentation"
        | "meal" => Some(Availability::Busy),
        "away" | "vacation" | "sleeping" | "permanent-absence" => Some(Availability::Away),
        _ => None,
    }
}

fn other_activity(text: &str) -> Option<Availability> {
    let key: String = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    match key.as_str() {
        "donotdisturb" | "dnd" => Some(Availability::DoNotDisturb),
        "berightback" | "brb" => Some(Availability::BeRightBack),
        "away" => Some(Availability::Away),
        "busy" => Some(Availability::Busy),
        _ => None,
    }
}

#[derive(Debug, Default)]
struct TupleDraft {
    id: String,
    basic: Option<Basic>,
    contact: Option<String>,
    note: Option<String>,
    device_id: Option<String>,
    timestamp: Option<String>,
    activities: Activities,
}

/// What the text being collected belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Basic,
    Contact,
    TupleNote,
    DeviceId,
    Timestamp,
    PersonNote,
    PresenceNote,
    Other,
}

#[derive(Default)]
struct Reading {
    tuples: Vec<TupleDraft>,
    tuple: Option<TupleDraft>,
    in_person: bool,
    in_activities: bool,
    person: Activities,
    person_note: Option<String>,
    presence_note: Option<String>,
    field: Option<Field>,
    text: String,
}

fn xml_err(e: impl std::fmt::Display) -> PidfError {
    PidfError::Xml(e.to_string())
}

fn ns_of(r: &ResolveResult<'_>) -> Ns {
    match r {
        ResolveResult::Bound(ns) => match ns.as_ref() {
            b if b == NS_PIDF.as_bytes() => Ns::Pidf,
            b if b == NS_DM.as_bytes() => Ns::Dm,
            b if b == NS_RPID.as_bytes() => Ns::Rpid,
            _ => Ns::Other,
        },
        _ => Ns::Other,
    }
}

fn attribute(e: &BytesStart<'_>, name: &[u8]) -> Result<Option<String>, PidfError> {
    for a in e.attributes() {
        let a = a.map_err(xml_err)?;
        if a.key.as_ref() == name {
            return Ok(Some(a.unescape_value().map_err(xml_err)?.into_owned()));
        }
    }
    Ok(None)
}

fn set_note(slot: &mut Option<String>, text: &str) -> Result<(), PidfError> {
    let text = text.trim();
    if text.chars().count() > MAX_NOTE {
        return Err(PidfError::TooLarge("note"));
    }
    if slot.is_none() && !text.is_empty() {
        *slot = Some(text.to_owned());
    }
    Ok(())
}

impl Reading {
    fn start(
        &mut self,
        ns: Ns,
        local: &[u8],
        e: &BytesStart<'_>,
        depth: usize,
    ) -> Result<(), PidfError> {
        self.field = None;
        self.text.clear();
        match (ns, local) {
            (Ns::Pidf, b"tuple") if self.tuple.is_none() => {
                if self.tuples.len() >= MAX_TUPLES {
                    return Err(PidfError::TooLarge("tuples"));
                }
                self.tuple = Some(TupleDraft {
                    id: attribute(e, b"id")?.unwrap_or_default(),
                    ..TupleDraft::default()
                });
            }
            (Ns::Dm, b"person") => self.in_person = true,
            (Ns::Rpid, b"activities") => self.in_activities = true,
            (Ns::Rpid, name) if self.in_activities => {
                let name = std::str::from_utf8(name).unwrap_or_default();
                if name == "other" {
                    self.field = Some(Field::Other);
                } else {
                    let a = activity(name);
                    let target = match self.tuple.as_mut() {
                        Some(t) => &mut t.activities,
                        None => &mut self.person,
                    };
                    if let Some(a) = a {
                        target.add(a);
                    }
                }
            }
            (Ns::Pidf, b"basic") => self.field = Some(Field::Basic),
            (Ns::Pidf, b"contact") => self.field = Some(Field::Contact),
            (Ns::Pidf, b"timestamp") => self.field = Some(Field::Timestamp),
            (Ns::Dm, b"deviceID") => self.field = Some(Field::DeviceId),
            (Ns::Pidf | Ns::Dm, b"note") => {
                self.field = if self.tuple.is_some() {
                    Some(Field::TupleNote)
                } else if self.in_person {
                    Some(Field::PersonNote)
                } else {
                    // Only the root's own note; one inside an extension is not ours.
                    (depth == 2).then_some(Field::PresenceNote)
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, ns: Ns, local: &[u8]) -> Result<(), PidfError> {
        if let Some(field) = self.field.take() {
            let text = std::mem::take(&mut self.text);
            self.field_done(field, &text)?;
        }
        match (ns, local) {
            (Ns::Pidf, b"tuple") => {
                if let Some(t) = self.tuple.take() {
                    self.tuples.push(t);
                }
            }
            (Ns::Dm, b"person") => self.in_person = false,
            (Ns::Rpid, b"activities") => self.in_activities = false,
            _ => {}
        }
        Ok(())
    }

    fn field_done(&mut self, field: Field, text: &str) -> Result<(), PidfError> {
        let value = text.trim();
        let tuple = self.tuple.as_mut();
        match (field, tuple) {
            (Field::Basic, Some(t)) => {
                t.basic = match value.to_ascii_lowercase().as_str() {
                    "open" => Some(Basic::Open),
                    "closed" => Some(Basic::Closed),
                    _ => t.basic,
                }
            }
            (Field::Contact, Some(t)) if !value.is_empty() => t.contact = Some(value.to_owned()),
            (Field::Timestamp, Some(t)) if !value.is_empty() => {
                t.timestamp = Some(value.to_owned())
            }
            (Field::DeviceId, Some(t)) if !value.is_empty() => t.device_id = Some(value.to_owned()),
            (Field::TupleNote, Some(t)) => set_note(&mut t.note, value)?,
            (Field::PersonNote, _) => set_note(&mut self.person_note, value)?,
            (Field::PresenceNote, _) => set_note(&mut self.presence_note, value)?,
            (Field::Other, t) => {
                let target = match t {
                    Some(t) => &mut t.activities,
                    None => &mut self.person,
                };
                match other_activity(value) {
                    Some(a @ (Availability::DoNotDisturb | Availability::BeRightBack)) => {
                        target.add_named(a)
                    }
                    Some(a) => target.add(a),
                    None => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> Publication {
        let person = self.person.availability();
        let devices: Vec<DeviceState> = self
            .tuples
            .into_iter()
            .map(|t| {
                let basic = t.basic.unwrap_or(Basic::Closed);
                let availability = match basic {
                    Basic::Closed => Availability::Offline,
                    // The tuple's own activities, else the person's.
                    Basic::Open => t
                        .activities
                        .availability()
                        .or(person)
                        .unwrap_or(Availability::Available),
                };
                DeviceState {
                    tuple_id: t.id,
                    basic,
                    availability,
                    contact: t.contact,
                    note: t.note,
                    device_id: t.device_id,
                    timestamp: t.timestamp,
                }
            })
            .collect();
        let availability = if devices.is_empty() {
            person.unwrap_or(Availability::Available)
        } else {
            devices
                .iter()
                .map(|d| d.availability)
                .min()
                .unwrap_or(Availability::Offline)
        };
        let note = self
            .person_note
            .or_else(|| devices.iter().find_map(|d| d.note.clone()))
            .or(self.presence_note);
        Publication {
            devices,
            availability,
            note,
        }
    }
}

/// Reads one PUBLISH body.
pub fn parse(body: &[u8]) -> Result<Publication, PidfError> {
    if body.len() > MAX_DOCUMENT {
        return Err(PidfError::TooLarge("document"));
    }
    let text = std::str::from_utf8(body).map_err(xml_err)?;
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut r = Reading::default();
    let mut depth = 0usize;
    let mut root_seen = false;
    loop {
        let (resolved, event) = reader.read_resolved_event().map_err(xml_err)?;
        let ns = ns_of(&resolved);
        match event {
            Event::Start(ref e) | Event::Empty(ref e) if !root_seen => {
                if ns != Ns::Pidf || e.local_name().as_ref() != b"presence" {
                    return Err(PidfError::NotPidf);
                }
                if attribute(e, b"entity")?.is_none_or(|v| v.trim().is_empty()) {
                    return Err(PidfError::NoEntity);
                }
                root_seen = true;
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                }
            }
            Event::Start(_) | Event::Empty(_) if root_seen && depth == 0 => {
                return Err(PidfError::Xml("content after the root element".into()));
            }
            Event::Start(e) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(PidfError::TooLarge("nesting"));
                }
                r.start(ns, e.local_name().as_ref(), &e, depth)?;
            }
            Event::Empty(e) => {
                r.start(ns, e.local_name().as_ref(), &e, depth + 1)?;
                r.end(ns, e.local_name().as_ref())?;
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                r.end(ns, e.local_name().as_ref())?;
            }
            Event::Text(t) => {
                if r.field.is_some() {
                    r.text.push_str(&t.decode().map_err(xml_err)?);
                }
            }
            Event::CData(t) => {
                if r.field.is_some() {
                    r.text.push_str(&t.decode().map_err(xml_err)?);
                }
            }
            Event::GeneralRef(g) => {
                let ch = if g.is_char_ref() {
                    g.resolve_char_ref().map_err(xml_err)?
                } else {
                    let name = g.decode().map_err(xml_err)?;
                    match resolve_predefined_entity(&name) {
                        Some(s) => s.chars().next(),
                        None => return Err(PidfError::Xml(format!("unknown entity &{name};"))),
                    }
                };
                if let (Some(c), Some(_)) = (ch, r.field) {
                    r.text.push(c);
                }
            }
            Event::DocType(_) => return Err(PidfError::DocType),
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
        if r.text.len() > MAX_DOCUMENT {
            return Err(PidfError::TooLarge("text"));
        }
    }
    if !root_seen {
        return Err(PidfError::NotPidf);
    }
    if depth != 0 {
        return Err(PidfError::Xml("unclosed elements".into()));
    }
    Ok(r.finish())
}

/// Composes the latest publication of each device (oldest first) with whether the user is
/// registered: see the module documentation.
pub fn compose<'a>(
    publications: impl IntoIterator<Item = &'a Publication>,
    registered: bool,
) -> View {
    let publications: Vec<&Publication> = publications.into_iter().collect();
    if publications.is_empty() {
        return View {
            availability: if registered {
                Availability::Available
            } else {
                Availability::Offline
            },
            note: None,
            devices: Vec::new(),
        };
    }
    let availability = publications
        .iter()
        .map(|p| p.availability)
        .min()
        .unwrap_or(Availability::Offline);
    // The most recent winner's note, else the most recent note at all.
    let note = publications
        .iter()
        .rev()
        .find(|p| p.availability == availability && p.note.is_some())
        .or_else(|| publications.iter().rev().find(|p| p.note.is_some()))
        .and_then(|p| p.note.clone());
    View {
        availability,
        note,
        devices: publications
            .iter()
            .flat_map(|p| p.devices.iter().cloned())
            .collect(),
    }
}

fn head(out: &mut String, entity: &str) {
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<presence xmlns=\"{NS_PIDF}\" xmlns:dm=\"{NS_DM}\" xmlns:rpid=\"{NS_RPID}\" entity=\"{}\">",
        escape(entity)
    );
}

fn basic_str(b: Basic) -> &'static str {
    match b {
        Basic::Open => "open",
        Basic::Closed => "closed",
    }
}

fn activities(a: Availability) -> &'static str {
    match a {
        Availability::Available => "",
        Availability::Busy => "<rpid:busy/>",
        Availability::DoNotDisturb => "<rpid:busy/><rpid:other>Do Not Disturb</rpid:other>",
        Availability::BeRightBack => "<rpid:away/><rpid:other>Be Right Back</rpid:other>",
        Availability::Away => "<rpid:away/>",
        Availability::Offline => "<rpid:unknown/>",
    }
}

/// The document of a presentity who is offline — and of one a blocked watcher watches.
pub fn offline(entity: &str) -> String {
    let mut out = String::with_capacity(400);
    head(&mut out, entity);
    out.push_str("  <tuple id=\"presence\"><status><basic>closed</basic></status></tuple>\n");
    out.push_str(
        "  <dm:person id=\"p\"><rpid:activities><rpid:unknown/></rpid:activities></dm:person>\n",
    );
    out.push_str("</presence>\n");
    out
}

/// The document a watcher at `level` is sent for `entity` (`sip:user@domain`).
pub fn render(entity: &str, view: &View, level: Level) -> String {
    // Offline is offline, whatever was published: a blocked watcher's document and a
    // signed-out user's are the same bytes.
    if level == Level::Blocked || view.availability == Availability::Offline {
        return offline(entity);
    }
    let basic = Basic::Open;
    let mut out = String::with_capacity(512 + view.devices.len() * 256);
    head(&mut out, entity);
    let _ = write!(
        out,
        "  <tuple id=\"presence\"><status><basic>{}</basic></status>",
        basic_str(basic)
    );
    if let Some(note) = &view.note {
        let _ = write!(out, "<note>{}</note>", escape(note.as_str()));
    }
    out.push_str("</tuple>\n");
    if level >= Level::Workgroup {
        for (i, d) in view.devices.iter().enumerate() {
            let _ = write!(
                out,
                "  <tuple id=\"d{i}\"><status><basic>{}</basic></status>",
                basic_str(d.basic)
            );
            if level >= Level::FriendsAndFamily {
                if let Some(id) = &d.device_id {
                    let _ = write!(out, "<dm:deviceID>{}</dm:deviceID>", escape(id.as_str()));
                }
                if let Some(c) = &d.contact {
                    let _ = write!(out, "<contact>{}</contact>", escape(c.as_str()));
                }
            }
            if let Some(note) = &d.note {
                let _ = write!(out, "<note>{}</note>", escape(note.as_str()));
            }
            out.push_str("</tuple>\n");
        }
    }
    out.push_str("  <dm:person id=\"p\">");
    let acts = activities(view.availability);
    if !acts.is_empty() {
        let _ = write!(out, "<rpid:activities>{acts}</rpid:activities>");
    }
    if let Some(note) = &view.note {
        let _ = write!(out, "<dm:note>{}</dm:note>", escape(note.as_str()));
    }
    out.push_str("</dm:person>\n");
    if level >= Level::FriendsAndFamily {
        for d in &view.devices {
            if let Some(id) = &d.device_id {
                let id = escape(id.as_str());
                let _ = writeln!(
                    out,
                    "  <dm:device id=\"dev-{id}\"><dm:deviceID>{id}</dm:deviceID></dm:device>"
                );
            }
        }
    }
    out.push_str("</presence>\n");
    out
}

#[cfg(test)]
mod tests;
