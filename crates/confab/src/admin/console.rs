//! The web console, `/console/…`, served by the admin listener and rendered on the server
//! (maud): HTML that reads and works without JavaScript, with forms for what an operator
//! changes. It calls the same `confab_ops` functions as the API and the CLI, so change
//! control is the same: the dashboard shows what waits for approval or review; users are
//! searched, shown and moved (more than 100 at once as a normal change); the topology's
//! published versions are listed with what each changed; changes are approved, rejected,
//! implemented, reviewed and rolled back; backups are taken, verified and listed; a migration
//! shows its phases with the evidence of their checks and a chart of users per pool over
//! time (inline SVG, with the figures as a table).
//!
//! Signing in takes an administrator's name and token; the session is a random identifier
//! in an `HttpOnly`, `SameSite=Strict` cookie, kept in memory for [`SESSION_TTL`], and every
//! form carries the session's own CSRF token. Each page is one GET; each form a POST that
//! redirects back with a notice (post/redirect/get).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use confab_ops::control::{self, Operator, Right};
use confab_ops::migration::{self, Phase};
use confab_ops::moves::{self, MoveRequest, Performed};
use confab_store::{Address, ChangeClass, ChangeFilter, ChangeRecord, ChangeState, Decision};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use super::{AdminState, ApiError};

type S = Arc<AdminState>;

/// How long a console session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

const COOKIE: &str = "confab_session";

/// A signed-in operator's session.
#[derive(Clone)]
pub struct Session {
    operator: Operator,
    csrf: String,
    expires: Instant,
}

/// The console's sessions.
#[derive(Default)]
pub struct Sessions(std::sync::Mutex<HashMap<String, Session>>);

impl Sessions {
    fn get(&self, id: &str) -> Option<Session> {
        let mut all = self.0.lock().ok()?;
        all.retain(|_, s| s.expires > Instant::now());
        all.get(id).cloned()
    }

    fn insert(&self, id: String, s: Session) {
        if let Ok(mut all) = self.0.lock() {
            all.insert(id, s);
        }
    }

    fn remove(&self, id: &str) {
        if let Ok(mut all) = self.0.lock() {
            all.remove(id);
        }
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// The session of a console request; without one, the request is sent to the sign-in page.
pub struct Signed(Session);

impl axum::extract::FromRequestParts<S> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match cookie(&parts.headers).and_then(|id| state.sessions.get(&id)) {
            Some(s) => Ok(Signed(s)),
            None => Err(Redirect::to("/console/signin").into_response()),
        }
    }
}

/// The console's routes.
pub fn router() -> axum::Router<S> {
    axum::Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console/style.css", get(style))
        .route("/console/signin", get(signin_page).post(signin))
        .route("/console/signout", post(signout))
        .route("/console", get(dashboard))
        .route("/console/users", get(users))
        .route("/console/users/{address}", get(user))
        .route("/console/moves", post(move_users))
        .route("/console/topology", get(topology))
        .route("/console/topology/{version}", get(topology_version))
        .route("/console/changes", get(changes))
        .route("/console/changes/{id}", get(change))
        .route("/console/changes/{id}/{action}", post(change_action))
        .route("/console/backups", get(backups).post(create_backup))
        .route("/console/backups/verify", post(verify_backup))
        .route("/console/migration", get(migrations))
        .route("/console/migration/{pool}/{action}", post(migration_action))
}

/// A failure as a page: what went wrong, with the way back.
struct PageError(ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<confab_ops::OpsError> for PageError {
    fn from(e: confab_ops::OpsError) -> Self {
        PageError(e.into())
    }
}

impl From<confab_store::StoreError> for PageError {
    fn from(e: confab_store::StoreError) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = layout(
            "Error",
            None,
            "",
            None,
            html! {
                h1 { "That did not work" }
                p role="alert" { (self.0.message) }
                p { a href="/console" { "Back to the dashboard" } }
            },
        );
        (self.0.status, body).into_response()
    }
}

type Page = Result<Markup, PageError>;

const NAV: [(&str, &str); 6] = [
    ("/console", "Dashboard"),
    ("/console/users", "Users"),
    ("/console/topology", "Topology"),
    ("/console/changes", "Changes"),
    ("/console/backups", "Backups"),
    ("/console/migration", "Migration"),
];

fn layout(
    title: &str,
    session: Option<&Session>,
    current: &str,
    notice: Option<&str>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — Confab console" }
                link rel="stylesheet" href="/console/style.css";
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header {
                    p class="brand" { "Confab" }
                    @if let Some(s) = session {
                        nav aria-label="Console" {
                            ul {
                                @for (href, label) in NAV {
                                    li {
                                        @if href == current {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        form class="signout" method="post" action="/console/signout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            span { "Signed in as " strong { (s.operator.name()) } " " }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    @if let Some(n) = notice {
                        p class="notice" role="status" { (n) }
                    }
                    (body)
                }
            }
        }
    }
}

#[derive(Deserialize, Default)]
struct Notice {
    notice: Option<String>,
}

fn when(at: i64) -> String {
    confab_ops::time::utc(at)
}

fn ago(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

fn back(to: &str, notice: &str) -> Response {
    let mut url = to.to_owned();
    url.push(if to.contains('?') { '&' } else { '?' });
    url.push_str("notice=");
    url.push_str(&encode(notice));
    Redirect::to(&url).into_response()
}

/// Percent-encodes `text` for a query string or a path segment.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn check_csrf(s: &Session, given: &str) -> Result<(), PageError> {
    use subtle::ConstantTimeEq as _;
    if bool::from(s.csrf.as_bytes().ct_eq(given.as_bytes())) {
        Ok(())
    } else {
        Err(PageError(ApiError::new(
            StatusCode::FORBIDDEN,
            "this form is not from your session (it expired, or another site sent it); \
             reload the page and try again",
        )))
    }
}

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("console.css"),
    )
}

// ---- sign-in ----

async fn signin_page(Query(n): Query<Notice>) -> Markup {
    layout(
        "Sign in",
        None,
        "",
        n.notice.as_deref(),
        html! {
            h1 { "Sign in" }
            p { "Use an administrator's name and token: those of " code { "admin.credentials" }
                " in the data directory, or of " code { "confab admin add" } "." }
            form method="post" action="/console/signin" class="stack" {
                label for="name" { "Administrator" }
                input id="name" name="name" type="text" autocomplete="username" required;
                label for="token" { "Token" }
                input id="token" name="token" type="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

#[derive(Deserialize)]
struct SigninForm {
    name: String,
    token: String,
}

async fn signin(
    State(s): State<S>,
    super::Peer(from): super::Peer,
    Form(f): Form<SigninForm>,
) -> Response {
    let operator = match s.sign_in_from(&f.name, &f.token, "console", from).await {
        Ok(op) => op,
        Err(e) => {
            let status = e.status;
            if status == StatusCode::TOO_MANY_REQUESTS {
                return back("/console/signin", &e.message);
            }
            let mut r = back(
                "/console/signin",
                "Not signed in: unknown administrator, wrong token, or disabled.",
            );
            if status == StatusCode::SERVICE_UNAVAILABLE {
                r = back(
                    "/console/signin",
                    "The management store is unavailable; try again.",
                );
            }
            return r;
        }
    };
    let (Ok(id), Ok(csrf)) = (control::new_token(), control::new_token()) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no randomness").into_response();
    };
    s.sessions.insert(
        id.clone(),
        Session {
            operator,
            csrf,
            expires: Instant::now() + SESSION_TTL,
        },
    );
    let mut r = Redirect::to("/console").into_response();
    if let Ok(v) = header::HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn signout(State(s): State<S>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    if let Some(id) = cookie(&headers) {
        if let Some(session) = s.sessions.get(&id) {
            if check_csrf(&session, &f.csrf).is_ok() {
                s.sessions.remove(&id);
            }
        }
    }
    let mut r = back("/console/signin", "Signed out.");
    r.headers_mut().insert(
        header::SET_COOKIE,
        header::HeaderValue::from_static(
            "confab_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    r
}

// ---- dashboard ----

fn change_link(c: &ChangeRecord) -> Markup {
    html! { a href=(format!("/console/changes/{}", c.id)) { "#" (c.id) } " " (c.title) }
}

async fn dashboard(State(s): State<S>, Signed(session): Signed, Query(n): Query<Notice>) -> Page {
    session
        .operator
        .check(Right::View)
        .map_err(ApiError::from)?;
    let status = confab_ops::status::deployment(&s.store, false).await?;
    let pools = confab_ops::topology::pools(&s.store).await?;
    let overdue: Vec<i64> = status.overdue_reviews().iter().map(|c| c.id).collect();
    let max = pools.iter().map(|p| p.users).max().unwrap_or(0).max(1);
    Ok(layout(
        "Dashboard",
        Some(&session),
        "/console",
        n.notice.as_deref(),
        html! {
            h1 { "Dashboard" }
            section aria-labelledby="pools-h" {
                h2 id="pools-h" { "Pools" }
                (bar_chart("Users per pool", pools.iter().map(|p| (p.name.as_str(), p.users)).collect(), max))
                table {
                    caption { "Pools, their users and registrations, and their front-ends" }
                    thead { tr { th scope="col" { "Pool" } th scope="col" { "Kind" } th scope="col" { "Users" } th scope="col" { "Registrations" } th scope="col" { "Front-ends" } } }
                    tbody {
                        @for p in &pools {
                            tr {
                                th scope="row" { a href=(format!("/console/users?pool={}", encode(&p.name))) { (p.name) } }
                                td { (p.kind) }
                                td class="num" { (p.users) }
                                td class="num" { (p.registrations) }
                                td {
                                    @if p.members.is_empty() {
                                        @if p.kind == "legacy" { "next hop " (p.next_hop.clone().unwrap_or_default()) } @else { span class="warn" { "none running" } }
                                    }
                                    ul class="plain" {
                                        @for m in &p.members {
                                            li {
                                                @if m.up { span class="ok" { "up" } } @else { span class="bad" { "down" } }
                                                " " (m.address) " (heartbeat " (m.heartbeat_age_ms / 1000) " s ago)"
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="changes-h" {
                h2 id="changes-h" { "Changes" }
                h3 { "Normal changes awaiting approval (" (status.awaiting_approval.len()) ")" }
                @if status.awaiting_approval.is_empty() { p { "None." } } @else {
                    ul { @for c in &status.awaiting_approval { li { (change_link(c)) " — requested by " (c.requested_by) } } }
                }
                h3 { "Approved, not implemented (" (status.approved.len()) ")" }
                @if status.approved.is_empty() { p { "None." } } @else {
                    ul { @for c in &status.approved { li { (change_link(c)) } } }
                }
                h3 { "Emergency changes awaiting review (" (status.awaiting_review.len()) ")" }
                @if status.awaiting_review.is_empty() { p { "None." } } @else {
                    ul {
                        @for c in &status.awaiting_review {
                            li {
                                (change_link(c))
                                @if overdue.contains(&c.id) { " " strong class="bad" { "review overdue" } }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="backup-h" {
                h2 id="backup-h" { "Backups" }
                @match &status.last_verified_backup {
                    Some(b) => p { "Last verified backup: " code { (b.path) } ", taken " (when(b.created_at)) " (" (ago(status.at - b.created_at)) "), " (b.users) " users." },
                    None => p class="warn" { "No verified backup. " a href="/console/backups" { "Take one" } "." },
                }
            }
            @if !status.maintenance.is_empty() {
                section aria-labelledby="maint-h" {
                    h2 id="maint-h" { "Pools in maintenance" }
                    ul { @for m in &status.maintenance { li { (m.pool) " since " (when(m.since)) ", served by " (m.served_by.clone().unwrap_or_else(|| "nobody".into())) ": " (m.reason) } } }
                }
            }
            @if !status.migrations.is_empty() {
                section aria-labelledby="mig-h" {
                    h2 id="mig-h" { "Migrations" }
                    ul { @for m in &status.migrations { li { a href="/console/migration" { "Legacy pool " (m.legacy_pool) } ": phase " (m.phase) } } }
                }
            }
        },
    ))
}

/// A horizontal bar chart (inline SVG) with its figures as text for screen readers.
fn bar_chart(title: &str, bars: Vec<(&str, i64)>, max: i64) -> Markup {
    const W: i64 = 520;
    const ROW: i64 = 26;
    let height = ROW * i64::try_from(bars.len()).unwrap_or(0) + 10;
    let desc = bars
        .iter()
        .map(|(n, v)| format!("{n}: {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        figure {
            svg role="img" aria-labelledby="bars-t bars-d" width=(W) height=(height) viewBox=(format!("0 0 {W} {height}")) {
                title id="bars-t" { (title) }
                desc id="bars-d" { (desc) }
                @for (i, (name, value)) in bars.iter().enumerate() {
                    @let y = i64::try_from(i).unwrap_or(0) * ROW + 5;
                    @let w = (value * 300) / max;
                    text x="0" y=(y + 17) class="label" { (name) }
                    rect x="150" y=(y + 3) width=(w.max(1)) height=(ROW - 8) class=(format!("bar c{}", i % 6)) {}
                    text x=(155 + w) y=(y + 17) class="value" { (value) }
                }
            }
            figcaption { (title) }
        }
    }
}

/// A line chart of users per pool over time (inline SVG): one line per pool, each with its
/// own colour and dash pattern, a legend, and the figures as a table below.
fn usage_chart(samples: &[confab_store::UsageSample], until: i64) -> Markup {
    const W: f64 = 640.0;
    const H: f64 = 240.0;
    const LEFT: f64 = 56.0;
    const BOTTOM: f64 = 28.0;
    let mut pools: Vec<&str> = samples.iter().map(|s| s.pool.as_str()).collect();
    pools.sort_unstable();
    pools.dedup();
    let start = samples.iter().map(|s| s.at).min().unwrap_or(until);
    let span = (until - start).max(1) as f64;
    let top = samples.iter().map(|s| s.users).max().unwrap_or(0).max(1) as f64;
    let x = |at: i64| LEFT + (at - start) as f64 / span * (W - LEFT - 10.0);
    let y = |users: i64| (H - BOTTOM) - users as f64 / top * (H - BOTTOM - 10.0);
    let lines: Vec<(&str, String)> = pools
        .iter()
        .map(|pool| {
            // A step line: a count holds until the next sample.
            let mut points = String::new();
            let mut last: Option<i64> = None;
            for s in samples.iter().filter(|s| s.pool == *pool) {
                if let Some(prev) = last {
                    points.push_str(&format!("{:.1},{:.1} ", x(s.at), y(prev)));
                }
                points.push_str(&format!("{:.1},{:.1} ", x(s.at), y(s.users)));
                last = Some(s.users);
            }
            if let Some(prev) = last {
                points.push_str(&format!("{:.1},{:.1}", x(until), y(prev)));
            }
            (*pool, points)
        })
        .collect();
    let desc = pools
        .iter()
        .map(|p| {
            let now = samples
                .iter()
                .rfind(|s| s.pool == *p)
                .map_or(0, |s| s.users);
            format!("{p}: {now} users now")
        })
        .collect::<Vec<_>>()
        .join("; ");
    html! {
        figure {
            svg role="img" aria-labelledby="usage-t usage-d" width=(W) height=(H) viewBox=(format!("0 0 {W} {H}")) {
                title id="usage-t" { "Users per pool over time" }
                desc id="usage-d" { (desc) }
                line x1=(LEFT) y1=(H - BOTTOM) x2=(W - 10.0) y2=(H - BOTTOM) class="axis" {}
                line x1=(LEFT) y1="10" x2=(LEFT) y2=(H - BOTTOM) class="axis" {}
                text x=(LEFT - 6.0) y="16" class="tick" text-anchor="end" { (top as i64) }
                text x=(LEFT - 6.0) y=(H - BOTTOM) class="tick" text-anchor="end" { "0" }
                text x=(LEFT) y=(H - 8.0) class="tick" { (when(start)) }
                text x=(W - 10.0) y=(H - 8.0) class="tick" text-anchor="end" { (when(until)) }
                @for (i, (_, points)) in lines.iter().enumerate() {
                    polyline points=(points) class=(format!("line c{} d{}", i % 6, i % 3)) {}
                }
            }
            figcaption {
                "Users per pool over time. "
                @for (i, (pool, _)) in lines.iter().enumerate() {
                    span class=(format!("key c{} d{}", i % 6, i % 3)) { (pool) } " "
                }
            }
            details {
                summary { "The figures" }
                table {
                    caption { "Samples of users per pool (a sample when a count changed)" }
                    thead { tr { th scope="col" { "When" } th scope="col" { "Pool" } th scope="col" { "Users" } } }
                    tbody { @for s in samples { tr { td { (when(s.at)) } td { (s.pool) } td class="num" { (s.users) } } } }
                }
            }
        }
    }
}

// ---- users ----

#[derive(Deserialize, Default)]
struct UsersQuery {
    q: Option<String>,
    pool: Option<String>,
    notice: Option<String>,
}

async fn users(State(s): State<S>, Signed(session): Signed, Query(q): Query<UsersQuery>) -> Page {
    session
        .operator
        .check(Right::View)
        .map_err(ApiError::from)?;
    let pools = s.store.pools().await?;
    let pool = q.pool.clone().filter(|p| !p.is_empty());
    let all = confab_ops::users::list(
        &s.store,
        &confab_store::UserFilter {
            pool: pool.clone(),
            domain: None,
        },
    )
    .await?;
    let needle = q.q.clone().unwrap_or_default();
    let pattern = if needle.contains('*') || needle.contains('?') {
        needle.clone()
    } else {
        format!("*{needle}*")
    };
    let found: Vec<_> = all
        .iter()
        .filter(|u| needle.is_empty() || moves::matches(&pattern, &u.address.to_string()))
        .collect();
    const SHOWN: usize = 200;
    Ok(layout(
        "Users",
        Some(&session),
        "/console/users",
        q.notice.as_deref(),
        html! {
            h1 { "Users" }
            form method="get" action="/console/users" class="row" role="search" {
                label for="q" { "Address contains (or a pattern with * and ?)" }
                input id="q" name="q" type="search" value=(needle);
                label for="pool" { "Pool" }
                select id="pool" name="pool" {
                    option value="" { "any" }
                    @for p in &pools {
                        option value=(p.name) selected[pool.as_deref() == Some(p.name.as_str())] { (p.name) }
                    }
                }
                button type="submit" { "Search" }
            }
            p { (found.len()) " user(s)" @if found.len() > SHOWN { ", the first " (SHOWN) " shown" } "." }
            table {
                caption { "Users found" }
                thead { tr { th scope="col" { "Address" } th scope="col" { "Pool" } th scope="col" { "Enabled" } th scope="col" { "Display name" } } }
                tbody {
                    @for u in found.iter().take(SHOWN) {
                        tr {
                            th scope="row" { a href=(format!("/console/users/{}", encode(&u.address.to_string()))) { (u.address) } }
                            td { (u.pool) }
                            td { @if u.enabled { "yes" } @else { span class="warn" { "disabled" } } }
                            td { (u.display_name.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
            @if !found.is_empty() {
                section aria-labelledby="move-h" {
                    h2 id="move-h" { "Move these users" }
                    p { "Moves the " (found.len()) " user(s) found to another pool. Up to "
                        (control::STANDARD_MOVE_LIMIT) " move at once (a standard change); more are requested as a normal change that another administrator approves." }
                    form method="post" action="/console/moves" class="stack" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        input type="hidden" name="from" value=(pool.clone().unwrap_or_default());
                        input type="hidden" name="filter" value=(if needle.is_empty() { String::new() } else { pattern.clone() });
                        @if pool.is_none() {
                            p class="warn" { "Choose a pool above first: a move takes the users of one pool." }
                        }
                        label for="to" { "To pool" }
                        select id="to" name="to" required {
                            @for p in pools.iter().filter(|p| Some(&p.name) != pool.as_ref()) {
                                option value=(p.name) { (p.name) }
                            }
                        }
                        label for="reason" { "Reason (for the change record)" }
                        input id="reason" name="reason" type="text" required;
                        button type="submit" disabled[pool.is_none()] { "Move" }
                    }
                }
            }
        },
    ))
}

async fn user(
    State(s): State<S>,
    Signed(session): Signed,
    Path(a): Path<String>,
    Query(n): Query<Notice>,
) -> Page {
    session
        .operator
        .check(Right::View)
        .map_err(ApiError::from)?;
    let address = Address::parse(&a).map_err(|e| ApiError::invalid(e.to_string()))?;
    let d = confab_ops::users::show(&s.store, &address).await?;
    let pools = s.store.pools().await?;
    Ok(layout(
        &a,
        Some(&session),
        "/console/users",
        n.notice.as_deref(),
        html! {
            h1 { (a) }
            dl {
                dt { "Pool" } dd { (d.user.pool) }
                dt { "Enabled" } dd { @if d.user.enabled { "yes" } @else { "no" } }
                dt { "Display name" } dd { (d.user.display_name.clone().unwrap_or_default()) }
                dt { "Registrations" } dd { (d.registrations) }
                dt { "Credentials" } dd { @for c in &d.credentials { (c.algorithm) " (realm " (c.realm) ") " } }
                dt { "Created" } dd { (when(d.user.created_at)) }
            }
            h2 { "Move" }
            form method="post" action="/console/moves" class="stack" {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="users" value=(a);
                label for="to" { "To pool" }
                select id="to" name="to" required {
                    @for p in pools.iter().filter(|p| p.name != d.user.pool) {
                        option value=(p.name) { (p.name) }
                    }
                }
                label for="reason" { "Reason" }
                input id="reason" name="reason" type="text" required;
                button type="submit" { "Move" }
            }
        },
    ))
}

#[derive(Deserialize)]
struct MoveForm {
    csrf: String,
    #[serde(default)]
    users: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    filter: String,
    to: String,
    reason: String,
}

async fn move_users(
    State(s): State<S>,
    Signed(session): Signed,
    Form(f): Form<MoveForm>,
) -> Result<Response, PageError> {
    check_csrf(&session, &f.csrf)?;
    let users = f
        .users
        .split_whitespace()
        .map(|u| Address::parse(u).map_err(|e| ApiError::invalid(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let non_empty = |t: &str| (!t.is_empty()).then(|| t.to_owned());
    let planned = moves::plan(
        &s.store,
        &MoveRequest {
            users,
            from: non_empty(&f.from),
            domain: None,
            filter: non_empty(&f.filter),
            to: f.to.clone(),
        },
    )
    .await?;
    let performed = moves::perform(
        &s.store,
        &session.operator,
        &planned,
        moves::Order {
            to: &f.to,
            batch: moves::DEFAULT_BATCH,
            reason: &f.reason,
            again: "the same move again",
        },
        &mut |_| {},
    )
    .await?;
    Ok(match performed {
        Performed::Nothing => back("/console/users", "Nobody to move: every user selected is on that pool already."),
        Performed::Moved { change, users } => back(
            &format!("/console/changes/{change}"),
            &format!("{} user(s) moved to {} (change {change}).", users.len(), f.to),
        ),
        Performed::Requested { change, users } => back(
            &format!("/console/changes/{}", change.id),
            &format!(
                "A move of {users} users is a normal change: change {} is requested; another administrator approves it, then it is implemented.",
                change.id
            ),
        ),
    })
}

// ---- topology ----

async fn topology(State(s): State<S>, Signed(session): Signed, Query(n): Query<Notice>) -> Page {
    session
        .operator
        .check(Right::View)
        .map_err(ApiError::from)?;
    let view = confab_ops::topology::show(&s.store).await?;
    let latest = s.store.topology_version().await?;
    let mut versions = Vec::new();
    if let Some(latest) = &latest {
        for v in (1..=latest.version).rev() {
            if let Some(v) = s.store.topology_version_number(v).await? {
                versions.push(v);
            }
        }
    }
    Ok(layout(
        "Topology",
        Some(&session),
        "/console/topology",
        n.notice.as_deref(),
        html! {
            h1 { "Topology" }
            p { "Domains: " (view.domains.join(", ")) }
            table {
                caption { "Pools" }
                thead { tr { th scope="col" { "Pool" } th scope="col" { "Kind" } th scope="col" { "Site" } th scope="col" { "Servers or next hop" } th scope="col" { "Pair" } } }
                tbody {
                    @for p in &view.pools {
                        tr {
                            th scope="row" { (p.name) }
                            td { (p.kind) }
                            td { (p.site.clone().unwrap_or_default()) }
                            td { (if p.servers.is_empty() { p.next_hop.clone().unwrap_or_default() } else { p.servers.join(", ") }) }
                            td { (p.pair.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
            h2 { "Published versions" }
            @if versions.is_empty() { p { "None published yet." } }
            ol reversed {
                @for v in &versions {
                    li {
                        a href=(format!("/console/topology/{}", v.version)) { "Version " (v.version) }
                        " — " (when(v.published_at)) " by " (v.published_by)
                        @if let Some(c) = &v.comment { ": " (c) }
                    }
                }
            }
        },
    ))
}

async fn topology_version(State(s): State<S>, Signed(session): Signed, Path(n): Path<i64>) -> Page {
    session
        .operator
        .check(Right::View)
        .map_err(ApiError::from)?;
    let Some(v) = s.store.topology_version_number(n).await? else {
        return Err(PageError(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no topology version {n}"),
        )));
    };
    let diff = confab_ops::topology::version_diff(&s.store, n).await?;
    Ok(layout(
        &format!("Topology version {n}"),
        Some(&session),
        "/console/topology",
        None,
        html! {
            h1 { "Topology version " (n) }
            p { "Published " (when(v.published_at)) " by " (v.published_by) @if let Some(c) = &v.comment { ": " (c) } }
            h2 { "What it changed" }
            @match &diff {
                None => p { @if n == 1 { "The first version." } @else { "The versions cannot be compared." } },
                Some(d) if d.is_empty() => p { "Nothing: the same topology as version " (n - 1) "." },
                Some(d) => ul {
                    @for x in &d.domains_added { li { "domain added: " (x) } }
                    @for x in &d.domains_removed { li { "domain removed: " (x) } }
                    @for x in &d.sites_added { li { "site added: " (x) } }
                    @for x in &d.sites_removed { li { "site removed: " (x) } }
                    @for x in &d.pools_added { li { "pool added: " (x) } }
                    @for x in &d.pools_removed { li { "pool removed: " (x) } }
                    @for c in &d.changed { li { (c.what) " " (c.name) ": " (c.field) " from “" (c.before) "” to “" (c.after) "”" } }
                },
            }
            h2 { "The document" }
            pre { code { (v.document) } }
            p { a href="/console/topology" { "All versions" } }
        },
    ))
}

// ---- changes ----

#[derive(Deserialize, Default)]
struct ChangesQuery {
    state: Option<String>,
    notice: Option<String>,
}

async fn changes(
    State(s): State<S>,
    Signed(session): Signed,
    Query(q): Query<ChangesQuery>,
) -> Page {
    session
        .operator
        .check(Right::View)
        .map_err(ApiError::from)?;
    let state = q
        .state
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(str::parse::<ChangeState>)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let list = s
        .store
        .changes(&ChangeFilter { state, class: None })
        .await?;
    const STATES: [&str; 6] = [
        "requested",
        "approved",
        "implemented",
        "reviewed",
        "rejected",
        "rolled-back",
    ];
    Ok(layout(
        "Changes",
        Some(&session),
        "/console/changes",
        q.notice.as_deref(),
        html! {
            h1 { "Changes" }
            nav aria-label="By state" {
                ul class="inline" {
                    li { a href="/console/changes" aria-current=[state.is_none().then_some("page")] { "all" } }
                    @for st in STATES {
                        li { a href=(format!("/console/changes?state={st}")) aria-current=[(q.state.as_deref() == Some(st)).then_some("page")] { (st) } }
                    }
                }
            }
            table {
                caption { "Change records, newest first" }
                thead { tr { th scope="col" { "#" } th scope="col" { "Class" } th scope="col" { "State" } th scope="col" { "Title" } th scope="col" { "Requested" } } }
                tbody {
                    @for c in &list {
                        tr {
                            th scope="row" { a href=(format!("/console/changes/{}", c.id)) { (c.id) } }
                            td { (c.class.as_str()) }
                            td { (c.state.as_str()) }
                            td { (c.title) }
                            td { (when(c.requested_at)) " by " (c.requested_by) }
                        }
                    }
                }
            }
        },
    ))
}

async fn change(
    State(s): State<S>,
    Signed(session): Signed,
    Path(id): Path<i64>,
    Query(n): Query<Notice>,
) -> Page {
    session
        .operator
        .check(Right::View)
        .map_err(ApiError::from)?;
    let Some(c) = s.store.change(id).await? else {
        return Err(PageError(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no change {id}"),
        )));
    };
    let me = session.operator.name();
    let awaiting = c.state == ChangeState::Requested && c.class == ChangeClass::Normal;
    let review = c.state == ChangeState::Implemented && c.class == ChangeClass::Emergency;
    let done = matches!(c.state, ChangeState::Implemented | ChangeState::Reviewed);
    let form = |action: &str, label: &str, field: Option<(&str, &str, bool)>| {
        html! {
            form method="post" action=(format!("/console/changes/{id}/{action}")) class="stack" {
                input type="hidden" name="csrf" value=(session.csrf);
                @if let Some((name, text, required)) = field {
                    label for=(format!("{action}-{name}")) { (text) }
                    input id=(format!("{action}-{name}")) name=(name) type="text" required[required];
                }
                button type="submit" { (label) }
            }
        }
    };
    Ok(layout(
        &format!("Change {id}"),
        Some(&session),
        "/console/changes",
        n.notice.as_deref(),
        html! {
            h1 { "Change " (id) ": " (c.title) }
            dl {
                dt { "Class" } dd { (c.class.as_str()) }
                dt { "State" } dd { strong { (c.state.as_str()) } }
                dt { "Reason" } dd { (c.reason) }
                @if let Some(i) = &c.impact { dt { "Impact" } dd { (i) } }
                dt { "Requested" } dd { (when(c.requested_at)) " by " (c.requested_by) }
                @if let Some(at) = c.implemented_at { dt { "Implemented" } dd { (when(at)) " by " (c.implemented_by.clone().unwrap_or_default()) } }
                @if let Some(due) = c.review_due { dt { "Review due" } dd { (when(due)) } }
                @if let Some(at) = c.reviewed_at { dt { "Reviewed" } dd { (when(at)) " by " (c.reviewed_by.clone().unwrap_or_default()) ": " (c.review_comment.clone().unwrap_or_default()) } }
                @if let Some(r) = c.rolls_back { dt { "Rolls back" } dd { a href=(format!("/console/changes/{r}")) { "change " (r) } } }
                @if let Some(r) = c.rolled_back_by { dt { "Rolled back by" } dd { a href=(format!("/console/changes/{r}")) { "change " (r) } } }
                @if let Some(snap) = &c.snapshot { dt { "Snapshot before it" } dd { code { (snap) } } }
            }
            @if !c.approvals.is_empty() {
                h2 { "Decisions" }
                ul { @for a in &c.approvals { li { (a.approver) ": " (a.decision.as_str()) " " (when(a.at)) @if let Some(cm) = &a.comment { " — " (cm) } } } }
            }
            details {
                summary { "What it does" }
                pre { code { (pretty(&c.operation)) } }
                @if let Some(b) = &c.before { h3 { "Before" } pre { code { (pretty(b)) } } }
                @if let Some(a) = &c.after { h3 { "After" } pre { code { (pretty(a)) } } }
            }
            h2 { "Actions" }
            @if awaiting {
                @if c.requested_by == me {
                    p { "You requested this change: another administrator with the approver role decides it." }
                } @else {
                    (form("approve", "Approve", Some(("comment", "Comment (optional)", false))))
                    (form("reject", "Reject", Some(("comment", "Why (optional)", false))))
                }
            }
            @if c.state == ChangeState::Approved { (form("implement", "Implement", None)) }
            @if review { (form("review", "Record the review", Some(("comment", "Review", true)))) }
            @if done && c.rolled_back_by.is_none() { (form("rollback", "Request its rollback", Some(("reason", "Why", true)))) }
            @if !(awaiting || review || done || c.state == ChangeState::Approved) { p { "None: the change is " (c.state.as_str()) "." } }
        },
    ))
}

fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| json.to_owned())
}

#[derive(Deserialize)]
struct ActionForm {
    csrf: String,
    comment: Option<String>,
    reason: Option<String>,
}

async fn change_action(
    State(s): State<S>,
    Signed(session): Signed,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<ActionForm>,
) -> Result<Response, PageError> {
    check_csrf(&session, &f.csrf)?;
    let op = &session.operator;
    let comment = f.comment.as_deref().filter(|c| !c.trim().is_empty());
    let page = format!("/console/changes/{id}");
    let notice = match action.as_str() {
        "approve" | "reject" => {
            let decision = if action == "approve" {
                Decision::Approve
            } else {
                Decision::Reject
            };
            let c = control::decide(&s.store, op, id, decision, comment).await?;
            format!("Change {id} is {}.", c.state.as_str())
        }
        "implement" => {
            let (c, _) = control::implement(&s.store, op, id).await?;
            format!("Change {id} is {}.", c.state.as_str())
        }
        "review" => {
            let text = comment.ok_or_else(|| ApiError::invalid("a review needs a comment"))?;
            control::review(&s.store, op, id, text).await?;
            format!("Change {id} is reviewed.")
        }
        "rollback" => {
            let reason = f
                .reason
                .as_deref()
                .filter(|r| !r.trim().is_empty())
                .ok_or_else(|| ApiError::invalid("a rollback needs a reason"))?;
            let c = control::request_rollback(&s.store, op, id, reason).await?;
            return Ok(back(
                &format!("/console/changes/{}", c.id),
                &format!("Rollback of change {id} requested as change {}.", c.id),
            ));
        }
        other => {
            return Err(PageError(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no action {other}"),
            )))
        }
    };
    Ok(back(&page, &notice))
}

// ---- backups ----

async fn backups(State(s): State<S>, Signed(session): Signed, Query(n): Query<Notice>) -> Page {
    session
        .operator
        .check(Right::View)
        .map_err(ApiError::from)?;
    let list = confab_ops::backup::list(&s.store).await?;
    Ok(layout(
        "Backups",
        Some(&session),
        "/console/backups",
        n.notice.as_deref(),
        html! {
            h1 { "Backups" }
            form method="post" action="/console/backups" class="row" {
                input type="hidden" name="csrf" value=(session.csrf);
                input id="verify" type="checkbox" name="verify" value="yes" checked;
                label for="verify" { "verify it (restore into a scratch store and compare)" }
                button type="submit" { "Take a backup now" }
            }
            table {
                caption { "Backups the deployment knows, newest first" }
                thead { tr { th scope="col" { "File" } th scope="col" { "Taken" } th scope="col" { "Users" } th scope="col" { "Size" } th scope="col" { "Verified" } th scope="col" { span class="sr" { "Action" } } } }
                tbody {
                    @for b in &list {
                        tr {
                            th scope="row" { code { (b.path) } }
                            td { (when(b.created_at)) " by " (b.created_by) }
                            td class="num" { (b.users) }
                            td class="num" { (b.bytes / 1024) " KiB" }
                            td {
                                @match b.verified_ok {
                                    Some(true) => span class="ok" { "yes" },
                                    Some(false) => span class="bad" { "FAILED" },
                                    None => span class="warn" { "not yet" },
                                }
                                @if let Some(at) = b.verified_at { " " (when(at)) }
                            }
                            td {
                                form method="post" action="/console/backups/verify" {
                                    input type="hidden" name="csrf" value=(session.csrf);
                                    input type="hidden" name="path" value=(b.path);
                                    button type="submit" { "Verify" }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
struct BackupForm {
    csrf: String,
    verify: Option<String>,
}

async fn create_backup(
    State(s): State<S>,
    Signed(session): Signed,
    Form(f): Form<BackupForm>,
) -> Result<Response, PageError> {
    check_csrf(&session, &f.csrf)?;
    let ctx = control::authorize(&session.operator, Right::Backup, ChangeClass::Standard)?;
    let out = crate::backup::default_archive_in(&s.data_dir.join("backups"));
    let created = confab_ops::backup::create(
        &s.store,
        confab_ops::backup::TakenBy::Operator(&ctx),
        &out,
        &mut |_| {},
    )
    .await?;
    let mut notice = format!(
        "Backup written to {} ({} users).",
        created.path.display(),
        created.manifest.users
    );
    if f.verify.is_some() {
        match confab_ops::backup::verify(&created.path, Some(&s.store)).await {
            Ok(_) => notice.push_str(" Verified."),
            Err(e) => notice.push_str(&format!(" It does NOT verify: {e}")),
        }
    }
    Ok(back("/console/backups", &notice))
}

#[derive(Deserialize)]
struct VerifyForm {
    csrf: String,
    path: String,
}

async fn verify_backup(
    State(s): State<S>,
    Signed(session): Signed,
    Form(f): Form<VerifyForm>,
) -> Result<Response, PageError> {
    check_csrf(&session, &f.csrf)?;
    session
        .operator
        .check(Right::Backup)
        .map_err(ApiError::from)?;
    let notice =
        match confab_ops::backup::verify(std::path::Path::new(&f.path), Some(&s.store)).await {
            Ok(v) => format!(
                "{} verifies: {} users restored and compared.",
                f.path, v.manifest.users
            ),
            Err(e) => format!("{} does NOT verify: {e}", f.path),
        };
    Ok(back("/console/backups", &notice))
}

// ---- migration ----

async fn migrations(State(s): State<S>, Signed(session): Signed, Query(n): Query<Notice>) -> Page {
    session
        .operator
        .check(Right::View)
        .map_err(ApiError::from)?;
    let all = migration::all(&s.store).await?;
    let now = confab_ops::time::now();
    let since = all
        .iter()
        .map(|m| m.created_at)
        .min()
        .unwrap_or(now - 7 * 86_400);
    let samples = s.store.pool_usage_history(since).await?;
    Ok(layout(
        "Migration",
        Some(&session),
        "/console/migration",
        n.notice.as_deref(),
        html! {
            h1 { "Migration" }
            @if all.is_empty() {
                p { "No migration planned. Plan one with " code { "confab migrate plan kamailio" } " (see docs/migration.md)." }
            }
            @if !samples.is_empty() { (usage_chart(&samples, now)) }
            @for m in &all {
                section aria-labelledby=(format!("m-{}", m.plan.legacy_pool)) {
                    h2 id=(format!("m-{}", m.plan.legacy_pool)) { "Legacy pool " (m.plan.legacy_pool) " (" (m.plan.system) ")" }
                    p { "Phase " strong { (m.phase.as_str()) } ": " (m.phase.title()) ". Pilot pool " (m.plan.pilot_pool) "; production " (m.plan.production_pools.join(", ")) "." }
                    @if m.phase != Phase::Complete {
                        p { "To do: " (m.phase.todo()) }
                        div class="row" {
                            form method="post" action=(format!("/console/migration/{}/verify", encode(&m.plan.legacy_pool))) {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button type="submit" { "Run the checks" }
                            }
                            form method="post" action=(format!("/console/migration/{}/advance", encode(&m.plan.legacy_pool))) {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button type="submit" { "Advance" }
                            }
                        }
                    }
                    ol class="phases" {
                        @for p in Phase::ALL.iter().filter(|p| **p != Phase::Complete) {
                            @let state = m.state_of(*p);
                            li class=(state) aria-current=[(state == "current").then_some("step")] {
                                span class="phase" { (p.title()) } " " span class=(format!("badge {state}")) { (state) }
                                @let run = match state { "done" => m.passed(*p), "current" => m.record.last_check.as_ref().filter(|r| r.phase == *p), _ => None };
                                @if let Some(run) = run {
                                    table class="checks" {
                                        caption { @if state == "done" { "Passed " } @else { "Last checked " } (when(run.at)) " by " (run.by) }
                                        thead { tr { th scope="col" { "Check" } th scope="col" { "Result" } th scope="col" { "Evidence" } } }
                                        tbody {
                                            @for c in &run.checks {
                                                tr {
                                                    th scope="row" { (c.name) }
                                                    td { @if c.passed { span class="ok" { "passed" } } @else { span class="bad" { "FAILED" } } " (" (c.ms) " ms)" }
                                                    td { (c.evidence) }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if !m.record.events.is_empty() {
                        h3 { "Events" }
                        ul { @for e in &m.record.events { li { (when(e.at)) " " (e.by) " (" (e.phase.as_str()) "): " (e.what) } } }
                    }
                }
            }
        },
    ))
}

async fn migration_action(
    State(s): State<S>,
    Signed(session): Signed,
    Path((pool, action)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    check_csrf(&session, &f.csrf)?;
    let m = migration::load(&s.store, Some(&pool)).await?;
    let accounts = crate::migrate::accounts_in(&s.data_dir, &m);
    let notice = match action.as_str() {
        "verify" => {
            let (_, run) = migration::verify(&s.store, &session.operator, m, &accounts).await?;
            if run.passed() {
                "Every check of the phase passes.".to_owned()
            } else {
                "A check of the phase fails; see its evidence.".to_owned()
            }
        }
        "advance" => {
            let ctx = control::authorize(
                &session.operator,
                Right::ManageTopology,
                ChangeClass::Standard,
            )?;
            let (m, outcome) = migration::advance(&s.store, &ctx, m, &accounts).await?;
            match outcome {
                migration::Advanced::Passed(run) => format!("Phase {} passed; now {}.", run.phase.as_str(), m.phase.as_str()),
                migration::Advanced::Refused(run) => format!("Refused: a check of phase {} fails (recorded).", run.phase.as_str()),
                migration::Advanced::Requested(_, c) => format!("The legacy pool is empty: change {c} requested to remove it from the topology."),
            }
        }
        other => {
            return Err(PageError(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no action {other}"),
            )))
        }
    };
    Ok(back("/console/migration", &notice))
}
