//! A topology document as written: TOML read with the place (line and column) of every key and
//! value, into fields that may be missing or of the wrong type. Only the shape is checked here
//! (unknown keys, types, TOML syntax); what the values mean is [`super::validate`]'s job.

use std::fmt;
use std::ops::Range;

use serde::Serialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A place in a document: line and column, both from 1 (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Pos {
    /// The line.
    pub line: usize,
    /// The column.
    pub column: usize,
}

impl Pos {
    /// The start of the document.
    pub const START: Pos = Pos { line: 1, column: 1 };

    /// The place of byte `offset` of `text`.
    pub fn of(text: &str, offset: usize) -> Pos {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Pos {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The document cannot be published.
    Error,
    /// Printed, but publishing goes ahead.
    Warning,
}

/// One problem of a document, with its place and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where.
    pub pos: Pos,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub fix: String,
}

impl Problem {
    pub(crate) fn error(pos: Pos, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Problem {
            pos,
            severity: Severity::Error,
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub(crate) fn warning(pos: Pos, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(pos, message, fix)
        }
    }
}

/// `LINE:COL: problem (fix)`, warnings marked as such; the CLI puts the file name first.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let warning = match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        write!(f, "{}: {warning}{} ({})", self.pos, self.message, self.fix)
    }
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct At<T> {
    pub value: T,
    pub pos: Pos,
}

/// A `[[site]]` as written.
#[derive(Debug, Default)]
pub(crate) struct RawSite {
    pub pos: Pos,
    pub name: Option<At<String>>,
    pub description: Option<At<String>>,
}

/// A `[[pool]]` as written.
#[derive(Debug, Default)]
pub(crate) struct RawPool {
    pub pos: Pos,
    pub name: Option<At<String>>,
    pub kind: Option<At<String>>,
    pub site: Option<At<String>>,
    pub servers: Option<At<Vec<At<String>>>>,
    pub next_hop: Option<At<String>>,
    pub pair: Option<At<String>>,
}

/// A whole document as written.
#[derive(Debug, Default)]
pub(crate) struct RawDocument {
    pub domains: Option<At<Vec<At<String>>>>,
    pub sites: Vec<RawSite>,
    pub pools: Vec<RawPool>,
}

impl Default for Pos {
    fn default() -> Self {
        Pos::START
    }
}

const TOP_KEYS: &str = "domains, [[site]] and [[pool]]";
const SITE_KEYS: &str = "name and description";
const POOL_KEYS: &str = "name, kind, site, servers, next_hop and pair";

/// Reads `text`: `None` with every TOML syntax error, or the document with every unknown key
/// and value of the wrong type.
pub(crate) fn parse(text: &str) -> (Option<RawDocument>, Vec<Problem>) {
    let (table, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let problems = errors
            .iter()
            .map(|e| {
                let pos = e.span().map_or(Pos::START, |s| Pos::of(text, s.start));
                Problem::error(
                    pos,
                    format!("not valid TOML: {}", e.message().trim_end()),
                    "correct the TOML syntax at this place",
                )
            })
            .collect();
        return (None, problems);
    }
    let mut reader = Reader {
        text,
        problems: Vec::new(),
    };
    let doc = reader.document(table.get_ref());
    (Some(doc), reader.problems)
}

struct Reader<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn pos(&self, span: Range<usize>) -> Pos {
        Pos::of(self.text, span.start)
    }

    fn document(&mut self, table: &DeTable<'_>) -> RawDocument {
        let mut doc = RawDocument::default();
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "domains" => doc.domains = self.strings(key, value, "domains"),
                "site" => {
                    for t in self.tables(key, value, "site") {
                        doc.sites.push(self.site(t));
                    }
                }
                "pool" => {
                    for t in self.tables(key, value, "pool") {
                        doc.pools.push(self.pool(t));
                    }
                }
                other => self.unknown(key, other, "at the top of the document", TOP_KEYS),
            }
        }
        doc.sites.sort_by_key(|s| s.pos);
        doc.pools.sort_by_key(|p| p.pos);
        doc
    }

    fn site(&mut self, (pos, table): (Pos, &DeTable<'_>)) -> RawSite {
        let mut site = RawSite {
            pos,
            ..RawSite::default()
        };
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "name" => site.name = self.string(key, value),
                "description" => site.description = self.string(key, value),
                other => self.unknown(key, other, "in a [[site]]", SITE_KEYS),
            }
        }
        site
    }

    fn pool(&mut self, (pos, table): (Pos, &DeTable<'_>)) -> RawPool {
        let mut pool = RawPool {
            pos,
            ..RawPool::default()
        };
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "name" => pool.name = self.string(key, value),
                "kind" => pool.kind = self.string(key, value),
                "site" => pool.site = self.string(key, value),
                "servers" => pool.servers = self.strings(key, value, "servers"),
                "next_hop" => pool.next_hop = self.string(key, value),
                "pair" => pool.pair = self.string(key, value),
                other => self.unknown(key, other, "in a [[pool]]", POOL_KEYS),
            }
        }
        pool
    }

    fn unknown(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        name: &str,
        place: &str,
        keys: &str,
    ) {
        self.problems.push(Problem::error(
            self.pos(key.span()),
            format!("unknown key '{name}' {place}"),
            format!("the keys here are {keys}; remove it or correct its spelling"),
        ));
    }

    fn wrong_type(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        value: &Spanned<DeValue<'_>>,
        want: &str,
    ) {
        self.problems.push(Problem::error(
            self.pos(value.span()),
            format!(
                "'{}' is {} {}",
                key.get_ref(),
                article(value.get_ref().type_str()),
                value.get_ref().type_str()
            ),
            format!("write it as {want}"),
        ));
    }

    fn string(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<At<String>> {
        match value.get_ref().as_str() {
            Some(s) => Some(At {
                value: s.to_owned(),
                pos: self.pos(value.span()),
            }),
            None => {
                self.wrong_type(key, value, "a string in double quotes");
                None
            }
        }
    }

    fn strings(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        value: &Spanned<DeValue<'_>>,
        example: &str,
    ) -> Option<At<Vec<At<String>>>> {
        let Some(items) = value.get_ref().as_array() else {
            self.wrong_type(
                key,
                value,
                &format!("an array of strings: {example} = [\"…\"]"),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            match item.get_ref().as_str() {
                Some(s) => out.push(At {
                    value: s.to_owned(),
                    pos: self.pos(item.span()),
                }),
                None => self.wrong_type(key, item, "strings in double quotes"),
            }
        }
        Some(At {
            value: out,
            pos: self.pos(key.span()),
        })
    }

    fn tables<'a, 'i>(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        value: &'a Spanned<DeValue<'i>>,
        name: &str,
    ) -> Vec<(Pos, &'a DeTable<'i>)> {
        let fix = format!("write each {name} as a table of its own under [[{name}]]");
        let Some(items) = value.get_ref().as_array() else {
            self.wrong_type(key, value, &fix);
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref().as_table() {
                Some(t) => out.push((self.pos(item.span()), t)),
                None => self.wrong_type(key, item, &fix),
            }
        }
        out
    }
}

fn article(type_name: &str) -> &'static str {
    if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}
