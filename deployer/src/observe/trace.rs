//! `deployer trace`: recent traces from the mesh's Zipkin, as call trees. A trace's spans come
//! in pairs, the caller's CLIENT span and the callee's SERVER span; each pair is one call, shown
//! as `caller → callee`, with the version that answered, the status, the caller's duration and
//! whether a certificate proved the caller (meshtally's span tags,
//! `meshtally_wire::trace`). The gateway's own SERVER span is the tree's root.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::table::Table;
use meshtally_envoy::http;
use meshtally_wire::trace as tags;

/// A Zipkin v2 span, as far as the trees need it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Span {
    pub trace_id: String,
    pub id: String,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    /// Epoch microseconds.
    #[serde(default)]
    pub timestamp: u64,
    /// Microseconds.
    #[serde(default)]
    pub duration: u64,
    #[serde(default)]
    pub local_endpoint: Option<Endpoint>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Endpoint {
    #[serde(default)]
    pub service_name: Option<String>,
}

impl Span {
    /// The workload that wrote the span: Zipkin's service name `<app>.<namespace>`, without the
    /// namespace.
    fn service(&self) -> String {
        let full = self
            .local_endpoint
            .as_ref()
            .and_then(|e| e.service_name.as_deref())
            .unwrap_or("unknown");
        full.split('.').next().unwrap_or(full).to_owned()
    }

    fn tag(&self, name: &str) -> Option<&str> {
        self.tags.get(name).map(String::as_str)
    }

    fn status(&self) -> Option<u16> {
        self.tag("http.status_code").and_then(|s| s.parse().ok())
    }

    fn is(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }
}

/// One call of a trace: the caller's span joined with the callee's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Call {
    /// 0 for the call into the first service, one more per hop.
    pub depth: usize,
    pub source: String,
    pub destination: String,
    /// The version that answered (the callee's `istio.canonical_revision`), if an answer came
    /// from a sidecar.
    pub version: Option<String>,
    pub status: Option<u16>,
    /// As the caller measured it (its client span), else the callee.
    pub duration_ms: f64,
    /// A certificate proved the caller to the callee (`mesh.peer_verified`).
    pub mtls: bool,
    /// The caller as the callee's filter verified it (`mesh.source` on the server span).
    pub verified_caller: Option<String>,
    pub span_id: String,
}

/// A trace as `deployer trace` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Trace {
    pub trace_id: String,
    /// Where it entered the mesh (the root span's service).
    pub entry: String,
    pub method: Option<String>,
    pub url: Option<String>,
    pub status: Option<u16>,
    pub duration_ms: f64,
    /// Epoch microseconds of the root span.
    pub start_us: u64,
    pub spans: usize,
    pub calls: Vec<Call>,
}

impl Trace {
    /// Its calls' statuses and the root's.
    fn statuses(&self) -> impl Iterator<Item = Option<u16>> + '_ {
        std::iter::once(self.status).chain(self.calls.iter().map(|c| c.status))
    }

    /// Whether it involves `service` (as caller, callee or entry).
    fn involves(&self, service: &str) -> bool {
        self.entry == service
            || self
                .calls
                .iter()
                .any(|c| c.source == service || c.destination == service)
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The calls of one trace's spans: each CLIENT span with its SERVER child, and a SERVER span
/// under a SERVER span as a call whose caller span is missing (an untraced hop).
pub(crate) fn assemble(mut spans: Vec<Span>) -> Option<Trace> {
    spans.sort_by_key(|s| s.timestamp);
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.id.as_str()).collect();
    let root = spans
        .iter()
        .find(|s| s.parent_id.as_deref().is_none_or(|p| !ids.contains(p)))?
        .clone();
    let mut children: HashMap<&str, Vec<&Span>> = HashMap::new();
    for s in &spans {
        if let Some(p) = s.parent_id.as_deref() {
            // Zipkin merges a shared span id's two halves; a span is never its own child.
            if p != s.id {
                children.entry(p).or_default().push(s);
            }
        }
    }
    let mut calls = Vec::new();
    walk(&root, 0, &children, &mut calls);
    Some(Trace {
        trace_id: root.trace_id.clone(),
        entry: root.service(),
        method: root.tag("http.method").map(str::to_owned),
        url: root.tag("http.url").map(str::to_owned),
        status: root.status(),
        duration_ms: ms(root.duration),
        start_us: root.timestamp,
        spans: spans.len(),
        calls,
    })
}

fn walk(span: &Span, depth: usize, children: &HashMap<&str, Vec<&Span>>, out: &mut Vec<Call>) {
    for child in children.get(span.id.as_str()).into_iter().flatten() {
        if child.is("CLIENT") {
            let server = children
                .get(child.id.as_str())
                .and_then(|c| c.iter().find(|s| s.is("SERVER")));
            let destination = match server {
                Some(s) => s.service(),
                // No answer from a sidecar: the callee from the route's cluster (`svc|v1`).
                None => child
                    .tag("upstream_cluster")
                    .and_then(|c| c.split('|').next())
                    .unwrap_or("unknown")
                    .to_owned(),
            };
            out.push(Call {
                depth,
                source: child.service(),
                destination,
                version: server.and_then(|s| s.tag(tags::VERSION)).map(str::to_owned),
                status: child.status().or_else(|| server.and_then(|s| s.status())),
                duration_ms: ms(child.duration),
                mtls: server.and_then(|s| s.tag(tags::PEER_VERIFIED)) == Some("true"),
                verified_caller: server.and_then(|s| s.tag(tags::SOURCE)).map(str::to_owned),
                span_id: child.id.clone(),
            });
            match server {
                Some(s) => walk(s, depth + 1, children, out),
                None => walk(child, depth + 1, children, out),
            }
        } else if child.is("SERVER") && span.is("SERVER") {
            out.push(Call {
                depth,
                source: span.service(),
                destination: child.service(),
                version: child.tag(tags::VERSION).map(str::to_owned),
                status: child.status(),
                duration_ms: ms(child.duration),
                mtls: child.tag(tags::PEER_VERIFIED) == Some("true"),
                verified_caller: child.tag(tags::SOURCE).map(str::to_owned),
                span_id: child.id.clone(),
            });
            walk(child, depth + 1, children, out);
        } else {
            walk(child, depth, children, out);
        }
    }
}

/// Which traces to list.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    /// Only traces through this service.
    pub service: Option<String>,
    pub last: usize,
    pub min_duration: Option<Duration>,
    pub status: Option<super::tap::StatusMatch>,
    /// Only traces where `service`'s span carries this tag (Zipkin's annotationQuery): an
    /// edge's traces are the callee's spans tagged with the verified caller.
    pub tag: Option<(String, String)>,
}

/// A Zipkin's API (the local mesh's, or a cluster's port-forwarded one).
pub(crate) struct Zipkin {
    pub url: String,
    /// The mesh's namespace: Zipkin names services `<app>.<namespace>`.
    pub namespace: String,
}

const TIMEOUT: Duration = Duration::from_secs(10);

impl Zipkin {
    fn get(&self, path: &str) -> Result<http::Response> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        http::get(&url, TIMEOUT)
            .with_context(|| format!("cannot reach the trace backend at {}", self.url))
    }

    /// One trace by id.
    pub(crate) fn trace(&self, id: &str) -> Result<Trace> {
        if id.is_empty() || id.len() > 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("trace id {id:?} is not 16 or 32 hex digits");
        }
        let r = self.get(&format!("/api/v2/trace/{}", id.to_ascii_lowercase()))?;
        if r.status == 404 {
            bail!(
                "no trace {id} in the trace backend at {} (it keeps recent traces in memory only)",
                self.url
            );
        }
        if r.status != 200 {
            bail!(
                "the trace backend at {} answered {} for trace {id}",
                self.url,
                r.status
            );
        }
        let spans: Vec<Span> = serde_json::from_slice(&r.body)
            .with_context(|| format!("trace {id} from {} is not Zipkin v2 JSON", self.url))?;
        assemble(spans).with_context(|| format!("trace {id} has no spans"))
    }

    /// Recent traces, newest first, as the query asks.
    pub(crate) fn traces(&self, q: &Query) -> Result<Vec<Trace>> {
        let mut path = "/api/v2/traces?lookback=3600000".to_owned();
        // Ask for more than shown when filtering here, so --last still gets its count.
        let filtering = q.status.is_some() || q.service.is_some();
        let limit = if filtering {
            q.last.max(1) * 20
        } else {
            q.last.max(1)
        };
        path.push_str(&format!("&limit={}", limit.min(10_000)));
        if let Some(s) = &q.service {
            path.push_str(&format!("&serviceName={s}.{}", self.namespace));
        }
        if let Some((tag, value)) = &q.tag {
            path.push_str(&format!("&annotationQuery={tag}%3D{value}"));
        }
        if let Some(d) = q.min_duration {
            path.push_str(&format!("&minDuration={}", d.as_micros().max(1)));
        }
        let r = self.get(&path)?;
        if r.status != 200 {
            bail!(
                "the trace backend at {} answered {} for {path}",
                self.url,
                r.status
            );
        }
        let raw: Vec<Vec<Span>> = serde_json::from_slice(&r.body)
            .with_context(|| format!("traces from {} are not Zipkin v2 JSON", self.url))?;
        let mut traces: Vec<Trace> = raw.into_iter().filter_map(assemble).collect();
        traces.retain(|t| {
            q.status.is_none_or(|m| t.statuses().any(|s| m.matches(s)))
                && q.service.as_deref().is_none_or(|s| t.involves(s))
        });
        traces.sort_by_key(|t| std::cmp::Reverse(t.start_us));
        traces.truncate(q.last);
        Ok(traces)
    }
}

impl Zipkin {
    /// The web UI's page of one trace.
    pub(crate) fn ui_trace(&self, id: &str) -> String {
        format!("{}/zipkin/traces/{id}", self.url.trim_end_matches('/'))
    }
}

/// Traces as indented call trees, each call a row of one aligned table.
pub(crate) fn render(traces: &[Trace]) -> String {
    if traces.is_empty() {
        return "no traces yet: send requests through the gateway (spans reach the backend within about 5 s)\n".to_owned();
    }
    let mut out = String::new();
    for t in traces {
        out.push_str(&format!(
            "trace {}  {} {}  {}  {:.1} ms  {} spans\n",
            t.trace_id,
            t.method.as_deref().unwrap_or("-"),
            t.url.as_deref().map_or("-", path_of),
            status_text(t.status),
            t.duration_ms,
            t.spans,
        ));
        let mut table = Table::new(
            ["CALL", "VERSION", "STATUS", "DURATION", "MTLS"]
                .map(String::from)
                .to_vec(),
        );
        for c in &t.calls {
            table.row(vec![
                format!(
                    "{}{} → {}",
                    "  ".repeat(c.depth + 1),
                    c.source,
                    c.destination
                ),
                c.version.clone().unwrap_or_else(|| "-".to_owned()),
                status_text(c.status),
                format!("{:.1} ms", c.duration_ms),
                if c.mtls {
                    "✓".to_owned()
                } else {
                    "-".to_owned()
                },
            ]);
        }
        out.push_str(&table.render());
        out.push('\n');
    }
    out
}

fn status_text(s: Option<u16>) -> String {
    s.map_or_else(|| "-".to_owned(), |s| s.to_string())
}

/// The path of a span's `http.url`.
fn path_of(url: &str) -> &str {
    url.split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn span(
        id: &str,
        parent: Option<&str>,
        kind: &str,
        svc: &str,
        tags: serde_json::Value,
    ) -> serde_json::Value {
        json!({"traceId": "t1", "id": id, "parentId": parent, "kind": kind, "timestamp": id.len() as u64,
               "duration": 2000, "localEndpoint": {"serviceName": svc}, "tags": tags})
    }

    #[test]
    fn client_and_server_spans_pair_into_calls_down_the_chain() {
        let spans: Vec<Span> = serde_json::from_value(json!([
            span("a", None, "SERVER", "istio-ingressgateway.istio-system", json!({"http.status_code": "200", "http.method": "GET", "http.url": "http://service-c/service-c/call/service-a"})),
            span("ab", Some("a"), "CLIENT", "istio-ingressgateway.istio-system", json!({"http.status_code": "200"})),
            span("abc", Some("ab"), "SERVER", "service-c.ns", json!({"http.status_code": "200", "istio.canonical_revision": "v2", "mesh.peer_verified": "true", "mesh.source": "istio-ingressgateway-service-account"})),
            span("abcd", Some("abc"), "CLIENT", "service-c.ns", json!({"http.status_code": "503", "upstream_cluster": "service-a|v1"})),
        ]))
        .unwrap();
        let t = assemble(spans).unwrap();
        assert_eq!(t.entry, "istio-ingressgateway");
        assert_eq!(t.calls.len(), 2);
        assert_eq!(
            (t.calls[0].source.as_str(), t.calls[0].destination.as_str()),
            ("istio-ingressgateway", "service-c")
        );
        assert_eq!(t.calls[0].version.as_deref(), Some("v2"));
        assert!(t.calls[0].mtls);
        // No server span: the call never reached a sidecar; the callee comes from the route.
        assert_eq!(
            (
                t.calls[1].depth,
                t.calls[1].destination.as_str(),
                t.calls[1].status
            ),
            (1, "service-a", Some(503))
        );
        assert!(!t.calls[1].mtls);
        let text = render(&[t]);
        assert!(text.contains("GET /service-c/call/service-a"), "{text}");
        assert!(text.contains("    service-c → service-a"), "{text}");
    }
}
