//! The HTTP surface: `/info`, `/delay/{ms}`, `/call/{peer}[/{path…}]`, `/mesh`, `/healthz`,
//! `/stats`. With `FAIL_STATUS` set, everything but `/healthz` answers with that status (all
//! requests, `FAIL_PERCENT` of them, or only those from `FAIL_FROM`); with `DELAY_MS`, later.
//! Every response body is JSON except `/healthz`, so tests and `curl | jq` read them alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::config::{Config, Peer};
use crate::headers;
use crate::peers::{Failure, PeerClient};
use crate::stats::{Served, Stats};

pub struct App {
    pub config: Config,
    /// The state of the draws deciding which requests fail under `FAIL_PERCENT`.
    pub draws: std::sync::atomic::AtomicU64,
    /// The port actually bound, which differs from `config.port` when that was 0.
    pub port: u16,
    pub hostname: String,
    pub peers: PeerClient,
    pub stats: Stats,
}

type Shared = State<Arc<App>>;

impl App {
    /// A number in 0..100, uniform, different for each request: splitmix64 over a counter
    /// seeded at start (no random-number crate for one draw per request).
    fn draw_percent(&self) -> u32 {
        use std::sync::atomic::Ordering;
        let mut z = self
            .draws
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % 100) as u32
    }
}

pub fn router(app: Arc<App>) -> Router {
    let log = app.config.log;
    let misbehaves = app.config.fail_status.is_some() || app.config.delay.is_some();
    let router = Router::new()
        .route("/info", get(info))
        .route("/delay/{ms}", get(delay))
        .route("/call/{name}", get(call))
        .route("/call/{name}/", get(call))
        .route("/call/{name}/{*rest}", get(call))
        .route("/call-external/{name}", get(call_external))
        .route("/call-external/{name}/", get(call_external))
        .route("/call-external/{name}/{*rest}", get(call_external))
        .route("/mesh", get(mesh))
        .route("/healthz", get(|| async { "ok" }))
        .route("/stats", get(stats))
        .fallback(not_found)
        .with_state(app.clone());
    let router = if misbehaves {
        router.layer(middleware::from_fn_with_state(app.clone(), fail_request))
    } else {
        router
    };
    if log {
        router.layer(middleware::from_fn_with_state(app, log_request))
    } else {
        router
    }
}

async fn info(State(app): Shared, headers: HeaderMap) -> Json<Value> {
    app.stats.served(Served::Info);
    if let Some(source) = headers.get(meshtally_wire::headers::SOURCE) {
        app.stats
            .seen_source(&String::from_utf8_lossy(source.as_bytes()));
    }
    Json(json!({
        "service": app.config.service,
        "version": app.config.version,
        "port": app.port,
        "hostname": app.hostname,
        "request_headers": headers::to_json(&headers),
    }))
}

/// The longest `/delay/{ms}` waits, so a typo cannot hold a connection for hours.
const MAX_DELAY_MS: u64 = 60_000;

/// `/info`, answered after `ms` milliseconds: a slow upstream for timeouts and circuit breakers.
async fn delay(state: Shared, Path(ms): Path<String>, headers: HeaderMap) -> Response {
    let Ok(ms) = ms.parse::<u64>() else {
        let body = json!({"error": format!("delay {ms:?} is not a number of milliseconds")});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    };
    tokio::time::sleep(Duration::from_millis(ms.min(MAX_DELAY_MS))).await;
    info(state, headers).await.into_response()
}

/// With `FAIL_STATUS`: every request but `/healthz` (which the supervisor and kubelet probe) gets
/// that status, naming the version, as a broken release would answer; with `FAIL_PERCENT`, a
/// random share of them; with `FAIL_FROM`, only those from that caller. With `DELAY_MS`, every
/// request but `/healthz` is answered that much later, failing or not.
async fn fail_request(State(app): Shared, req: Request, next: Next) -> Response {
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    if let Some(delay) = app.config.delay {
        tokio::time::sleep(delay).await;
    }
    let from_caller = app.config.fail_from.as_deref().is_none_or(|caller| {
        req.headers()
            .get(meshtally_wire::headers::SOURCE)
            .is_some_and(|s| s.as_bytes() == caller.as_bytes())
    });
    let in_share = app
        .config
        .fail_percent
        .is_none_or(|percent| app.draw_percent() < percent);
    match app.config.fail_status {
        Some(code) if from_caller && in_share => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = json!({
                "error": format!("this version fails every request (FAIL_STATUS={code})"),
                "service": app.config.service,
                "version": app.config.version,
            });
            (status, Json(body)).into_response()
        }
        _ => next.run(req).await,
    }
}

/// `<prefix>{name}[/{rest…}]` as the name and the path (with the query) to ask the target for:
/// its `/info` when no path is given.
fn call_target<'u>(uri: &'u Uri, prefix: &str) -> (&'u str, String) {
    let (name, rest) = split_call_path(uri.path(), prefix);
    let path = if rest.is_empty() || rest == "/" {
        "/info"
    } else {
        rest
    };
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    (name, path_and_query)
}

/// Serves both `/call/{name}` (the peer's `/info`) and `/call/{name}/{rest…}` (the
/// peer's `/{rest…}`). The split is done on the raw path rather than axum's decoded
/// captures so percent-escapes in `rest` reach the peer exactly as the caller sent them.
async fn call(State(app): Shared, uri: Uri, headers: HeaderMap) -> Response {
    app.stats.served(Served::Call);
    let (name, path_and_query) = call_target(&uri, "/call/");

    let Some(peer) = app.config.peer(name) else {
        return unknown_peer(&app, name);
    };
    forward(&app, peer, &path_and_query, &headers).await
}

/// `/call-external/{name}[/{rest…}]`: the external entry `name` (`EXTERNAL`), by its declared
/// host, through the sidecar like any call (its `/info` when no path is given).
async fn call_external(State(app): Shared, uri: Uri, headers: HeaderMap) -> Response {
    app.stats.served(Served::Call);
    let (name, path_and_query) = call_target(&uri, "/call-external/");
    let Some(peer) = app.config.external(name) else {
        let known: Vec<&str> = app
            .config
            .external
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let body = json!({
            "error": format!("unknown external service {name:?}"),
            "from": app.config.service,
            "external": name,
            "known": known,
        });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    forward(&app, peer, &path_and_query, &headers).await
}

/// One call to `peer` (in the mesh or outside it), its answer passed on as ours.
async fn forward(app: &App, peer: &Peer, path_and_query: &str, headers: &HeaderMap) -> Response {
    match app
        .peers
        .get(peer, path_and_query, headers, &app.stats)
        .await
    {
        // The peer's status is passed through as ours so that, e.g., a loop guard's
        // 508 three hops down surfaces unchanged at the edge of a chain.
        Ok(reply) => {
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = json!({
                "from": app.config.service,
                "version": app.config.version,
                "to": peer.name,
                "url": reply.url,
                "status": reply.status,
                "latency_ms": reply.latency_ms,
                "response_headers": reply.headers,
                "body": reply.body,
            });
            (status, Json(body)).into_response()
        }
        Err(failure) => failure_response(app, &peer.name, failure),
    }
}

fn split_call_path<'a>(path: &'a str, prefix: &str) -> (&'a str, &'a str) {
    let after = path.strip_prefix(prefix).unwrap_or_default();
    match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    }
}

fn unknown_peer(app: &App, name: &str) -> Response {
    let known: Vec<&str> = app.config.peers.iter().map(|p| p.name.as_str()).collect();
    let body = json!({
        "error": format!("unknown peer {name:?}"),
        "from": app.config.service,
        "peer": name,
        "known": known,
    });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

fn failure_response(app: &App, peer: &str, failure: Failure) -> Response {
    let latency_ms = failure.latency_ms();
    let (status, error, url) = match failure {
        Failure::Timeout { url, .. } => (
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "peer {peer:?} did not answer within {} ms",
                app.peers.timeout().as_millis()
            ),
            url,
        ),
        Failure::Unreachable { url, detail, .. } => (
            StatusCode::BAD_GATEWAY,
            format!("peer {peer:?} unreachable: {detail}"),
            url,
        ),
    };
    let body = json!({
        "error": error,
        "from": app.config.service,
        "peer": peer,
        "url": url,
        "latency_ms": latency_ms,
    });
    (status, Json(body)).into_response()
}

/// One row of the call matrix: every peer's `/info`, all at once, always 200 — the
/// per-peer outcome is in the rows.
async fn mesh(State(app): Shared, headers: HeaderMap) -> Json<Value> {
    app.stats.served(Served::Mesh);
    let headers = Arc::new(headers);
    let tasks: Vec<_> = (0..app.config.peers.len())
        .map(|i| {
            let app = Arc::clone(&app);
            let headers = Arc::clone(&headers);
            tokio::spawn(async move {
                let peer = &app.config.peers[i];
                let row = match app.peers.get(peer, "/info", &headers, &app.stats).await {
                    Ok(reply) => json!({
                        "to": peer.name,
                        "status": reply.status,
                        "latency_ms": reply.latency_ms,
                        "ok": (200..300).contains(&reply.status),
                    }),
                    Err(failure) => {
                        let error = match &failure {
                            Failure::Timeout { .. } => {
                                format!("timed out after {} ms", app.peers.timeout().as_millis())
                            }
                            Failure::Unreachable { detail, .. } => detail.clone(),
                        };
                        json!({
                            "to": peer.name,
                            "status": Value::Null,
                            "latency_ms": failure.latency_ms(),
                            "ok": false,
                            "error": error,
                        })
                    }
                };
                row
            })
        })
        .collect();

    let mut results = Vec::with_capacity(tasks.len());
    for (task, peer) in tasks.into_iter().zip(&app.config.peers) {
        // A panicking call task must not take the whole row down with it.
        results.push(task.await.unwrap_or_else(|err| {
            json!({"to": peer.name, "status": Value::Null, "latency_ms": 0.0,
                   "ok": false, "error": format!("internal: {err}")})
        }));
    }
    Json(json!({"from": app.config.service, "results": results}))
}

async fn stats(State(app): Shared) -> Json<Value> {
    Json(serde_json::to_value(app.stats.snapshot()).unwrap_or_default())
}

async fn not_found(State(app): Shared, uri: Uri) -> Response {
    let body = json!({
        "error": format!("no endpoint at {}", uri.path()),
        "from": app.config.service,
        "endpoints": ["/info", "/delay/{ms}", "/call/{peer}", "/call/{peer}/{path}", "/mesh", "/healthz", "/stats"],
    });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// Enabled by `LOG=1`; one line per request, written after the response is known.
async fn log_request(State(app): Shared, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let response = next.run(req).await;
    eprintln!(
        "{} {} {} -> {} in {:.3} ms",
        app.config.service,
        method,
        uri,
        response.status().as_u16(),
        started.elapsed().as_micros() as f64 / 1000.0
    );
    response
}

#[cfg(test)]
mod tests {
    use super::split_call_path;

    #[test]
    fn call_paths_split_into_peer_and_rest() {
        assert_eq!(split_call_path("/call/b", "/call/"), ("b", ""));
        assert_eq!(split_call_path("/call/b/", "/call/"), ("b", "/"));
        assert_eq!(
            split_call_path("/call/b/call/a/x%2Fy", "/call/"),
            ("b", "/call/a/x%2Fy")
        );
    }
}
