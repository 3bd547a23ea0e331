//! A connection manager's tracer, as istiod writes it for a `zipkin` extension provider
//! (pilot's `tracing.go`, for a proxy of Istio 1.29 or later): Zipkin v2 JSON through an HTTP
//! service on the collector's cluster, 128-bit trace ids, shared span context off, client and
//! overall sampling at 100 % and random sampling at the mesh's percentage, meshtally's span tags
//! (`meshtally_wire::trace::TAGS`) plus Istio's canonical-service literals, and an upstream span
//! only where the proxy is a gateway. tests/istio holds this equal to istiod's.

use serde_json::{json, Value};

use crate::cluster::static_cluster;
use meshtally_wire::trace::{TAGS, ZIPKIN_SPANS_PATH};

/// The collector's cluster in every traced proxy.
pub const COLLECTOR_CLUSTER: &str = "zipkin";
/// How long Envoy waits on the collector (istiod's default when the provider sets none).
const COLLECTOR_TIMEOUT: &str = "5s";

/// A proxy's tracer settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracing {
    /// The loopback port of the Zipkin collector.
    pub collector_port: u16,
    /// Random sampling, percent.
    pub sampling: f64,
    /// Istio's literal tags: `istio.canonical_service`, `istio.canonical_revision`,
    /// `istio.namespace`, from the proxy's workload.
    pub canonical_service: String,
    pub canonical_revision: String,
    pub namespace: String,
}

/// The collector's static cluster.
pub fn collector_cluster(t: &Tracing) -> Value {
    static_cluster(COLLECTOR_CLUSTER, &[t.collector_port], None)
}

/// Every custom tag, sorted by name as istiod sorts them.
pub fn custom_tags(t: &Tracing) -> Vec<Value> {
    let literal = |tag: &str, value: &str| json!({"tag": tag, "literal": {"value": value}});
    let mut tags: Vec<(String, Value)> = TAGS
        .iter()
        .map(|(tag, source)| {
            let v = json!({"tag": tag, "request_header": {"name": source.header, "default_value": source.default}});
            ((*tag).to_owned(), v)
        })
        .collect();
    for (tag, value) in [
        ("istio.canonical_revision", &t.canonical_revision),
        ("istio.canonical_service", &t.canonical_service),
        ("istio.namespace", &t.namespace),
    ] {
        tags.push((tag.to_owned(), literal(tag, value)));
    }
    tags.sort_by(|a, b| a.0.cmp(&b.0));
    tags.into_iter().map(|(_, v)| v).collect()
}

/// The `tracing` block of a connection manager; `spawn_upstream_span` on a gateway's only.
pub fn hcm_tracing(t: &Tracing, spawn_upstream_span: bool) -> Value {
    let mut tracing = json!({
        "client_sampling": {"value": 100.0},
        "random_sampling": {"value": t.sampling},
        "overall_sampling": {"value": 100.0},
        "custom_tags": custom_tags(t),
        "provider": {
            "name": "envoy.tracers.zipkin",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig",
                "collector_service": {"http_uri": {
                    "uri": format!("http://{COLLECTOR_CLUSTER}{ZIPKIN_SPANS_PATH}"),
                    "cluster": COLLECTOR_CLUSTER,
                    "timeout": COLLECTOR_TIMEOUT,
                }},
                "collector_endpoint_version": "HTTP_JSON",
                "trace_id_128bit": true,
                "shared_span_context": false,
            },
        },
    });
    if spawn_upstream_span {
        tracing["spawn_upstream_span"] = json!(true);
    }
    tracing
}
