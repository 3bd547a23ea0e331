//! Envoy bootstraps for local sidecars and the gateway, built as JSON values (never text
//! templates). A sidecar has an inbound listener in front of its app (mTLS and, in PERMISSIVE
//! mode, plain HTTP, as Istio's) and an outbound listener the app uses as its HTTP proxy, which
//! routes by host to the peers' inbound listeners over mTLS. What istiod pushes for the same
//! mesh is the reference (tests/istio holds them to it): an RBAC filter admits the callers, the
//! meshtally filter runs after it, and routes carry the services' traffic rules (built by
//! [`crate::routes`]).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::cluster::{socket, static_cluster};
use crate::routes::{self, Upstream};
use crate::tls::{common_tls, Tls};
use meshtally_mesh::model::traffic::Millis;

pub use meshtally_mesh::model::MtlsMode;

#[derive(Debug, Clone)]
pub struct Inbound {
    pub port: u16,
    pub app_port: u16,
    pub plugin_config: Value,
    /// `None`: plain HTTP only (used by tests of the filter alone).
    pub tls: Option<(Tls, MtlsMode)>,
    /// SPIFFE URIs allowed to call over mTLS, admitted by an RBAC filter as Istio's
    /// AuthorizationPolicy is (others get 403); empty allows any certificate from the CA.
    pub allowed_peers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Outbound {
    pub port: u16,
    pub plugin_config: Value,
    pub peers: Vec<Upstream>,
}

/// The gateway's front listener: `/<service>/…` → that service, prefix stripped, through the
/// gateway's own outbound listener (which originates mTLS).
#[derive(Debug, Clone)]
pub struct Ingress {
    pub port: u16,
    /// Each service and its route timeout.
    pub services: Vec<(String, Millis)>,
    pub outbound_port: u16,
}

/// What sits in each HTTP filter chain before the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// The meshtally module.
    Wasm(PathBuf),
    /// Nothing: an Istio FAIL_OPEN plugin whose module or config failed.
    Skipped,
    /// Nothing: the WasmPlugin does not select this proxy. The rendered plugin selects the
    /// mesh's workloads, so Istio's ingress gateway (istio-system) runs no meshtally filter.
    NotSelected,
    /// Deny everything (RBAC with no policy): an Istio FAIL_CLOSE plugin that failed.
    DenyAll,
}

#[derive(Debug, Clone)]
pub struct Proxy {
    pub filter: Filter,
    /// Envoy's `failure_policy` for the filter: FAIL_OPEN lets traffic through a broken VM,
    /// as an Istio WasmPlugin's `failStrategy: FAIL_OPEN` does.
    pub fail_open: bool,
    pub node_metadata: Value,
    pub admin_port: u16,
    pub inbound: Option<Inbound>,
    pub outbound: Option<Outbound>,
    pub ingress: Option<Ingress>,
}

/// `stats_tags` that turn meshtally's encoded names into Prometheus labels.
pub fn stats_tags() -> Value {
    meshtally_wire::metrics::stats_tags()
        .iter()
        .map(|(tag, regex)| json!({"tag_name": tag, "regex": regex}))
        .collect()
}

pub fn render(proxy: &Proxy) -> Value {
    let mut listeners = Vec::new();
    let mut clusters = Vec::new();
    if let Some(inbound) = &proxy.inbound {
        listeners.push(inbound_listener(proxy, inbound));
        clusters.push(static_cluster("app", &[inbound.app_port], None));
    }
    if let Some(outbound) = &proxy.outbound {
        listeners.push(outbound_listener(proxy, outbound));
        for peer in &outbound.peers {
            clusters.extend(routes::clusters(peer));
        }
    }
    if let Some(ingress) = &proxy.ingress {
        listeners.push(ingress_listener(ingress));
        clusters.push(static_cluster(
            "gateway-outbound",
            &[ingress.outbound_port],
            None,
        ));
    }
    json!({
        "node": {"id": "meshtally-local", "cluster": "meshtally", "metadata": proxy.node_metadata},
        "admin": {"address": socket(proxy.admin_port)},
        "stats_config": {"stats_tags": stats_tags()},
        // Histograms reach the admin endpoint only when stats flush; flush often so tests and
        // `deployer stats` see durations promptly.
        "stats_flush_interval": "0.2s",
        "static_resources": {"listeners": listeners, "clusters": clusters},
    })
}

pub fn wasm_filter(wasm: &Path, config: &Value, fail_open: bool) -> Value {
    let configuration = match config {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    json!({
        "name": "meshtally",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "meshtally",
                "root_id": "meshtally",
                "failure_policy": if fail_open { "FAIL_OPEN" } else { "FAIL_CLOSED" },
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": configuration},
                "vm_config": {
                    // Names the module (a content-addressed copy), so the filter's log lines
                    // say which build a sidecar runs.
                    "vm_id": crate::module::vm_id(wasm),
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm.display().to_string()}},
                },
            },
        },
    })
}

/// The proxy's filter, if any, then the router.
fn http_filters(proxy: &Proxy, config: &Value) -> Vec<Value> {
    let first = match &proxy.filter {
        Filter::Wasm(path) => Some(wasm_filter(path, config, proxy.fail_open)),
        Filter::Skipped | Filter::NotSelected => None,
        // An RBAC filter with ALLOW and no policies matches nothing: every request gets 403,
        // which is how Istio blocks traffic for a FAIL_CLOSE plugin it could not load.
        Filter::DenyAll => Some(json!({
            "name": "envoy.filters.http.rbac",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                "rules": {"action": "ALLOW", "policies": {}},
            },
        })),
    };
    first.into_iter().chain([router()]).collect()
}

fn router() -> Value {
    json!({"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
}

fn hcm(stat_prefix: &str, http_filters: Vec<Value>, virtual_hosts: Value) -> Value {
    json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": stat_prefix,
            "route_config": {"name": stat_prefix, "virtual_hosts": virtual_hosts},
            "http_filters": http_filters,
        },
    })
}

/// Istio's AuthorizationPolicy as istiod renders it: an ALLOW RBAC filter whose one policy
/// admits exactly these authenticated SPIFFE identities.
fn rbac(allowed: &[String]) -> Value {
    let principals: Vec<Value> = allowed
        .iter()
        .map(|uri| json!({"authenticated": {"principal_name": {"exact": uri}}}))
        .collect();
    json!({
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": {"meshtally-callers": {
                "permissions": [{"any": true}],
                "principals": principals,
            }}},
        },
    })
}

fn inbound_listener(proxy: &Proxy, inbound: &Inbound) -> Value {
    let vhosts = json!([{"name": "app", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]);
    let filters = || http_filters(proxy, &inbound.plugin_config);
    let plain = json!({"filters": [hcm("inbound_plain", filters(), vhosts.clone())]});
    let Some((tls, mode)) = &inbound.tls else {
        return json!({"name": "inbound", "traffic_direction": "INBOUND", "address": socket(inbound.port), "filter_chains": [plain]});
    };
    let validation = json!({"trusted_ca": {"filename": tls.ca.display().to_string()}});
    // Authorization first, then the filter (phase STATS runs after AUTHZ), as istiod orders
    // them. The plain-HTTP chain of PERMISSIVE has no RBAC, so a sidecar can be curled directly
    // (on Istio the AuthorizationPolicy would refuse a caller without a principal).
    let mut mtls_filters = filters();
    if !inbound.allowed_peers.is_empty() {
        mtls_filters.insert(0, rbac(&inbound.allowed_peers));
    }
    let mtls = json!({
        "filter_chain_match": {"transport_protocol": "tls"},
        "filters": [hcm("inbound_mtls", mtls_filters, vhosts)],
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": true,
                "common_tls_context": common_tls(tls, validation),
            },
        },
    });
    let mut chains = vec![mtls];
    if *mode == MtlsMode::Permissive {
        chains.push(plain);
    }
    json!({
        "name": "inbound",
        "traffic_direction": "INBOUND",
        "address": socket(inbound.port),
        "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
        "filter_chains": chains,
    })
}

fn outbound_listener(proxy: &Proxy, outbound: &Outbound) -> Value {
    let vhosts: Vec<Value> = outbound.peers.iter().map(routes::virtual_host).collect();
    // Faults are injected before anything else sees the request, as in istiod's outbound
    // chain (the fault filter precedes the STATS-phase plugins).
    let mut filters = http_filters(proxy, &outbound.plugin_config);
    filters.insert(0, routes::fault_filter());
    json!({
        "name": "outbound",
        "traffic_direction": "OUTBOUND",
        "address": socket(outbound.port),
        "filter_chains": [{"filters": [hcm("outbound", filters, Value::Array(vhosts))]}],
    })
}

fn ingress_listener(ingress: &Ingress) -> Value {
    // Rewriting the host to the service name routes the call to the right peer through the
    // gateway's outbound listener, and gives the callee the destination it names, as an Istio
    // gateway's VirtualService route does.
    // `GET /` lists the routes, so a newcomer's first `curl localhost:8080/` says where to go
    // instead of an empty 404 (a local nicety: Istio's gateway has no such route).
    let listing: String = ingress
        .services
        .iter()
        .map(|(s, _)| format!("  /{s}/...  ->  {s} (e.g. /{s}/info)\n"))
        .collect();
    let index = json!({
        "match": {"path": "/"},
        "direct_response": {
            "status": 200,
            "body": {"inline_string": format!("meshtally ingress gateway: routes\n{listing}")},
        },
        "response_headers_to_add": [{"header": {"key": "content-type", "value": "text/plain"}}],
    });
    let routes: Vec<Value> = std::iter::once(index)
        .chain(ingress.services.iter().flat_map(|(s, timeout)| {
            let route = |rewrite: &str| {
                json!({"cluster": "gateway-outbound", "prefix_rewrite": rewrite, "host_rewrite_literal": s, "timeout": timeout.envoy()})
            };
            [
                json!({"match": {"prefix": format!("/{s}/")}, "route": route("/")}),
                json!({"match": {"path": format!("/{s}")}, "route": route("/")}),
            ]
        }))
        .collect();
    let vhosts = json!([{"name": "gateway", "domains": ["*"], "routes": routes}]);
    json!({
        "name": "ingress",
        "address": socket(ingress.port),
        "filter_chains": [{"filters": [hcm("ingress", vec![router()], vhosts)]}],
    })
}
