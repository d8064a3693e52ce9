//! Typed header values, parsed on demand from a [`crate::Message`] and borrowing from it.
//!
//! Each submodule owns the grammar of one family of headers; the private `access` module adds
//! the typed accessors (`msg.via()`, `msg.cseq()`, …) to [`crate::Message`]. Parsers are strict where
//! RFC 3261 and RFC 4475 say a message is invalid, and liberal where they say to be.

use std::fmt;

use crate::header_name::HeaderName;

mod access;
mod addr;
mod date;
mod event;
mod media;
mod params;
mod scalar;
mod via;

pub use addr::{Contact, DisplayName, NameAddr};
pub use date::HttpDate;
pub use event::{Event, SubscriptionState};
pub use media::MediaType;
pub use params::{Param, Params};
pub use scalar::CSeq;
pub use via::{Via, MAGIC_COOKIE};

/// Why a typed header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderError {
    /// The header concerned.
    pub name: HeaderName,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A required header is absent.
    Missing,
    /// A header that may appear once appears more than once.
    Duplicate,
    /// The value is not UTF-8.
    NotUtf8,
    /// A number is out of its allowed range (RFC 4475 `scalar02`).
    OutOfRange,
    /// The value does not follow the grammar; the text says where.
    Malformed(&'static str),
}

impl HeaderError {
    pub(crate) fn new(name: HeaderName, problem: Problem) -> Self {
        HeaderError { name, problem }
    }
    pub(crate) fn malformed(name: HeaderName, what: &'static str) -> Self {
        HeaderError::new(name, Problem::Malformed(what))
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problem {
            Problem::Missing => write!(f, "missing {} header", self.name),
            Problem::Duplicate => write!(f, "more than one {} header", self.name),
            Problem::NotUtf8 => write!(f, "{} header is not UTF-8", self.name),
            Problem::OutOfRange => write!(f, "{} value out of range", self.name),
            Problem::Malformed(what) => write!(f, "malformed {} header: {what}", self.name),
        }
    }
}

impl std::error::Error for HeaderError {}
