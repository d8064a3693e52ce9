//! The admin API's routes, `/api/v1/…`, each a thin layer over `confab_ops` (the same
//! functions the CLI calls): read the request, sign the administrator in, call the ops layer,
//! answer JSON. [`ROUTES`] lists every route with its method and whether it needs a sign-in;
//! `docs/openapi.json` describes the same set, which a test checks.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, MethodRouter};
use axum::Json;
use confab_ops::control::{self, Operation, Outcome, Right};
use confab_ops::migration;
use confab_ops::moves::{self, MoveRequest, Performed};
use confab_store::{Address, ChangeClass, ChangeFilter, ChangeState, Decision, UserFilter};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Admin, AdminState, ApiError};

type S = Arc<AdminState>;
type Answer = Result<(StatusCode, Json<Value>), ApiError>;

/// A route: method, path (axum's and OpenAPI's templating, `{name}`), and whether it is
/// open to callers that did not sign in.
pub struct Route {
    /// `GET`, `POST`, `DELETE`.
    pub method: &'static str,
    /// The path.
    pub path: &'static str,
    /// Reachable without signing in.
    pub open: bool,
}

const fn route(method: &'static str, path: &'static str, open: bool) -> Route {
    Route { method, path, open }
}

/// Every route of the listener.
pub const ROUTES: &[Route] = &[
    route("GET", "/healthz", true),
    route("GET", "/metrics", true),
    route("GET", "/api/openapi.json", true),
    route("GET", "/api/v1/whoami", false),
    route("GET", "/api/v1/status", false),
    route("GET", "/api/v1/pools", false),
    route("GET", "/api/v1/users", false),
    route("POST", "/api/v1/users", false),
    route("GET", "/api/v1/users/{address}", false),
    route("DELETE", "/api/v1/users/{address}", false),
    route("POST", "/api/v1/users/{address}/enable", false),
    route("POST", "/api/v1/users/{address}/disable", false),
    route("POST", "/api/v1/users/{address}/password", false),
    route("POST", "/api/v1/moves", false),
    route("GET", "/api/v1/topology", false),
    route("POST", "/api/v1/topology", false),
    route("GET", "/api/v1/topology/versions/{version}", false),
    route("GET", "/api/v1/changes", false),
    route("GET", "/api/v1/changes/{id}", false),
    route("POST", "/api/v1/changes/{id}/approve", false),
    route("POST", "/api/v1/changes/{id}/reject", false),
    route("POST", "/api/v1/changes/{id}/implement", false),
    route("POST", "/api/v1/changes/{id}/review", false),
    route("POST", "/api/v1/changes/{id}/rollback", false),
    route("GET", "/api/v1/backups", false),
    route("POST", "/api/v1/backups", false),
    route("POST", "/api/v1/backups/verify", false),
    route("GET", "/api/v1/migrations", false),
    route("GET", "/api/v1/migrations/{pool}", false),
    route("POST", "/api/v1/migrations/{pool}/verify", false),
    route("POST", "/api/v1/migrations/{pool}/advance", false),
    route("GET", "/api/v1/audit", false),
    route("POST", "/api/v1/changes", false),
    route("POST", "/api/v1/changes/emergency", false),
    route("GET", "/api/v1/catalogue", false),
    route("GET", "/api/v1/inventory", false),
    route("GET", "/api/v1/domains", false),
    route("POST", "/api/v1/domains", false),
    route("GET", "/api/v1/administrators", false),
    route("POST", "/api/v1/administrators", false),
    route("GET", "/api/v1/users/{address}/contacts", false),
    route("GET", "/api/v1/sources", false),
    route("POST", "/api/v1/migrations/{pool}/sync", false),
    route("GET", "/api/v1/migrations/{pool}/legacy-config", false),
    route("POST", "/api/v1/pools/{pool}/tests/{test}", false),
    route("POST", "/api/v1/users/{address}/contacts", false),
    route(
        "DELETE",
        "/api/v1/users/{address}/contacts/{contact}",
        false,
    ),
    route("POST", "/api/v1/migrations", false),
    route("POST", "/api/v1/migrations/{pool}/import", false),
    route("POST", "/api/v1/migrations/{pool}/merge", false),
    route("POST", "/api/v1/migrations/{pool}/rollback", false),
    route("POST", "/api/v1/users/import", false),
    route("GET", "/api/v1/users/{address}/presence-rules", false),
    route("POST", "/api/v1/users/{address}/presence-rules", false),
    route(
        "DELETE",
        "/api/v1/users/{address}/presence-rules/{watcher}",
        false,
    ),
    route("POST", "/api/v1/users/{address}/contact-groups", false),
    route(
        "POST",
        "/api/v1/users/{address}/contact-groups/{group}",
        false,
    ),
    route(
        "DELETE",
        "/api/v1/users/{address}/contact-groups/{group}",
        false,
    ),
    route("POST", "/api/v1/topology/validate", false),
    route("POST", "/api/v1/backups/restore-users", false),
];

/// The handler of `ROUTES[i]`.
fn handler(method: &str, path: &str) -> Option<MethodRouter<S>> {
    Some(match (method, path) {
        ("GET", "/healthz") => get(super::metrics::healthz),
        ("GET", "/metrics") => get(super::metrics::metrics),
        ("GET", "/api/openapi.json") => get(openapi),
        ("GET", "/api/v1/whoami") => get(whoami),
        ("GET", "/api/v1/status") => get(status),
        ("GET", "/api/v1/pools") => get(pools),
        ("GET", "/api/v1/users") => get(users),
        ("POST", "/api/v1/users") => post(add_user),
        ("GET", "/api/v1/users/{address}") => get(user),
        ("DELETE", "/api/v1/users/{address}") => delete(remove_user),
        ("POST", "/api/v1/users/{address}/enable") => post(enable_user),
        ("POST", "/api/v1/users/{address}/disable") => post(disable_user),
        ("POST", "/api/v1/users/{address}/password") => post(set_password),
        ("POST", "/api/v1/moves") => post(move_users),
        ("GET", "/api/v1/topology") => get(topology),
        ("POST", "/api/v1/topology") => post(publish_topology),
        ("GET", "/api/v1/topology/versions/{version}") => get(topology_version),
        ("GET", "/api/v1/changes") => get(changes),
        ("GET", "/api/v1/changes/{id}") => get(change),
        ("POST", "/api/v1/changes/{id}/approve") => post(approve),
        ("POST", "/api/v1/changes/{id}/reject") => post(reject),
        ("POST", "/api/v1/changes/{id}/implement") => post(implement),
        ("POST", "/api/v1/changes/{id}/review") => post(review),
        ("POST", "/api/v1/changes/{id}/rollback") => post(rollback),
        ("GET", "/api/v1/backups") => get(backups),
        ("POST", "/api/v1/backups") => post(create_backup),
        ("POST", "/api/v1/backups/verify") => post(verify_backup),
        ("GET", "/api/v1/migrations") => get(migrations),
        ("GET", "/api/v1/migrations/{pool}") => get(migration_status),
        ("POST", "/api/v1/migrations/{pool}/verify") => post(migration_verify),
        ("POST", "/api/v1/migrations/{pool}/advance") => post(migration_advance),
        ("GET", "/api/v1/audit") => get(audit),
        ("POST", "/api/v1/changes") => post(request_change),
        ("POST", "/api/v1/changes/emergency") => post(emergency_change),
        ("GET", "/api/v1/catalogue") => get(catalogue),
        ("GET", "/api/v1/inventory") => get(inventory),
        ("GET", "/api/v1/domains") => get(domains),
        ("POST", "/api/v1/domains") => post(add_domain),
        ("GET", "/api/v1/administrators") => get(administrators),
        ("POST", "/api/v1/administrators") => post(add_administrator),
        ("GET", "/api/v1/users/{address}/contacts") => get(contacts),
        ("GET", "/api/v1/sources") => get(sources),
        ("POST", "/api/v1/migrations/{pool}/sync") => post(migration_sync),
        ("GET", "/api/v1/migrations/{pool}/legacy-config") => get(migration_legacy_config),
        ("POST", "/api/v1/pools/{pool}/tests/{test}") => post(synthetic_test),
        ("POST", "/api/v1/users/{address}/contacts") => post(add_contact),
        ("DELETE", "/api/v1/users/{address}/contacts/{contact}") => delete(remove_contact),
        ("POST", "/api/v1/migrations") => post(plan_migration),
        ("POST", "/api/v1/migrations/{pool}/import") => post(migration_import),
        ("POST", "/api/v1/migrations/{pool}/merge") => post(migration_merge),
        ("POST", "/api/v1/migrations/{pool}/rollback") => post(migration_rollback),
        ("POST", "/api/v1/users/import") => post(import_users),
        ("GET", "/api/v1/users/{address}/presence-rules") => get(presence_rules),
        ("POST", "/api/v1/users/{address}/presence-rules") => post(set_presence_rule),
        ("DELETE", "/api/v1/users/{address}/presence-rules/{watcher}") => {
            delete(remove_presence_rule)
        }
        ("POST", "/api/v1/users/{address}/contact-groups") => post(add_group),
        ("POST", "/api/v1/users/{address}/contact-groups/{group}") => post(rename_group),
        ("DELETE", "/api/v1/users/{address}/contact-groups/{group}") => delete(remove_group),
        ("POST", "/api/v1/topology/validate") => post(validate_topology),
        ("POST", "/api/v1/backups/restore-users") => post(restore_users),
        _ => return None,
    })
}

/// The router of every route in [`ROUTES`]; unknown paths answer 404 in JSON.
pub fn router() -> axum::Router<S> {
    let mut r = axum::Router::new();
    for route in ROUTES {
        let Some(h) = handler(route.method, route.path) else {
            unreachable!("route {} {} has no handler", route.method, route.path)
        };
        // What a signed-in administrator reads is nobody's to cache.
        let h = if route.open {
            h
        } else {
            h.layer(axum::middleware::map_response(no_store))
        };
        r = r.route(route.path, h);
    }
    r.fallback(|| async {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no such route; the API is described at /api/openapi.json",
        )
    })
}

async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// The OpenAPI document of the API, as checked into the repository.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

fn ok(value: Value) -> Answer {
    Ok((StatusCode::OK, Json(value)))
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{}; see /api/openapi.json for the request's fields",
                e.body_text()
            ),
        )
    })
}

/// A query string's fields, or a 400 that names the one that is wrong.
fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::invalid(e.body_text()))
}

fn address(text: &str) -> Result<Address, ApiError> {
    Address::parse(text).map_err(|e| ApiError::invalid(e.to_string()))
}

fn standard(op: &control::Operator, right: Right) -> Result<control::ChangeContext<'_>, ApiError> {
    Ok(control::authorize(op, right, ChangeClass::Standard)?)
}

async fn whoami(Admin(op): Admin) -> Answer {
    ok(json!({
        "name": op.name(),
        "roles": op.roles().iter().map(|r| r.as_str()).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
struct StatusQuery {
    /// Also walk the audit log's chain.
    #[serde(default)]
    audit: bool,
}

async fn status(State(s): State<S>, Admin(op): Admin, Query(q): Query<StatusQuery>) -> Answer {
    op.check(Right::View)?;
    let status = confab_ops::status::deployment(&s.store, q.audit).await?;
    ok(status.json())
}

async fn pools(State(s): State<S>, Admin(op): Admin) -> Answer {
    op.check(Right::View)?;
    ok(json!(confab_ops::topology::pools(&s.store).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersQuery {
    pool: Option<String>,
    domain: Option<String>,
    /// Only addresses matching this pattern (`*`, `?`).
    filter: Option<String>,
    /// At most this many (default 1000).
    limit: Option<usize>,
}

async fn users(
    State(s): State<S>,
    Admin(op): Admin,
    q: Result<Query<UsersQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    op.check(Right::View)?;
    let q = query(q)?;
    let list = confab_ops::users::list(
        &s.store,
        &UserFilter {
            pool: q.pool,
            domain: q.domain,
        },
    )
    .await?;
    let limit = q.limit.unwrap_or(1000);
    let matching: Vec<_> = list
        .into_iter()
        .filter(|u| {
            q.filter
                .as_deref()
                .is_none_or(|f| moves::matches(f, &u.address.to_string()))
        })
        .collect();
    let total = matching.len();
    ok(json!({
        "total": total,
        "users": matching.into_iter().take(limit).collect::<Vec<_>>(),
    }))
}

async fn user(State(s): State<S>, Admin(op): Admin, Path(a): Path<String>) -> Answer {
    op.check(Right::View)?;
    ok(json!(
        confab_ops::users::show(&s.store, &address(&a)?).await?
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    address: String,
    password: String,
    pool: Option<String>,
    display_name: Option<String>,
}

async fn add_user(
    State(s): State<S>,
    Admin(op): Admin,
    b: Result<Json<NewUserBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let ctx = standard(&op, Right::ManageUsers)?;
    let details = confab_ops::users::add(
        &s.store,
        &ctx,
        confab_ops::users::NewAccount {
            address: address(&b.address)?,
            pool: b.pool,
            display_name: b.display_name,
            password: confab_ops::Password::new(b.password)?,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!(details))))
}

async fn remove_user(State(s): State<S>, Admin(op): Admin, Path(a): Path<String>) -> Answer {
    let ctx = standard(&op, Right::ManageUsers)?;
    confab_ops::users::remove(&s.store, &ctx, &address(&a)?).await?;
    ok(json!({ "removed": a }))
}

async fn set_enabled(s: &S, op: &control::Operator, a: &str, enabled: bool) -> Answer {
    let ctx = standard(op, Right::ManageUsers)?;
    ok(json!(
        confab_ops::users::set_enabled(&s.store, &ctx, &address(a)?, enabled).await?
    ))
}

async fn enable_user(State(s): State<S>, Admin(op): Admin, Path(a): Path<String>) -> Answer {
    set_enabled(&s, &op, &a, true).await
}

async fn disable_user(State(s): State<S>, Admin(op): Admin, Path(a): Path<String>) -> Answer {
    set_enabled(&s, &op, &a, false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

async fn set_password(
    State(s): State<S>,
    Admin(op): Admin,
    Path(a): Path<String>,
    b: Result<Json<PasswordBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let ctx = standard(&op, Right::ManageUsers)?;
    let password = confab_ops::Password::new(b.password)?;
    ok(json!(
        confab_ops::users::set_password(&s.store, &ctx, &address(&a)?, &password).await?
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    #[serde(default)]
    users: Vec<String>,
    from: Option<String>,
    domain: Option<String>,
    filter: Option<String>,
    to: String,
    reason: Option<String>,
    batch: Option<usize>,
    #[serde(default)]
    dry_run: bool,
}

async fn move_users(
    State(s): State<S>,
    Admin(op): Admin,
    b: Result<Json<MoveBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let users = b
        .users
        .iter()
        .map(|u| address(u))
        .collect::<Result<Vec<_>, _>>()?;
    let batch = b.batch.unwrap_or(moves::DEFAULT_BATCH);
    if batch == 0 {
        return Err(ApiError::invalid("batch must be at least 1"));
    }
    let planned = moves::plan(
        &s.store,
        &MoveRequest {
            users,
            from: b.from,
            domain: b.domain,
            filter: b.filter,
            to: b.to.clone(),
        },
    )
    .await?;
    if b.dry_run {
        op.check(Right::View)?;
        return ok(json!({ "dry_run": true, "to": b.to, "users": planned }));
    }
    let reason = b
        .reason
        .unwrap_or_else(|| "move users between pools".to_owned());
    let performed = moves::perform(
        &s.store,
        &op,
        &planned,
        moves::Order {
            to: &b.to,
            batch,
            reason: &reason,
            again: "the same request again",
        },
        &mut |_| {},
    )
    .await?;
    match performed {
        Performed::Nothing => ok(json!({ "to": b.to, "moved": [] })),
        Performed::Moved { change, users } => ok(json!({
            "to": b.to,
            "change": change,
            "moved": users.iter().map(|m| json!({
                "address": m.address.to_string(), "from": m.from,
            })).collect::<Vec<_>>(),
        })),
        Performed::Requested { change, users } => Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "to": b.to,
                "users": users,
                "change": crate::change::change_json(&change),
            })),
        )),
    }
}

async fn topology(State(s): State<S>, Admin(op): Admin) -> Answer {
    op.check(Right::View)?;
    let latest = s.store.topology_version().await?;
    let mut versions = Vec::new();
    if let Some(latest) = &latest {
        for n in (1..=latest.version).rev() {
            if let Some(v) = s.store.topology_version_number(n).await? {
                versions.push(json!({
                    "version": v.version,
                    "published_at": v.published_at,
                    "published_by": v.published_by,
                    "comment": v.comment,
                }));
            }
        }
    }
    ok(json!({
        "view": confab_ops::topology::show(&s.store).await?,
        "document": confab_ops::topology::export(&s.store).await?,
        "versions": versions,
    }))
}

async fn topology_version(State(s): State<S>, Admin(op): Admin, Path(n): Path<i64>) -> Answer {
    op.check(Right::View)?;
    let Some(v) = s.store.topology_version_number(n).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no topology version {n}; GET /api/v1/topology lists them"),
        ));
    };
    // What it changed from the version before it.
    let diff = confab_ops::topology::version_diff(&s.store, n).await?;
    ok(json!({
        "version": v.version,
        "published_at": v.published_at,
        "published_by": v.published_by,
        "comment": v.comment,
        "document": v.document,
        "diff_from_previous": diff,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    document: String,
    reason: String,
    comment: Option<String>,
}

async fn publish_topology(
    State(s): State<S>,
    Admin(op): Admin,
    b: Result<Json<PublishBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let (diff, warnings) = confab_ops::topology::diff_document(&s.store, &b.document).await?;
    let c = control::request(
        &s.store,
        &op,
        &Operation::PublishTopology {
            document: b.document,
            comment: b.comment.or_else(|| Some(b.reason.clone())),
        },
        &b.reason,
        None,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "change": crate::change::change_json(&c),
            "diff": diff,
            "warnings": warnings,
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
    state: Option<String>,
    class: Option<String>,
}

async fn changes(
    State(s): State<S>,
    Admin(op): Admin,
    q: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    op.check(Right::View)?;
    let q = query(q)?;
    let state = q
        .state
        .as_deref()
        .map(str::parse::<ChangeState>)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let class = q
        .class
        .as_deref()
        .map(str::parse::<ChangeClass>)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let list = s.store.changes(&ChangeFilter { state, class }).await?;
    ok(json!(list
        .iter()
        .map(crate::change::change_json)
        .collect::<Vec<_>>()))
}

async fn change(State(s): State<S>, Admin(op): Admin, Path(id): Path<i64>) -> Answer {
    op.check(Right::View)?;
    match s.store.change(id).await? {
        Some(c) => ok(json!(crate::change::change_json(&c))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no change {id}; GET /api/v1/changes lists them"),
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    comment: Option<String>,
}

async fn decide(s: &S, op: &control::Operator, id: i64, d: Decision, b: CommentBody) -> Answer {
    let c = control::decide(&s.store, op, id, d, b.comment.as_deref()).await?;
    ok(json!(crate::change::change_json(&c)))
}

/// An optional JSON body: none (or an empty one) is the default.
fn optional<T: Default>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match b {
        Ok(Json(v)) => Ok(v),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        Err(e) => body::<T>(Err(e)),
    }
}

async fn approve(
    State(s): State<S>,
    Admin(op): Admin,
    Path(id): Path<i64>,
    b: Result<Json<CommentBody>, JsonRejection>,
) -> Answer {
    decide(&s, &op, id, Decision::Approve, optional(b)?).await
}

async fn reject(
    State(s): State<S>,
    Admin(op): Admin,
    Path(id): Path<i64>,
    b: Result<Json<CommentBody>, JsonRejection>,
) -> Answer {
    decide(&s, &op, id, Decision::Reject, optional(b)?).await
}

fn outcome_json(o: &Outcome) -> Value {
    match o {
        Outcome::Restored {
            change,
            users,
            rows,
        } => json!({ "restored": { "change": change, "users": users, "rows": rows } }),
        Outcome::Moved { moved, passed } => json!({ "moved": moved, "passed_over": passed }),
        Outcome::Published(p) => json!({ "published": p }),
        Outcome::Enabled(e) => json!({ "enabled": e }),
        other => json!({ "done": format!("{other:?}") }),
    }
}

async fn implement(State(s): State<S>, Admin(op): Admin, Path(id): Path<i64>) -> Answer {
    let (c, outcome) = control::implement(&s.store, &op, id).await?;
    ok(json!({
        "change": crate::change::change_json(&c),
        "outcome": outcome_json(&outcome),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    comment: String,
}

async fn review(
    State(s): State<S>,
    Admin(op): Admin,
    Path(id): Path<i64>,
    b: Result<Json<ReviewBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let c = control::review(&s.store, &op, id, &b.comment).await?;
    ok(json!(crate::change::change_json(&c)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    reason: String,
    #[serde(default)]
    emergency: bool,
}

async fn rollback(
    State(s): State<S>,
    Admin(op): Admin,
    Path(id): Path<i64>,
    b: Result<Json<RollbackBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    if b.emergency {
        let snapshots = s.data_dir.join("snapshots");
        let (c, outcome) =
            control::emergency_rollback(&s.store, &op, id, &b.reason, &snapshots).await?;
        return ok(json!({
            "change": crate::change::change_json(&c),
            "outcome": outcome_json(&outcome),
        }));
    }
    let c = control::request_rollback(&s.store, &op, id, &b.reason).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "change": crate::change::change_json(&c) })),
    ))
}

fn backup_json(b: &confab_store::BackupRecord) -> Value {
    json!({
        "path": b.path,
        "created_at": b.created_at,
        "created_by": b.created_by,
        "sha256": b.sha256,
        "bytes": b.bytes,
        "users": b.users,
        "verified_at": b.verified_at,
        "verified_ok": b.verified_ok,
        "verify_note": b.verify_note,
    })
}

async fn backups(State(s): State<S>, Admin(op): Admin) -> Answer {
    op.check(Right::View)?;
    let list = confab_ops::backup::list(&s.store).await?;
    ok(json!(list.iter().map(backup_json).collect::<Vec<_>>()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateBackupBody {
    /// Verify it at once (restored into a scratch store and compared).
    #[serde(default)]
    verify: bool,
}

async fn create_backup(
    State(s): State<S>,
    Admin(op): Admin,
    b: Result<Json<CreateBackupBody>, JsonRejection>,
) -> Answer {
    let b = optional(b)?;
    let ctx = standard(&op, Right::Backup)?;
    let out = crate::backup::default_archive_in(&s.data_dir.join("backups"));
    let created = confab_ops::backup::create(
        &s.store,
        confab_ops::backup::TakenBy::Operator(&ctx),
        &out,
        &mut |_| {},
    )
    .await?;
    let verified = if b.verify {
        Some(
            confab_ops::backup::verify(&created.path, Some(&s.store))
                .await
                .map(|v| json!({ "ok": true, "users": v.manifest.users }))
                .unwrap_or_else(|e| json!({ "ok": false, "problem": e.to_string() })),
        )
    } else {
        None
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "path": created.path,
            "bytes": created.bytes,
            "sha256": created.sha256,
            "users": created.manifest.users,
            "verified": verified,
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    path: String,
}

async fn verify_backup(
    State(s): State<S>,
    Admin(op): Admin,
    b: Result<Json<VerifyBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    op.check(Right::Backup)?;
    let path = std::path::PathBuf::from(&b.path);
    match confab_ops::backup::verify(&path, Some(&s.store)).await {
        Ok(v) => ok(json!({
            "path": b.path,
            "ok": true,
            "users": v.manifest.users,
            "rows": v.rows.iter().map(|(t, n)| json!({"table": t, "rows": n})).collect::<Vec<_>>(),
        })),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
        )),
    }
}

async fn migrations(State(s): State<S>, Admin(op): Admin) -> Answer {
    op.check(Right::View)?;
    let all = migration::all(&s.store).await?;
    ok(json!(all.iter().map(|m| m.json()).collect::<Vec<_>>()))
}

async fn migration_status(State(s): State<S>, Admin(op): Admin, Path(p): Path<String>) -> Answer {
    op.check(Right::View)?;
    ok(migration::load(&s.store, Some(&p)).await?.json())
}

/// The passwords the checks sign in with, as this machine keeps them.
fn accounts(s: &S, m: &migration::Migration) -> migration::Accounts {
    crate::migrate::accounts_in(&s.data_dir, m)
}

async fn migration_verify(State(s): State<S>, Admin(op): Admin, Path(p): Path<String>) -> Answer {
    let m = migration::load(&s.store, Some(&p)).await?;
    let accounts = accounts(&s, &m);
    let (m, run) = migration::verify(&s.store, &op, m, &accounts).await?;
    ok(json!({ "passed": run.passed(), "checks": run, "migration": m.json() }))
}

async fn migration_advance(State(s): State<S>, Admin(op): Admin, Path(p): Path<String>) -> Answer {
    let ctx = standard(&op, Right::ManageTopology)?;
    let m = migration::load(&s.store, Some(&p)).await?;
    let accounts = accounts(&s, &m);
    let (m, outcome) = migration::advance(&s.store, &ctx, m, &accounts).await?;
    let (status, word, run, change) = match &outcome {
        migration::Advanced::Passed(run) => (StatusCode::OK, "passed", run, None),
        migration::Advanced::Refused(run) => (StatusCode::CONFLICT, "refused", run, None),
        migration::Advanced::Requested(run, c) => {
            (StatusCode::ACCEPTED, "requested", run, Some(*c))
        }
    };
    Ok((
        status,
        Json(json!({
            "outcome": word,
            "change": change,
            "checks": run,
            "migration": m.json(),
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Entries after this sequence number (default 0: from the start).
    after: Option<i64>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

async fn audit(
    State(s): State<S>,
    Admin(op): Admin,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    op.check(Right::View)?;
    let q = query(q)?;
    let entries = s
        .store
        .audit_entries(q.after.unwrap_or(0), q.limit.unwrap_or(100).min(1000))
        .await?;
    ok(json!(entries
        .iter()
        .map(|e| json!({
            "seq": e.seq,
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "subject": e.subject,
            "detail": e.detail,
            "hash": e.hash,
        }))
        .collect::<Vec<_>>()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    /// The operation, as a change record carries it: `{"op": "user.disable", "address": …}`.
    operation: Operation,
    reason: String,
    impact: Option<String>,
}

async fn request_change(
    State(s): State<S>,
    Admin(op): Admin,
    b: Result<Json<ChangeBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let c = control::request(&s.store, &op, &b.operation, &b.reason, b.impact.as_deref()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "change": crate::change::change_json(&c) })),
    ))
}

async fn emergency_change(
    State(s): State<S>,
    Admin(op): Admin,
    b: Result<Json<ChangeBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let snapshots = s.data_dir.join("snapshots");
    let (c, outcome) =
        control::emergency(&s.store, &op, &b.operation, &b.reason, &snapshots).await?;
    ok(json!({
        "change": crate::change::change_json(&c),
        "outcome": outcome_json(&outcome),
    }))
}

async fn catalogue(Admin(op): Admin) -> Answer {
    op.check(Right::View)?;
    ok(json!(control::CATALOGUE
        .iter()
        .map(|t| json!({
            "op": t.op,
            "what": t.what,
            "roles": control::roles_granting(t.right),
        }))
        .collect::<Vec<_>>()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryQuery {
    pool: Option<String>,
}

async fn inventory(
    State(s): State<S>,
    Admin(op): Admin,
    q: Result<Query<InventoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    op.check(Right::View)?;
    let q = query(q)?;
    if let Some(pool) = &q.pool {
        if s.store.get_pool(pool).await?.is_none() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no pool '{pool}'; GET /api/v1/pools lists them"),
            ));
        }
    }
    let dump = s.store.dump().await?;
    let rows: Vec<_> = confab_ops::backup::inventory(&dump)
        .into_iter()
        .filter(|r| q.pool.as_ref().is_none_or(|p| *p == r.pool))
        .collect();
    ok(json!(rows))
}

async fn domains(State(s): State<S>, Admin(op): Admin) -> Answer {
    op.check(Right::View)?;
    ok(json!(confab_ops::topology::domains(&s.store).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainBody {
    name: String,
}

async fn add_domain(
    State(s): State<S>,
    Admin(op): Admin,
    b: Result<Json<DomainBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let ctx = standard(&op, Right::ManageTopology)?;
    let d = confab_ops::topology::add_domain(&s.store, &ctx, &b.name).await?;
    Ok((StatusCode::CREATED, Json(json!(d))))
}

async fn administrators(State(s): State<S>, Admin(op): Admin) -> Answer {
    op.check(Right::View)?;
    let all = s.store.administrators().await?;
    ok(json!(all
        .iter()
        .map(|a| json!({
            "name": a.name,
            "roles": a.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "enabled": a.enabled,
        }))
        .collect::<Vec<_>>()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdministratorBody {
    name: String,
    roles: Vec<String>,
}

async fn add_administrator(
    State(s): State<S>,
    Admin(op): Admin,
    b: Result<Json<AdministratorBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let roles = b
        .roles
        .iter()
        .map(|r| r.parse::<confab_store::Role>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let ctx = standard(&op, Right::ManageAdministrators)?;
    let token = control::add_administrator(&s.store, &ctx, &b.name, &roles).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": b.name, "token": token })),
    ))
}

async fn contacts(State(s): State<S>, Admin(op): Admin, Path(a): Path<String>) -> Answer {
    op.check(Right::View)?;
    ok(json!(
        confab_ops::contacts::list(&s.store, &address(&a)?).await?
    ))
}

async fn sources(State(s): State<S>, Admin(op): Admin) -> Answer {
    op.check(Right::View)?;
    let all = s.store.blocked_sources().await?;
    ok(json!(all
        .iter()
        .map(|b| json!({
            "cidr": b.cidr,
            "reason": b.reason,
            "created_at": b.created_at,
            "created_by": b.created_by,
        }))
        .collect::<Vec<_>>()))
}

async fn migration_sync(State(s): State<S>, Admin(op): Admin, Path(p): Path<String>) -> Answer {
    op.check(Right::ManageTopology)?;
    let m = migration::load(&s.store, Some(&p)).await?;
    let rows = migration::sync(&s.store, &m).await?;
    ok(json!({ "rows": rows }))
}

async fn migration_legacy_config(
    State(s): State<S>,
    Admin(op): Admin,
    Path(p): Path<String>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    op.check(Right::View)?;
    let m = migration::load(&s.store, Some(&p)).await?;
    let fronts = confab_ops::legacy_config::topology_fronts(&s.store).await?;
    let text = confab_ops::legacy_config::kamailio(&confab_ops::legacy_config::KamailioBlock {
        legacy_pool: m.plan.legacy_pool.clone(),
        db_url: confab_ops::legacy_config::kamailio_db_url(&m.plan.db),
        fronts,
    })?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        text,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SetupQuery {
    /// The test users' domain (setup only) [default: the deployment's first].
    domain: Option<String>,
}

async fn synthetic_test(
    State(s): State<S>,
    Admin(op): Admin,
    Path((pool, test)): Path<(String, String)>,
    q: Result<Query<SetupQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let q = query(q)?;
    if test == "setup" {
        let ctx = standard(&op, Right::ManageUsers)?;
        if s.store.get_pool(&pool).await?.is_none() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no pool '{pool}'; GET /api/v1/pools lists them"),
            ));
        }
        let domain = match q.domain {
            Some(d) => d,
            None => s
                .store
                .domains()
                .await?
                .first()
                .map(|d| d.name.clone())
                .ok_or_else(|| ApiError::invalid("the deployment has no domain"))?,
        };
        let users = confab_ops::synthetic::setup(&s.store, &ctx, &pool, &domain).await?;
        let file = crate::synthetic::users_file(&s.data_dir, &pool);
        crate::synthetic::write_users(&file, &users).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                match e {
                    crate::manage::Failure::Usage(m) | crate::manage::Failure::Failed(m) => m,
                },
            )
        })?;
        return Ok((
            StatusCode::CREATED,
            Json(json!({
                "pool": pool,
                "users": users.iter().map(|u| u.address.clone()).collect::<Vec<_>>(),
            })),
        ));
    }
    op.check(Right::View)?;
    let server = migration::pool_server(&s.store, &pool)
        .await
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e))?;
    let file = crate::synthetic::users_file(&s.data_dir, &pool);
    let users = crate::synthetic::read_users(&file, &pool).map_err(|e| {
        ApiError::new(
            StatusCode::CONFLICT,
            match e {
                crate::manage::Failure::Usage(m) | crate::manage::Failure::Failed(m) => m,
            },
        )
    })?;
    let (Some(first), Some(second)) = (users.first(), users.get(1)) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "pool {pool} has fewer than two test users: run `confab test setup --pool {pool}`"
            ),
        ));
    };
    let report = match test.as_str() {
        "registration" => confab_ops::synthetic::registration(server, first).await,
        "im" => confab_ops::synthetic::im(server, first, second).await,
        "presence" => confab_ops::synthetic::presence(server, first, second).await,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no synthetic test '{other}': registration, im or presence"),
            ))
        }
    };
    ok(json!(report))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactBody {
    address: String,
    display_name: Option<String>,
    group: Option<String>,
}

async fn add_contact(
    State(s): State<S>,
    Admin(op): Admin,
    Path(a): Path<String>,
    b: Result<Json<ContactBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let ctx = standard(&op, Right::ManageUsers)?;
    let added = confab_ops::contacts::add(
        &s.store,
        &ctx,
        &address(&a)?,
        confab_store::NewContact {
            address: address(&b.address)?,
            display_name: b.display_name,
            group: b.group,
        },
        false,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!(added))))
}

async fn remove_contact(
    State(s): State<S>,
    Admin(op): Admin,
    Path((a, c)): Path<(String, String)>,
) -> Answer {
    let ctx = standard(&op, Right::ManageUsers)?;
    confab_ops::contacts::remove(&s.store, &ctx, &address(&a)?, &address(&c)?).await?;
    ok(json!({ "removed": c }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanBody {
    system: String,
    db: String,
    legacy_pool: String,
    pilot_pool: String,
    #[serde(default)]
    production_pools: Vec<String>,
    legacy_account: String,
    pilot_account: String,
    /// The two accounts' passwords, kept in this front-end's data directory (never in the
    /// store) for the checks it runs.
    legacy_password: String,
    pilot_password: String,
}

async fn plan_migration(
    State(s): State<S>,
    Admin(op): Admin,
    b: Result<Json<PlanBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let ctx = standard(&op, Right::ManageTopology)?;
    let m = migration::plan(
        &s.store,
        &ctx,
        migration::Plan {
            system: b.system,
            legacy_pool: b.legacy_pool,
            db: b.db,
            pilot_pool: b.pilot_pool,
            production_pools: b.production_pools,
            legacy_account: b.legacy_account,
            pilot_account: b.pilot_account,
        },
    )
    .await?;
    crate::migrate::keep_accounts(&s.data_dir, &m, (b.legacy_password, b.pilot_password))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok((StatusCode::CREATED, Json(m.json())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    /// Kamailio's database: `sqlite://PATH` or `postgres://…`.
    db: String,
    realm: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

async fn migration_import(
    State(s): State<S>,
    Admin(op): Admin,
    Path(p): Path<String>,
    b: Result<Json<ImportBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let ctx = standard(&op, Right::ManageUsers)?;
    let subscribers = confab_store::read_kamailio_subscribers(&b.db).await?;
    let outcome = confab_ops::migrate::import_kamailio(
        &s.store,
        &ctx,
        &subscribers,
        &confab_ops::migrate::KamailioImport {
            pool: p,
            realm: b.realm,
            dry_run: b.dry_run,
        },
    )
    .await?;
    ok(json!(outcome))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    /// Where Confab sends requests for the legacy pool's users: `udp://IP:PORT`.
    next_hop: String,
    site: Option<String>,
    reason: Option<String>,
}

async fn migration_merge(
    State(s): State<S>,
    Admin(op): Admin,
    Path(p): Path<String>,
    b: Result<Json<MergeBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let document =
        confab_ops::migrate::merged_topology(&s.store, &p, &b.next_hop, b.site.as_deref()).await?;
    let reason = b
        .reason
        .unwrap_or_else(|| format!("merge the topologies: the legacy system as pool {p}"));
    let c = control::request(
        &s.store,
        &op,
        &Operation::PublishTopology {
            document,
            comment: Some(reason.clone()),
        },
        &reason,
        Some("requests for the legacy pool's users go to its next hop"),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "change": crate::change::change_json(&c) })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrationRollbackBody {
    /// The move whose users go back to the legacy pool.
    change: i64,
    reason: String,
    #[serde(default)]
    emergency: bool,
}

async fn migration_rollback(
    State(s): State<S>,
    Admin(op): Admin,
    Path(p): Path<String>,
    b: Result<Json<MigrationRollbackBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let m = migration::load(&s.store, Some(&p)).await?;
    let snapshots = s.data_dir.join("snapshots");
    let (m, r) = migration::rollback(
        &s.store,
        &op,
        m,
        b.change,
        &b.reason,
        b.emergency.then_some(snapshots.as_path()),
    )
    .await?;
    Ok((
        if r.done {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        },
        Json(json!({
            "change": crate::change::change_json(&r.change),
            "users": r.users,
            "done": r.done,
            "migration": m.json(),
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportUser {
    address: String,
    password: String,
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBodyUsers {
    users: Vec<ImportUser>,
    pool: Option<String>,
    #[serde(default)]
    skip_existing: bool,
}

async fn import_users(
    State(s): State<S>,
    Admin(op): Admin,
    b: Result<Json<ImportBodyUsers>, JsonRejection>,
) -> Answer {
    use confab_ops::users::{self as import, ImportError, ImportOptions, ImportRow};
    let b = body(b)?;
    let ctx = standard(&op, Right::ManageUsers)?;
    let rows = b
        .users
        .into_iter()
        .enumerate()
        .map(|(i, u)| ImportRow {
            line: u64::try_from(i + 1).unwrap_or(u64::MAX),
            address: u.address,
            password: u.password,
            display_name: u.display_name,
        })
        .collect();
    let options = ImportOptions {
        pool: b.pool,
        skip_existing: b.skip_existing,
    };
    let failed = |e: ImportError| match e {
        ImportError::Rows(problems) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "nothing imported: {}",
                problems
                    .iter()
                    .map(|p| format!("user {}: {}", p.line, p.problem))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        ImportError::Ops(e) => e.into(),
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    };
    let plan = import::check_import(&s.store, rows, &options)
        .await
        .map_err(failed)?;
    let report = import::apply_import(&s.store, &ctx, plan)
        .await
        .map_err(failed)?;
    Ok((StatusCode::CREATED, Json(json!(report))))
}

async fn presence_rules(State(s): State<S>, Admin(op): Admin, Path(a): Path<String>) -> Answer {
    op.check(Right::View)?;
    ok(json!(
        confab_ops::contacts::presence_rules(&s.store, &address(&a)?).await?
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    /// `user@domain`, or `@domain` for everyone of a domain.
    watcher: String,
    /// blocked, colleagues, workgroup, friends-and-family (Lync's access levels).
    level: String,
}

async fn set_presence_rule(
    State(s): State<S>,
    Admin(op): Admin,
    Path(a): Path<String>,
    b: Result<Json<RuleBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let watcher = confab_store::Watcher::parse(&b.watcher)?;
    let level: confab_store::PresenceLevel = b
        .level
        .parse()
        .map_err(|e: confab_store::StoreError| ApiError::invalid(e.to_string()))?;
    let ctx = standard(&op, Right::ManageUsers)?;
    ok(json!(
        confab_ops::contacts::set_presence_rule(&s.store, &ctx, &address(&a)?, &watcher, level)
            .await?
    ))
}

async fn remove_presence_rule(
    State(s): State<S>,
    Admin(op): Admin,
    Path((a, w)): Path<(String, String)>,
) -> Answer {
    let watcher = confab_store::Watcher::parse(&w)?;
    let ctx = standard(&op, Right::ManageUsers)?;
    confab_ops::contacts::remove_presence_rule(&s.store, &ctx, &address(&a)?, &watcher).await?;
    ok(json!({ "removed": w }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    name: String,
}

async fn add_group(
    State(s): State<S>,
    Admin(op): Admin,
    Path(a): Path<String>,
    b: Result<Json<GroupBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let ctx = standard(&op, Right::ManageUsers)?;
    let g = confab_ops::contacts::add_group(&s.store, &ctx, &address(&a)?, &b.name).await?;
    Ok((StatusCode::CREATED, Json(json!(g))))
}

async fn rename_group(
    State(s): State<S>,
    Admin(op): Admin,
    Path((a, g)): Path<(String, String)>,
    b: Result<Json<GroupBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let ctx = standard(&op, Right::ManageUsers)?;
    confab_ops::contacts::rename_group(&s.store, &ctx, &address(&a)?, &g, &b.name).await?;
    ok(json!({ "renamed": g, "to": b.name }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RemoveGroupQuery {
    /// Move its contacts out of any group instead of refusing while it has some.
    #[serde(default)]
    ungroup: bool,
}

async fn remove_group(
    State(s): State<S>,
    Admin(op): Admin,
    Path((a, g)): Path<(String, String)>,
    q: Result<Query<RemoveGroupQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let q = query(q)?;
    let ctx = standard(&op, Right::ManageUsers)?;
    ok(json!(
        confab_ops::contacts::remove_group(&s.store, &ctx, &address(&a)?, &g, q.ungroup).await?
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateBody {
    document: String,
}

async fn validate_topology(
    State(s): State<S>,
    Admin(op): Admin,
    b: Result<Json<ValidateBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    op.check(Right::View)?;
    match confab_ops::topology::diff_document(&s.store, &b.document).await {
        Ok((diff, warnings)) => ok(json!({ "valid": true, "diff": diff, "warnings": warnings })),
        Err(confab_ops::OpsError::InvalidTopology { problems }) => {
            ok(json!({ "valid": false, "problems": problems }))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreUsersBody {
    archive: String,
    users: Vec<String>,
}

async fn restore_users(
    State(s): State<S>,
    Admin(op): Admin,
    b: Result<Json<RestoreUsersBody>, JsonRejection>,
) -> Answer {
    let b = body(b)?;
    let users = b
        .users
        .iter()
        .map(|u| address(u))
        .collect::<Result<Vec<_>, _>>()?;
    let ctx = standard(&op, Right::ManageUsers)?;
    let path = std::path::PathBuf::from(&b.archive);
    let loaded = tokio::task::spawn_blocking(move || confab_ops::backup::load(&path))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let mut restored = Vec::new();
    for user in &users {
        let r = confab_ops::users::restore_user_data(&s.store, &ctx, &loaded, user).await?;
        restored.push(json!({ "user": user.to_string(), "restored": format!("{r:?}") }));
    }
    ok(json!({ "archive": b.archive, "users": restored }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The document describes exactly the routes the listener serves, and says which are
    /// open to callers that did not sign in.
    #[test]
    fn the_openapi_document_matches_the_routes() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("docs/openapi.json parses");
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for (method, op) in ops.as_object().expect("operations") {
                let open = op["security"].as_array().is_some_and(Vec::is_empty);
                documented.insert((method.to_ascii_uppercase(), path.clone(), open));
            }
        }
        let served: BTreeSet<(String, String, bool)> = ROUTES
            .iter()
            .map(|r| (r.method.to_owned(), r.path.to_owned(), r.open))
            .collect();
        assert_eq!(
            documented.difference(&served).collect::<Vec<_>>(),
            Vec::<&(String, String, bool)>::new(),
            "documented, not served"
        );
        assert_eq!(
            served.difference(&documented).collect::<Vec<_>>(),
            Vec::<&(String, String, bool)>::new(),
            "served, not documented"
        );
        for r in ROUTES {
            assert!(
                handler(r.method, r.path).is_some(),
                "{} {}",
                r.method,
                r.path
            );
        }
    }
}
