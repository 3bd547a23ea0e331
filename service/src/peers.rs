//! Outbound calls to peers: one pooled HTTP/1 client, optionally aimed at the local
//! sidecar as a forward proxy, with a hard per-call deadline and the outcome recorded
//! in the app's own stats.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::http::HeaderMap;
use serde_json::Value;

use crate::config::{Config, Peer};
use crate::headers;
use crate::stats::{CallOutcome, Stats};

pub struct PeerClient {
    client: reqwest::Client,
    timeout: Duration,
}

/// A completed exchange: the peer (or whatever answered for it, e.g. a sidecar that
/// returned 503) sent a full HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub url: String,
    pub status: u16,
    pub latency_ms: f64,
    pub headers: BTreeMap<String, String>,
    /// The peer's JSON, or its raw text as a JSON string when it is not JSON.
    pub body: Value,
}

/// No HTTP response was obtained.
#[derive(Debug)]
pub enum Failure {
    Timeout {
        url: String,
        latency_ms: f64,
    },
    /// Connection refused or reset, DNS failure, garbled response: nothing answered.
    Unreachable {
        url: String,
        latency_ms: f64,
        detail: String,
    },
}

impl Failure {
    pub fn latency_ms(&self) -> f64 {
        match self {
            Failure::Timeout { latency_ms, .. } | Failure::Unreachable { latency_ms, .. } => {
                *latency_ms
            }
        }
    }
}

impl PeerClient {
    pub fn new(cfg: &Config) -> Result<Self> {
        // `no_proxy` first: without it reqwest would obey HTTP_PROXY & co. from the
        // environment, and a pod's outbound path must be exactly what MESH_PROXY says.
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .user_agent(concat!("demo-service/", env!("CARGO_PKG_VERSION")));
        if let Some(proxy) = &cfg.mesh_proxy {
            // For http:// targets reqwest then sends the absolute-form request line
            // (GET http://peer:port/path) with Host = peer, which is what a sidecar's
            // outbound listener needs to route without iptables redirection.
            let proxy = reqwest::Proxy::all(proxy.as_str())
                .with_context(|| format!("using MESH_PROXY {proxy}"))?;
            builder = builder.proxy(proxy);
        }
        let client = builder.build().context("building the peer HTTP client")?;
        Ok(PeerClient {
            client,
            timeout: cfg.peer_timeout,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// GETs `path_and_query` (which starts with '/') from `peer`, carrying only the
    /// propagated subset of `inbound`, and counts the outcome in `stats`.
    pub async fn get(
        &self,
        peer: &Peer,
        path_and_query: &str,
        inbound: &HeaderMap,
        stats: &Stats,
    ) -> Result<Reply, Failure> {
        let url = format!("{}{}", peer.base, path_and_query);
        let started = Instant::now();
        let request = self
            .client
            .get(&url)
            .headers(headers::propagated(inbound))
            .send();
        // One deadline over connect + headers + body, so a peer that trickles its
        // body cannot hold the caller past PEER_TIMEOUT_MS.
        let exchange = async {
            let response = request.await?;
            let status = response.status().as_u16();
            let headers = headers::to_json(response.headers());
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, bytes))
        };
        let result = tokio::time::timeout(self.timeout, exchange).await;
        let latency_ms = elapsed_ms(started);

        let outcome = match result {
            Err(_elapsed) => Err(Failure::Timeout { url, latency_ms }),
            Ok(Err(err)) => Err(Failure::Unreachable {
                url,
                latency_ms,
                detail: error_chain(&err),
            }),
            Ok(Ok((status, headers, bytes))) => Ok(Reply {
                url,
                status,
                latency_ms,
                headers,
                body: parse_body(&bytes),
            }),
        };
        stats.call(
            &peer.name,
            match &outcome {
                Ok(reply) => CallOutcome::Status(reply.status),
                Err(Failure::Timeout { .. }) => CallOutcome::Timeout,
                Err(Failure::Unreachable { .. }) => CallOutcome::Unreachable,
            },
        );
        outcome
    }
}

fn parse_body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// Microsecond resolution: on loopback most calls take well under a millisecond.
fn elapsed_ms(started: Instant) -> f64 {
    started.elapsed().as_micros() as f64 / 1000.0
}

/// reqwest's top-level message ("error sending request") hides the useful part
/// ("Connection refused") in its sources; show the whole chain on one line.
fn error_chain(err: &reqwest::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_json_bodies_become_strings() {
        assert_eq!(parse_body(br#"{"a":1}"#), serde_json::json!({"a": 1}));
        assert_eq!(
            parse_body(b"upstream connect error"),
            Value::from("upstream connect error")
        );
        assert_eq!(parse_body(b""), Value::from(""));
    }
}
