//! Watcher information documents (RFC 3857 event package `presence.winfo`, RFC 3858 format
//! `application/watcherinfo+xml`): who watches a presentity's presence and in which state,
//! so that the presentity can decide about pending watchers. Always full state; the version
//! counts the documents sent on one subscription.

use std::fmt::Write as _;

/// The content type of a watcher information document.
pub const CONTENT_TYPE: &str = "application/watcherinfo+xml";

/// A watcher's status (RFC 3858 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatcherStatus {
    /// Waiting for the presentity's decision.
    Pending,
    /// Subscribed and notified (blocked watchers too: they see the presentity offline).
    Active,
    /// The subscription ended.
    Terminated,
}

impl WatcherStatus {
    fn as_str(self) -> &'static str {
        match self {
            WatcherStatus::Pending => "pending",
            WatcherStatus::Active => "active",
            WatcherStatus::Terminated => "terminated",
        }
    }
}

/// One row of the watcher list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherEntry {
    /// Unique within the list: the subscription's id.
    pub id: String,
    /// The watcher's URI, `sip:user@domain`.
    pub uri: String,
    /// Its status.
    pub status: WatcherStatus,
    /// What brought it to that status: `subscribe`, `approved`, `timeout`, …
    pub event: &'static str,
    /// How long it has been subscribed, in seconds.
    pub duration: u64,
}

fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

/// The full-state document for `resource` (the presentity's URI).
pub fn render(resource: &str, version: u32, watchers: &[WatcherEntry]) -> String {
    let mut out = String::with_capacity(256 + watchers.len() * 128);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<watcherinfo xmlns=\"urn:ietf:params:xml:ns:watcherinfo\" version=\"{version}\" state=\"full\">"
    );
    let _ = writeln!(
        out,
        "  <watcher-list resource=\"{}\" package=\"presence\">",
        escape(resource)
    );
    for w in watchers {
        let _ = writeln!(
            out,
            "    <watcher id=\"{}\" event=\"{}\" status=\"{}\" duration-subscribed=\"{}\">{}</watcher>",
            escape(&w.id),
            w.event,
            w.status.as_str(),
            w.duration,
            escape(&w.uri)
        );
    }
    out.push_str("  </watcher-list>\n</watcherinfo>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_and_an_active_watcher() {
        let doc = render(
            "sip:alice@example.com",
            3,
            &[
                WatcherEntry {
                    id: "w1".into(),
                    uri: "sip:bob@example.com".into(),
                    status: WatcherStatus::Pending,
                    event: "subscribe",
                    duration: 5,
                },
                WatcherEntry {
                    id: "w<2>".into(),
                    uri: "sip:carol@example.com".into(),
                    status: WatcherStatus::Active,
                    event: "approved",
                    duration: 0,
                },
            ],
        );
        assert!(doc.contains("version=\"3\" state=\"full\""));
        assert!(doc.contains("resource=\"sip:alice@example.com\" package=\"presence\""));
        assert!(doc.contains(
            "<watcher id=\"w1\" event=\"subscribe\" status=\"pending\" duration-subscribed=\"5\">sip:bob@example.com</watcher>"
        ));
        assert!(doc.contains("id=\"w&lt;2&gt;\""));
        assert!(render("sip:a@b", 0, &[]).contains("<watcher-list resource=\"sip:a@b\""));
    }
}
