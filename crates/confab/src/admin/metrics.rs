//! `/metrics` (Prometheus text format) and `/healthz`: what this front-end counts — SIP
//! requests by method, responses by method and code, live transactions, registrations,
//! presence subscriptions, password-guessing throttle, the store's latency as this scrape
//! measured it — and the deployment's figures every front-end can read from the store
//! (`confab_ops::status`: users per pool, change-control counts, overdue reviews, the age of
//! the last backup). Neither needs a sign-in: keep the listener on loopback or behind a
//! firewall, as its default address does.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use confab_ops::status::Exposition;

use super::AdminState;

/// How long one round trip to the store takes now, in seconds; `None` when it failed.
async fn store_latency(s: &AdminState) -> Option<f64> {
    let t = Instant::now();
    s.store.last_change_seq().await.ok()?;
    Some(t.elapsed().as_secs_f64())
}

/// `GET /metrics`.
pub async fn metrics(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    let mut out = Exposition::new();
    let driver = s.router.driver();
    let counters = driver.counters();
    out.counter(
        "confab_sip_requests_total",
        "SIP requests that started a server transaction, by method.",
        counters
            .requests()
            .into_iter()
            .map(|(m, n)| (vec![("method", m)], n as f64)),
    );
    let responses = counters.responses();
    let codes: Vec<String> = responses.iter().map(|(_, c, _)| c.to_string()).collect();
    out.counter(
        "confab_sip_responses_total",
        "SIP responses sent in server transactions (answered here or relayed), by method and \
         status code.",
        responses
            .iter()
            .zip(&codes)
            .map(|((m, _, n), code)| (vec![("method", *m), ("code", code.as_str())], *n as f64)),
    );
    let d = driver.stats();
    let stats = s.router.stats();
    let one = |v: f64| std::iter::once((Vec::new(), v));
    out.gauge(
        "confab_sip_transactions_active",
        "SIP transactions alive in this front-end.",
        one(d.transactions as f64),
    );
    out.counter(
        "confab_sip_retransmissions_absorbed_total",
        "Messages the transaction layer absorbed (retransmissions, ACKs of non-2xx responses).",
        one(d.absorbed as f64),
    );
    out.counter(
        "confab_sip_overloaded_total",
        "Requests refused with 503 because the transaction layer was full.",
        one(d.overloaded as f64),
    );
    out.gauge(
        "confab_registered_users",
        "Addresses-of-record with at least one registration at this front-end.",
        one(stats.registered as f64),
    );
    out.gauge(
        "confab_calls_active",
        "INVITEs being proxied by this front-end.",
        one(stats.active_invites as f64),
    );
    out.gauge(
        "confab_presence_subscriptions",
        "Presence subscriptions held by this front-end.",
        one(stats.presence.subscriptions as f64),
    );
    out.gauge(
        "confab_presence_publications",
        "Presence publications held by this front-end.",
        one(stats.presence.publications as f64),
    );
    out.counter(
        "confab_presence_notifies_total",
        "NOTIFY requests sent for presence.",
        one(stats.presence.notifies_sent as f64),
    );
    out.counter(
        "confab_auth_failures_total",
        "Failed digest authentications.",
        one(stats.throttle.failures as f64),
    );
    out.counter(
        "confab_auth_throttled_total",
        "Authentications answered without checking during a back-off (password guessing).",
        one(stats.throttle.throttled as f64),
    );
    out.gauge(
        "confab_uptime_seconds",
        "Seconds since this front-end started.",
        one(s.started.elapsed().as_secs_f64()),
    );
    let latency = store_latency(&s).await;
    out.gauge(
        "confab_store_up",
        "1 when the management store answered this scrape, 0 when it did not.",
        one(if latency.is_some() { 1.0 } else { 0.0 }),
    );
    if let Some(l) = latency {
        out.gauge(
            "confab_store_latency_seconds",
            "Seconds one round trip to the management store took during this scrape.",
            one(l),
        );
    }
    // The deployment's figures (the audit chain is not walked on every scrape: `confab
    // status` does that).
    match confab_ops::status::deployment(&s.store, false).await {
        Ok(status) => status.write_metrics(&mut out),
        Err(e) => tracing::warn!(error = %e, "metrics: the deployment's figures cannot be read"),
    }
    (
        [(header::CONTENT_TYPE, Exposition::CONTENT_TYPE)],
        out.finish(),
    )
}

/// `GET /healthz`: 200 when this front-end serves SIP and reaches its store, 503 otherwise.
pub async fn healthz(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    let store = store_latency(&s).await;
    let status = if store.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({
            "status": if store.is_some() { "ok" } else { "store unreachable" },
            "pool": s.pool,
            "store_latency_ms": store.map(|l| (l * 1000.0 * 1000.0).round() / 1000.0),
            "uptime_seconds": s.started.elapsed().as_secs(),
        })),
    )
}
