//! The dashboard's web server, on 127.0.0.1 only: the page (static assets built into the
//! binary, nothing fetched from anywhere at run time), `/api/graph` (the latest graph the
//! [`Feed`] built, or one by its `seq`), and `/api/tap` (the last calls of a node or an edge).

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::graph::Graph;

const INDEX: &str = include_str!("assets/index.html");
const APP: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");
/// How many graphs are kept for `/api/graph?seq=N` (a client that drew N asks for it).
const KEPT: usize = 30;

/// The graphs built so far (the newest last), shared between the reader thread and the server.
#[derive(Default)]
pub(crate) struct Feed {
    graphs: Mutex<VecDeque<(u64, Arc<str>)>>,
}

impl Feed {
    pub(crate) fn publish(&self, graph: &Graph) -> Result<()> {
        let json: Arc<str> = serde_json::to_string(graph)?.into();
        let mut graphs = self
            .graphs
            .lock()
            .map_err(|_| anyhow::anyhow!("feed poisoned"))?;
        graphs.push_back((graph.seq, json));
        while graphs.len() > KEPT {
            graphs.pop_front();
        }
        Ok(())
    }

    fn get(&self, seq: Option<u64>) -> Option<Arc<str>> {
        let graphs = self.graphs.lock().ok()?;
        match seq {
            Some(seq) => graphs
                .iter()
                .find(|(s, _)| *s == seq)
                .map(|(_, g)| g.clone()),
            None => graphs.back().map(|(_, g)| g.clone()),
        }
    }
}

/// Which calls `/api/tap` returns: an edge's (`source` and `destination`) or a node's
/// (`service`, as caller or callee).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct TapQuery {
    pub source: Option<String>,
    pub destination: Option<String>,
    pub service: Option<String>,
}

/// The last few tap lines for a query, or why there are none.
pub(crate) type Tap = dyn Fn(&TapQuery) -> Result<Vec<String>> + Send + Sync;

/// The recent traces of an edge or a node (`[{trace_id, status, duration_ms, url}]`, the url
/// the trace backend's own page), or why there are none.
pub(crate) type Traces = dyn Fn(&TapQuery) -> Result<serde_json::Value> + Send + Sync;

#[derive(Clone)]
struct App {
    feed: Arc<Feed>,
    tap: Arc<Tap>,
    traces: Arc<Traces>,
}

/// Serves until `stop` is set (checked every 200 ms).
pub(crate) fn serve(
    listener: TcpListener,
    feed: Arc<Feed>,
    tap: Arc<Tap>,
    traces: Arc<Traces>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the dashboard's runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = Router::new()
            .route(
                "/",
                get(|| async { asset("text/html; charset=utf-8", INDEX) }),
            )
            .route(
                "/app.js",
                get(|| async { asset("text/javascript; charset=utf-8", APP) }),
            )
            .route(
                "/style.css",
                get(|| async { asset("text/css; charset=utf-8", STYLE) }),
            )
            .route("/api/graph", get(graph))
            .route("/api/tap", get(tap_lines))
            .route("/api/traces", get(recent_traces))
            .with_state(App { feed, tap, traces });
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
            .await
            .context("serving the dashboard")
    })
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn json(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct GraphQuery {
    seq: Option<u64>,
}

async fn graph(State(app): State<App>, Query(q): Query<GraphQuery>) -> Response {
    match app.feed.get(q.seq) {
        Some(graph) => json(graph.to_string()),
        None if q.seq.is_some() => {
            (StatusCode::NOT_FOUND, "no such graph any more").into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the first read is under way",
        )
            .into_response(),
    }
}

async fn recent_traces(State(app): State<App>, Query(q): Query<TapQuery>) -> Response {
    let traces = app.traces.clone();
    let found = tokio::task::spawn_blocking(move || traces(&q)).await;
    let body = match found {
        Ok(Ok(traces)) => serde_json::json!({ "traces": traces }),
        Ok(Err(e)) => serde_json::json!({ "traces": [], "hint": format!("{e:#}") }),
        Err(e) => serde_json::json!({ "traces": [], "hint": e.to_string() }),
    };
    json(body.to_string())
}

async fn tap_lines(State(app): State<App>, Query(q): Query<TapQuery>) -> Response {
    let tap = app.tap.clone();
    let lines = tokio::task::spawn_blocking(move || tap(&q)).await;
    let body = match lines {
        Ok(Ok(lines)) => serde_json::json!({ "lines": lines }),
        Ok(Err(e)) => serde_json::json!({ "lines": [], "hint": format!("{e:#}") }),
        Err(e) => serde_json::json!({ "lines": [], "hint": e.to_string() }),
    };
    json(body.to_string())
}
