//! `deployer verify`: calls every ordered pair through the gateway (`/x/call/y`) and checks that
//! the call worked and was tagged: the callee saw `x-mesh-source: x` proven by mTLS, and the
//! client got `x-mesh-served-by: x`. Prints the N×N matrix, or JSON.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;

use crate::http;
use crate::table::Table;

/// Where the gateway is: host and port.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub host: String,
    pub port: u16,
}

impl Gateway {
    /// Parses `http://host[:port]` (port 80 by default) or `host:port`.
    pub fn parse(url: &str) -> Result<Gateway> {
        let rest = url.strip_prefix("http://").unwrap_or(url);
        if rest.starts_with("https://") || url.starts_with("https://") {
            bail!("--gateway {url}: only http:// gateways are supported");
        }
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse()
                    .map_err(|_| anyhow::anyhow!("--gateway {url}: bad port {p:?}"))?,
            ),
            None => (authority, 80),
        };
        if host.is_empty() {
            bail!("--gateway {url}: no host");
        }
        Ok(Gateway {
            host: host.to_owned(),
            port,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PairResult {
    pub from: String,
    pub to: String,
    pub ok: bool,
    pub status: Option<u16>,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    pub services: Vec<String>,
    pub pairs: Vec<PairResult>,
}

pub fn verify(gateway: &Gateway, services: &[String], timeout: Duration) -> Report {
    let pairs: Vec<(String, String)> = services
        .iter()
        .flat_map(|a| {
            services
                .iter()
                .filter(move |b| *b != a)
                .map(move |b| (a.clone(), b.clone()))
        })
        .collect();
    let queue = Mutex::new(pairs.into_iter().enumerate());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| loop {
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some((i, (from, to))) = next else { break };
                let result = check_pair(gateway, &from, &to, timeout);
                if let Ok(mut r) = results.lock() {
                    r.push((i, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    let pairs: Vec<PairResult> = results.into_iter().map(|(_, r)| r).collect();
    Report {
        ok: pairs.iter().all(|p| p.ok),
        services: services.to_vec(),
        pairs,
    }
}

fn check_pair(gateway: &Gateway, from: &str, to: &str, timeout: Duration) -> PairResult {
    let begin = Instant::now();
    let path = format!("/{from}/call/{to}");
    let resp = http::request(
        &gateway.host,
        gateway.port,
        &gateway.host,
        &path,
        &[],
        timeout,
    );
    let latency_ms = begin.elapsed().as_secs_f64() * 1000.0;
    let (status, error) = match resp {
        Err(e) => (None, Some(format!("{e:#}"))),
        Ok(r) => (Some(r.status), problem(&r, from).err()),
    };
    PairResult {
        from: from.to_owned(),
        to: to.to_owned(),
        ok: error.is_none(),
        status,
        latency_ms,
        error,
    }
}

/// What is wrong with a `/from/call/to` answer, if anything.
fn problem(resp: &http::Response, from: &str) -> Result<(), String> {
    if resp.status != 200 {
        let text = resp.text();
        return Err(format!(
            "status {}: {}",
            resp.status,
            text.chars().take(200).collect::<String>()
        ));
    }
    let served_by = resp.header("x-mesh-served-by");
    if served_by.as_deref() != Some(from) {
        return Err(format!(
            "x-mesh-served-by is {served_by:?}, expected {from:?}"
        ));
    }
    let json = resp.json().map_err(|e| e.to_string())?;
    let seen = &json["body"]["request_headers"];
    let source = seen["x-mesh-source"].as_str();
    if source != Some(from) {
        return Err(format!(
            "callee saw x-mesh-source {source:?}, expected {from:?}"
        ));
    }
    let verified = seen["x-mesh-peer-verified"].as_str();
    if verified != Some("true") {
        return Err(format!(
            "callee saw x-mesh-peer-verified {verified:?}, expected \"true\""
        ));
    }
    Ok(())
}

impl Report {
    /// Rows are callers, columns callees: ✓ with the latency, or ✗ with the status.
    pub fn matrix(&self) -> String {
        let mut header = vec!["from \\ to".to_owned()];
        header.extend(self.services.iter().cloned());
        let mut table = Table::new(header);
        for from in &self.services {
            let mut row = vec![from.clone()];
            for to in &self.services {
                let cell = match self.pairs.iter().find(|p| &p.from == from && &p.to == to) {
                    None => "—".to_owned(),
                    Some(p) if p.ok => format!("✓ {:.0}ms", p.latency_ms),
                    Some(p) => format!(
                        "✗ {}",
                        p.status.map_or("error".to_owned(), |s| s.to_string())
                    ),
                };
                row.push(cell);
            }
            table.row(row);
        }
        let mut out = table.render();
        let failed: Vec<&PairResult> = self.pairs.iter().filter(|p| !p.ok).collect();
        if failed.is_empty() {
            out.push_str(&format!("\nall {} pairs passed\n", self.pairs.len()));
        } else {
            out.push_str(&format!(
                "\n{} of {} pairs failed:\n",
                failed.len(),
                self.pairs.len()
            ));
            for p in failed {
                out.push_str(&format!(
                    "  {} → {}: {}\n",
                    p.from,
                    p.to,
                    p.error.as_deref().unwrap_or("?")
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls() {
        let g = Gateway::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((g.host.as_str(), g.port), ("127.0.0.1", 8080));
        let g = Gateway::parse("http://gw.example").unwrap();
        assert_eq!((g.host.as_str(), g.port), ("gw.example", 80));
        assert_eq!(Gateway::parse("localhost:9000").unwrap().port, 9000);
        assert!(Gateway::parse("https://x").is_err());
        assert!(Gateway::parse("http://:80").is_err());
        assert!(Gateway::parse("http://x:port").is_err());
    }
}
