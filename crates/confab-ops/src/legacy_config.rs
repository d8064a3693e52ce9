//! The routing block a legacy Kamailio needs during coexistence (`confab migrate legacy-config
//! kamailio`): Kamailio configuration text that the operator includes in its `kamailio.cfg`
//! so that, while users move from Kamailio to Confab,
//!
//! - a REGISTER of a user homed on a Confab pool now is relayed to Confab (which challenges
//!   it and keeps the binding) and the user's bindings left at Kamailio are removed, instead
//!   of Kamailio keeping a stale registration;
//! - a request for such a user, or for a user Kamailio never had (one created in Confab), is
//!   relayed to Confab;
//! - a request Confab sends (its users calling or messaging Kamailio's) is not challenged
//!   again — Confab authenticated its user — and is delivered to Kamailio's users, never sent
//!   back to Confab, so that a moment of disagreement about a user's home cannot loop.
//!
//! Which users are homed on Confab is read per request from the table `confab_moved` in
//! Kamailio's own database (through the `sqlops` module), which Confab writes on every move
//! from or to the legacy pool and in full with `confab migrate sync kamailio`
//! (see `crate::migration`). Confab's front-ends are recognised by source address: for UDP
//! the address and port of their listeners (what Confab sends from), for TCP and TLS the
//! address only.
//!
//! Written for Kamailio 5.x from its modules' documentation (sqlops, registrar, auth_db, tm,
//! rr); exercised against Debian's Kamailio by the coexistence suite
//! (`crates/confab/tests/migrate_kamailio.rs`).

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::OpsError;

/// A Confab front-end as Kamailio sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Front {
    /// `udp`, `tcp` or `tls`.
    pub transport: String,
    /// Its listen address.
    pub addr: SocketAddr,
}

impl Front {
    /// Parses `scheme://IP:PORT` (a topology's server address). WebSocket listeners are not
    /// for Kamailio to reach: `None`, as for text that is not an address.
    pub fn parse(uri: &str) -> Option<Front> {
        let (scheme, rest) = uri.split_once("://")?;
        let transport = scheme.to_ascii_lowercase();
        if !matches!(transport.as_str(), "udp" | "tcp" | "tls") {
            return None;
        }
        Some(Front {
            transport,
            addr: rest.trim_end_matches('/').parse().ok()?,
        })
    }

    /// The SIP URI Kamailio relays to (`$du`).
    fn uri(&self) -> String {
        let host = match self.addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        format!(
            "sip:{host}:{};transport={}",
            self.addr.port(),
            self.transport
        )
    }

    /// The condition that is true for a request this front-end sent.
    fn condition(&self) -> String {
        match self.transport.as_str() {
            "udp" => format!(
                "($si == \"{}\" && $sp == {} && $proto == \"udp\")",
                self.addr.ip(),
                self.addr.port()
            ),
            t => format!("($si == \"{}\" && $proto == \"{t}\")", self.addr.ip()),
        }
    }
}

/// Every udp, tcp and tls server of the topology's front-end pools, in the topology's order:
/// the front-ends Kamailio relays to unless the operator names others.
pub async fn topology_fronts(store: &confab_store::Store) -> Result<Vec<Front>, OpsError> {
    Ok(store
        .pools()
        .await?
        .iter()
        .filter(|p| p.kind == confab_store::PoolKind::Confab)
        .flat_map(|p| p.servers.iter().filter_map(|s| Front::parse(s)))
        .collect())
}

/// What the block is made of.
#[derive(Debug, Clone)]
pub struct KamailioBlock {
    /// The legacy pool Kamailio is in Confab's topology.
    pub legacy_pool: String,
    /// Kamailio's database, as Kamailio's `db_url` writes it (`sqlite:///var/lib/…`,
    /// `postgres://user:password@host/kamailio`).
    pub db_url: String,
    /// Confab's front-ends, in the order Kamailio tries them.
    pub fronts: Vec<Front>,
}

/// Kamailio's spelling of a database URL given to Confab as a path or `sqlite://PATH`:
/// `sqlite://` and an absolute path.
pub fn kamailio_db_url(url: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return url.replacen("postgresql://", "postgres://", 1);
    }
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    let absolute = std::path::Path::new(path);
    let absolute = if absolute.is_absolute() {
        absolute.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(absolute))
            .unwrap_or_else(|_| absolute.to_path_buf())
    };
    format!("sqlite://{}", absolute.display())
}

/// The configuration text (see the module documentation). Refused without a front-end, or
/// with a database URL Kamailio's configuration language cannot quote.
pub fn kamailio(block: &KamailioBlock) -> Result<String, OpsError> {
    if block.fronts.is_empty() {
        return Err(OpsError::Migration {
            problem: "no Confab front-end to relay to: no front-end pool of the topology lists \
                      a udp, tcp or tls server; list them in the topology (`servers`), or name \
                      them with --confab udp://IP:PORT"
                .into(),
        });
    }
    if block.db_url.contains('"') || block.db_url.contains('\n') {
        return Err(OpsError::Migration {
            problem: "the database URL has a quote or a line break, which a Kamailio \
                      configuration string cannot hold"
                .into(),
        });
    }
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# Confab coexistence for the legacy pool \"{pool}\": generated by\n\
         # `confab migrate legacy-config kamailio` (Confab {version}). Regenerate it when Confab's\n\
         # front-ends change; the users homed on Confab are read from the table confab_moved,\n\
         # which Confab keeps up to date, so moving users needs no change here.\n\
         #\n\
         # Include it after the other loadmodule lines of kamailio.cfg (remove the sqlops\n\
         # loadmodule below if the configuration loads it already), e.g.\n\
         #     include_file \"/etc/kamailio/confab.cfg\"\n\
         # and call its two routes from request_route:\n\
         #     route(CONFAB);           before authenticating a request (before route(AUTH) in\n\
         #                              Kamailio's default configuration), after the checks of\n\
         #                              route(REQINIT) and the handling of in-dialog requests\n\
         #     route(CONFAB_TARGET);    for a request to a user of Kamailio's domains, before\n\
         #                              lookup(\"location\") (first thing in route(LOCATION))\n\
         # It needs the modules tm, rr, sl, usrloc, registrar (\"location\" table), auth_db\n\
         # (the subscriber table, use_domain 1) and xlog, which Kamailio's default\n\
         # configuration loads.",
        pool = block.legacy_pool,
        version = env!("CARGO_PKG_VERSION"),
    );
    let _ = writeln!(
        w,
        "\nloadmodule \"sqlops.so\"\n\
         modparam(\"sqlops\", \"sqlcon\", \"confab=>{}\")\n",
        block.db_url
    );
    // Where the request came from.
    let _ = writeln!(
        w,
        "# $var(confab) = 1 when the request comes from one of Confab's front-ends.\n\
         route[CONFAB_SOURCE] {{\n\t$var(confab) = 0;"
    );
    for f in &block.fronts {
        let _ = writeln!(w, "\tif {} {{\n\t\t$var(confab) = 1;\n\t}}", f.condition());
    }
    let _ = writeln!(w, "}}\n");
    // Whether a user is homed on Confab.
    let _ = writeln!(
        w,
        "# $var(moved) = 1 when the user $var(user)@$var(domain) is homed on a Confab pool.\n\
         route[CONFAB_MOVED] {{\n\
         \t$var(moved) = 0;\n\
         \tif (sql_query(\"confab\", \"SELECT pool FROM confab_moved WHERE username = \
         $(var(user){{sql.val}}) AND domain = lower($(var(domain){{sql.val}}))\", \
         \"confab_r\")) {{\n\
         \t\tif ($dbr(confab_r=>rows) > 0) {{\n\
         \t\t\t$var(moved) = 1;\n\
         \t\t}}\n\
         \t\tsql_result_free(\"confab_r\");\n\
         \t}}\n\
         }}\n"
    );
    // Relay to Confab, with failover.
    let first = &block.fronts[0];
    let _ = writeln!(
        w,
        "# Relays the request to Confab, statefully; the next front-end is tried when one does\n\
         # not answer or is unavailable.\n\
         route[CONFAB_RELAY] {{\n\
         \t$du = \"{}\";\n\
         \tt_on_failure(\"CONFAB_FAILOVER\");\n\
         \tif (!t_relay()) {{\n\
         \t\tsl_reply_error();\n\
         \t}}\n\
         \texit;\n\
         }}\n",
        first.uri()
    );
    let _ = writeln!(
        w,
        "failure_route[CONFAB_FAILOVER] {{\n\
         \tif (t_is_canceled()) {{\n\
         \t\texit;\n\
         \t}}\n\
         \tif (!(t_branch_timeout() || t_check_status(\"503\"))) {{\n\
         \t\texit;\n\
         \t}}"
    );
    for pair in block.fronts.windows(2) {
        let _ = writeln!(
            w,
            "\tif ($du == \"{}\") {{\n\
             \t\t$du = \"{}\";\n\
             \t\tt_on_failure(\"CONFAB_FAILOVER\");\n\
             \t\tt_relay();\n\
             \t\texit;\n\
             \t}}",
            pair[0].uri(),
            pair[1].uri()
        );
    }
    let _ = writeln!(w, "}}\n");
    // Entry 1.
    let _ = writeln!(
        w,
        "# Call before authentication. A REGISTER of a user homed on Confab goes to Confab (its\n\
         # bindings here are removed). A request from Confab is not challenged again: it is\n\
         # delivered to Kamailio's user, or relayed when its Request-URI is not Kamailio's (a\n\
         # contact reached through Kamailio); it is never sent back to Confab.\n\
         route[CONFAB] {{\n\
         \tif (is_method(\"REGISTER\")) {{\n\
         \t\t$var(user) = $tU;\n\
         \t\t$var(domain) = $td;\n\
         \t\troute(CONFAB_MOVED);\n\
         \t\tif ($var(moved) == 1) {{\n\
         \t\t\tunregister(\"location\", \"sip:$tU@$td\");\n\
         \t\t\txlog(\"L_INFO\", \"confab: REGISTER of $tU@$td relayed to Confab\\n\");\n\
         \t\t\troute(CONFAB_RELAY);\n\
         \t\t}}\n\
         \t\treturn;\n\
         \t}}\n\
         \troute(CONFAB_SOURCE);\n\
         \tif ($var(confab) == 0) {{\n\
         \t\treturn;\n\
         \t}}\n\
         \tif (has_totag() || is_method(\"ACK|CANCEL\")) {{\n\
         \t\treturn;\n\
         \t}}\n\
         \tif (!(uri == myself)) {{\n\
         \t\trecord_route();\n\
         \t\tif (!t_relay()) {{\n\
         \t\t\tsl_reply_error();\n\
         \t\t}}\n\
         \t\texit;\n\
         \t}}\n\
         \tif ($rU == $null) {{\n\
         \t\treturn;\n\
         \t}}\n\
         \tif (!lookup(\"location\")) {{\n\
         \t\t$var(rc) = $rc;\n\
         \t\tt_newtran();\n\
         \t\tif ($var(rc) == -1 && !is_subscriber(\"$ru\", \"subscriber\", \"3\")) {{\n\
         \t\t\tt_reply(\"404\", \"Not Found\");\n\
         \t\t}} else {{\n\
         \t\t\tt_reply(\"480\", \"Temporarily Unavailable\");\n\
         \t\t}}\n\
         \t\texit;\n\
         \t}}\n\
         \trecord_route();\n\
         \tif (!t_relay()) {{\n\
         \t\tsl_reply_error();\n\
         \t}}\n\
         \texit;\n\
         }}\n"
    );
    // Entry 2.
    let _ = writeln!(
        w,
        "# Call before lookup(\"location\") for a request to a user of Kamailio's domains: a\n\
         # user homed on Confab, or one Kamailio has no subscriber for, is reached through\n\
         # Confab.\n\
         route[CONFAB_TARGET] {{\n\
         \tif ($rU == $null) {{\n\
         \t\treturn;\n\
         \t}}\n\
         \t$var(user) = $rU;\n\
         \t$var(domain) = $rd;\n\
         \troute(CONFAB_MOVED);\n\
         \tif ($var(moved) == 0 && is_subscriber(\"$ru\", \"subscriber\", \"3\")) {{\n\
         \t\treturn;\n\
         \t}}\n\
         \txlog(\"L_INFO\", \"confab: $rm for $rU@$rd relayed to Confab\\n\");\n\
         \trecord_route();\n\
         \troute(CONFAB_RELAY);\n\
         }}"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(fronts: &[&str]) -> KamailioBlock {
        KamailioBlock {
            legacy_pool: "kamailio".into(),
            db_url: "sqlite:///var/lib/kamailio/kamailio.db".into(),
            fronts: fronts.iter().filter_map(|f| Front::parse(f)).collect(),
        }
    }

    #[test]
    fn fronts_are_recognised_and_tried_in_order() {
        let text = kamailio(&block(&[
            "udp://192.0.2.10:5060",
            "tcp://[2001:db8::10]:5061",
            "ws://192.0.2.10:8080",
        ]))
        .expect("block");
        assert!(text.contains("($si == \"192.0.2.10\" && $sp == 5060 && $proto == \"udp\")"));
        assert!(text.contains("($si == \"2001:db8::10\" && $proto == \"tcp\")"));
        assert!(text.contains("$du = \"sip:192.0.2.10:5060;transport=udp\";"));
        assert!(text.contains(
            "if ($du == \"sip:192.0.2.10:5060;transport=udp\") {\n\t\t$du = \
             \"sip:[2001:db8::10]:5061;transport=tcp\";"
        ));
        assert!(
            !text.contains("8080"),
            "WebSocket listeners are not Kamailio's to reach"
        );
        assert!(text.contains("confab=>sqlite:///var/lib/kamailio/kamailio.db"));
        // Balanced braces: Kamailio refuses a configuration otherwise.
        let open = text.matches('{').count();
        assert_eq!(open, text.matches('}').count());
    }

    #[test]
    fn nothing_to_relay_to_or_an_unquotable_url_is_refused() {
        assert!(kamailio(&block(&[])).is_err());
        let mut b = block(&["udp://192.0.2.10:5060"]);
        b.db_url = "sqlite:///tmp/a\"b".into();
        assert!(kamailio(&b).is_err());
    }

    #[test]
    fn database_urls_in_kamailio_spelling() {
        assert_eq!(
            kamailio_db_url("/var/lib/k.db"),
            "sqlite:///var/lib/k.db".to_owned()
        );
        assert_eq!(
            kamailio_db_url("sqlite:///var/lib/k.db"),
            "sqlite:///var/lib/k.db".to_owned()
        );
        assert_eq!(
            kamailio_db_url("postgresql://k:pw@db/kamailio"),
            "postgres://k:pw@db/kamailio".to_owned()
        );
        assert!(kamailio_db_url("k.db").starts_with("sqlite:///"));
    }
}
