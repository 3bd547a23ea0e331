//! `deployer verify`: calls every ordered pair through the gateway (`/x/call/y`) and checks that
//! the call worked and was tagged: the callee saw `x-mesh-source: x` proven by mTLS, and the
//! client got `x-mesh-served-by: x`. Prints the N×N matrix, or JSON.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use meshtally_wire::headers;
use serde::Serialize;

use crate::table::Table;
use meshtally_envoy::http;

/// Where the gateway is: host and port.
#[derive(Debug, Clone)]
pub(crate) struct Gateway {
    pub host: String,
    pub port: u16,
}

impl Gateway {
    /// Parses `http://host[:port]` (port 80 by default) or `host:port`.
    pub(crate) fn parse(url: &str) -> Result<Gateway> {
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
pub(crate) struct PairResult {
    pub from: String,
    pub to: String,
    pub ok: bool,
    pub status: Option<u16>,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub ok: bool,
    pub services: Vec<String>,
    pub pairs: Vec<PairResult>,
}

/// Calls every ordered pair of `services`, a few at a time (each call mostly waits on the
/// mesh), and reports them in order.
pub(crate) fn verify(gateway: &Gateway, services: &[String], timeout: Duration) -> Report {
    let pairs: Vec<(&String, &String)> = services
        .iter()
        .flat_map(|a| {
            services
                .iter()
                .filter(move |b| *b != a)
                .map(move |b| (a, b))
        })
        .collect();
    let pairs = meshtally_mesh::parallel::map(&pairs, PARALLEL, |(from, to)| {
        check_pair(gateway, from, to, timeout)
    });
    Report {
        ok: pairs.iter().all(|p| p.ok),
        services: services.to_vec(),
        pairs,
    }
}

/// Calls in flight at once.
const PARALLEL: usize = 8;

fn check_pair(gateway: &Gateway, from: &str, to: &str, timeout: Duration) -> PairResult {
    let begin = Instant::now();
    let url = format!("http://{}:{}/{from}/call/{to}", gateway.host, gateway.port);
    let resp = http::get(&url, timeout);
    let latency_ms = begin.elapsed().as_secs_f64() * 1000.0;
    let (status, error) = match resp {
        Err(e) => (None, Some(format!("{e:#}"))),
        Ok(r) => (
            Some(r.status),
            problem(
                r.status,
                r.header(headers::SERVED_BY).as_deref(),
                &r.body,
                from,
            )
            .err(),
        ),
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

/// A header's value as the user should read it: quoted, or "missing" (never Rust's `None`).
fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "missing".to_owned(), |v| format!("{v:?}"))
}

/// What is wrong with a `/from/call/to` answer, if anything: its status, the gateway's
/// `x-mesh-served-by`, and the headers the callee echoed in its JSON body.
fn problem(status: u16, served_by: Option<&str>, body: &[u8], from: &str) -> Result<(), String> {
    if status != 200 {
        let text = String::from_utf8_lossy(body);
        return Err(format!(
            "status {status}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    if served_by != Some(from) {
        return Err(format!(
            "{} is {}, expected {from:?} (is the filter loaded?)",
            headers::SERVED_BY,
            shown(served_by)
        ));
    }
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("the answer is not the demo service's JSON: {e}"))?;
    let seen = &json["body"]["request_headers"];
    let source = seen[headers::SOURCE].as_str();
    if source != Some(from) {
        return Err(format!(
            "callee saw {} {}, expected {from:?}",
            headers::SOURCE,
            shown(source)
        ));
    }
    let verified = seen[headers::PEER_VERIFIED].as_str();
    if verified != Some("true") {
        return Err(format!(
            "callee saw {} {}, expected \"true\"",
            headers::PEER_VERIFIED,
            shown(verified)
        ));
    }
    Ok(())
}

impl Report {
    /// Rows are callers, columns callees: ✓ with the latency, or ✗ with the status.
    pub(crate) fn matrix(&self) -> String {
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

    /// Under fail-open the filter is skipped, so the tags are missing: said in words.
    #[test]
    fn missing_tags_are_named_not_debug_printed() {
        let untagged = br#"{"body":{"request_headers":{}}}"#;
        let err = problem(200, None, untagged, "service-a").unwrap_err();
        assert_eq!(
            err,
            "x-mesh-served-by is missing, expected \"service-a\" (is the filter loaded?)"
        );
        let err = problem(200, Some("service-a"), untagged, "service-a").unwrap_err();
        assert_eq!(
            err,
            "callee saw x-mesh-source missing, expected \"service-a\""
        );
        let tagged = br#"{"body":{"request_headers":{"x-mesh-source":"service-a","x-mesh-peer-verified":"true"}}}"#;
        assert_eq!(problem(200, Some("service-a"), tagged, "service-a"), Ok(()));
        let err = problem(200, Some("service-b"), tagged, "service-a").unwrap_err();
        assert!(
            err.starts_with("x-mesh-served-by is \"service-b\""),
            "{err}"
        );
        assert!(problem(503, None, b"no healthy upstream", "a")
            .unwrap_err()
            .starts_with("status 503: no healthy upstream"));
    }
}
