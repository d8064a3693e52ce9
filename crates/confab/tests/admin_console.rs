//! The web console of a running `confab serve`, over real HTTP and without JavaScript, as a
//! browser without scripts uses it: pages need a session (sign-in with a name and token,
//! a wrong token refused), every form needs the session's CSRF token, and through the forms
//! an operator moves users (a standard change at once; more than 100 as a normal change that
//! a second administrator approves in their own session and then implements), takes and
//! verifies a backup, and reads the dashboard, users, topology and its versions, changes,
//! backups and migration pages — each valid, labelled HTML with the figures in it.
#![cfg(unix)]

mod common;

use std::net::SocketAddr;

use common::store::{
    admin_token, assert_success, ensure_approver, run, with_data_dir, APPROVER_TOKEN,
};
use common::Running;

struct Browser {
    base: String,
    agent: ureq::Agent,
    cookie: Option<String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    html: String,
}

impl Browser {
    fn new(addr: SocketAddr) -> Browser {
        Browser {
            base: format!("http://{addr}"),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .into(),
            cookie: None,
        }
    }

    fn page(&self, mut r: ureq::http::Response<ureq::Body>) -> Page {
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Page {
            status: r.status().as_u16(),
            location,
            html: r.body_mut().read_to_string().expect("body"),
        }
    }

    fn get(&self, path: &str) -> Page {
        let mut req = self.agent.get(&format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", c);
        }
        self.page(req.call().expect("GET"))
    }

    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let mut req = self.agent.post(&format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", c);
        }
        let r = req.send_form(form.iter().copied()).expect("POST");
        if let Some(set) = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()) {
            self.cookie = set.split(';').next().map(str::to_owned);
        }
        self.page(r)
    }

    /// Follows a 303 to the page it names.
    fn follow(&self, p: &Page) -> Page {
        assert_eq!(p.status, 303, "{}", p.html);
        self.get(p.location.as_deref().expect("location"))
    }

    fn sign_in(&mut self, name: &str, token: &str) -> Page {
        let p = self.post("/console/signin", &[("name", name), ("token", token)]);
        self.follow(&p)
    }
}

/// The session's CSRF token, from any page's sign-out form.
fn csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..at + 64].to_owned()
}

/// Basic well-formedness a screen reader relies on.
fn accessible(p: &Page) {
    assert!(
        p.html.starts_with("<!DOCTYPE html><html lang=\"en\">"),
        "{}",
        p.html
    );
    assert!(p.html.contains("<main id=\"main\">"));
    assert!(p.html.contains("href=\"#main\""), "a skip link");
    assert!(p.html.contains("<h1>"));
    // Every input but hidden ones has a label.
    for (i, _) in p.html.match_indices("<input id=\"") {
        let id: String = p.html[i + 11..].chars().take_while(|c| *c != '"').collect();
        assert!(
            p.html.contains(&format!("<label for=\"{id}\"")),
            "input {id} has a label"
        );
    }
}

#[test]
fn an_operator_works_through_the_console_without_javascript() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    let data = server.data_dir();
    let addr = server.admin.expect("admin listener");
    let mut admin = Browser::new(addr);

    // No session: sent to sign in; a wrong token is refused.
    let p = admin.get("/console/users");
    assert_eq!(
        (p.status, p.location.as_deref()),
        (303, Some("/console/signin"))
    );
    let p = admin.sign_in("admin", "wrong");
    assert!(p.html.contains("Not signed in"), "{}", p.html);
    assert!(admin.cookie.is_none());
    let p = admin.sign_in("admin", &admin_token(&data));
    assert_eq!(p.status, 200);
    assert!(
        p.html.contains("Signed in as <strong>admin</strong>"),
        "{}",
        p.html
    );
    accessible(&p);
    let token = csrf(&p.html);

    // 120 users on pool default, and a second pool.
    let mut csv = String::from("address,password\n");
    for i in 1..=120 {
        csv.push_str(&format!("c{i}@localhost,console-user-password-{i}\n"));
    }
    let mut cmd = with_data_dir(&["user", "import", "-"], &data);
    cmd.stdin(std::process::Stdio::piped());
    assert_success(&run(cmd, Some(&csv)));
    let dir = data.parent().expect("parent");
    let first = format!(
        "domains = [\"localhost\"]\n\n[[pool]]\nname = \"default\"\nkind = \"front-end\"\n\
         servers = [\"udp://{}\"]\n",
        server.addr("udp")
    );
    let doc = format!(
        "{first}\n[[pool]]\nname = \"b\"\nkind = \"front-end\"\nservers = [\"udp://127.0.0.1:9\"]\n"
    );
    common::store::publish_approved(&data, &common::write(dir, "t1.toml", &first), &[]);
    common::store::publish_approved(
        &data,
        &common::write(dir, "t2.toml", &doc),
        &["--comment", "pool b"],
    );

    let dash = admin.get("/console");
    accessible(&dash);
    assert!(
        dash.html
            .contains("<desc id=\"bars-d\">b: 0, default: 120</desc>"),
        "{}",
        dash.html
    );

    // Search, and one user moved from its page.
    let found = admin.get("/console/users?q=c11&pool=default");
    accessible(&found);
    assert!(
        found.html.contains("11 user(s)"),
        "c11, c110…c119: {}",
        found.html
    );
    let shown = admin.get("/console/users/c7@localhost");
    accessible(&shown);
    // A form without the session's token is refused, and changes nothing.
    let forged = admin.post(
        "/console/moves",
        &[
            ("csrf", "0"),
            ("users", "c7@localhost"),
            ("to", "b"),
            ("reason", "x"),
        ],
    );
    assert_eq!(forged.status, 403, "{}", forged.html);
    let moved = admin.post(
        "/console/moves",
        &[
            ("csrf", &token),
            ("users", "c7@localhost"),
            ("to", "b"),
            ("reason", "pilot"),
        ],
    );
    let change = admin.follow(&moved);
    assert!(
        change.html.contains("1 user(s) moved to b"),
        "{}",
        change.html
    );
    assert!(change.html.contains("implemented"), "{}", change.html);

    // The rest of pool default: more than 100, so a normal change.
    let bulk = admin.post(
        "/console/moves",
        &[
            ("csrf", &token),
            ("from", "default"),
            ("filter", "c*@localhost"),
            ("to", "b"),
            ("reason", "production"),
        ],
    );
    let requested = admin.follow(&bulk);
    assert!(
        requested.html.contains("normal change"),
        "{}",
        requested.html
    );
    assert!(
        requested.html.contains("You requested this change"),
        "{}",
        requested.html
    );
    let id: String = bulk
        .location
        .as_deref()
        .and_then(|l| l.strip_prefix("/console/changes/"))
        .map(|l| l.chars().take_while(char::is_ascii_digit).collect())
        .expect("change page");
    // Its requester cannot approve it, even by posting the form.
    let own = admin.post(
        &format!("/console/changes/{id}/approve"),
        &[("csrf", &token)],
    );
    assert_eq!(own.status, 403, "{}", own.html);
    // The approver, in a session of its own, approves; then it is implemented.
    ensure_approver(&data);
    let mut approver = Browser::new(addr);
    let p = approver.sign_in("approver", APPROVER_TOKEN);
    let approver_token = csrf(&p.html);
    let waiting = approver.get("/console");
    assert!(
        waiting
            .html
            .contains(&format!("href=\"/console/changes/{id}\"")),
        "{}",
        waiting.html
    );
    let approved = approver.post(
        &format!("/console/changes/{id}/approve"),
        &[("csrf", &approver_token), ("comment", "fine")],
    );
    assert!(approver.follow(&approved).html.contains("is approved"));
    let done = admin.post(
        &format!("/console/changes/{id}/implement"),
        &[("csrf", &token)],
    );
    let done = admin.follow(&done);
    assert!(done.html.contains("is implemented"), "{}", done.html);
    let dash = admin.get("/console");
    assert!(
        dash.html
            .contains("<desc id=\"bars-d\">b: 120, default: 0</desc>"),
        "{}",
        dash.html
    );

    // Topology versions, changes, backups, migration.
    let topo = admin.get("/console/topology");
    accessible(&topo);
    let v = admin.get("/console/topology/2");
    assert!(v.html.contains("pool added: b"), "{}", v.html);
    let list = admin.get("/console/changes?state=implemented");
    accessible(&list);
    assert!(list.html.contains(&format!(">{id}</a>")));
    let taken = admin.post("/console/backups", &[("csrf", &token), ("verify", "yes")]);
    let backups = admin.follow(&taken);
    accessible(&backups);
    assert!(backups.html.contains("Verified."), "{}", backups.html);
    assert!(
        backups.html.contains("<span class=\"ok\">yes</span>"),
        "{}",
        backups.html
    );
    let migration = admin.get("/console/migration");
    accessible(&migration);
    // The moves are in the history the chart draws.
    assert!(
        migration.html.contains("Users per pool over time"),
        "{}",
        migration.html
    );
    assert!(migration.html.contains("<polyline"), "{}", migration.html);

    // Signing out ends the session.
    let out = admin.post("/console/signout", &[("csrf", &token)]);
    assert_eq!(out.status, 303);
    let after = admin.get("/console");
    assert_eq!(after.location.as_deref(), Some("/console/signin"));
}
