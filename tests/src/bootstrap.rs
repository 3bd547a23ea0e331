//! Envoy bootstraps for test sidecars, built as JSON values (never text templates): an inbound
//! listener in front of the app (plain and/or mTLS, like Istio's PERMISSIVE/STRICT) and an
//! outbound listener that routes by host to peer sidecars.

use std::path::Path;

use serde_json::{json, Value};

use crate::certs::Identity;

/// TLS material of one sidecar.
pub struct Tls<'a> {
    pub identity: &'a Identity,
    pub ca: &'a Path,
}

pub struct Inbound<'a> {
    pub plugin_config: Value,
    pub app_port: u16,
    pub tls: Option<Tls<'a>>,
    /// Accept plain HTTP too (Istio PERMISSIVE). Ignored without `tls`.
    pub permissive: bool,
}

pub struct Peer<'a> {
    pub name: &'a str,
    pub port: u16,
    pub tls: Option<Tls<'a>>,
}

pub struct Outbound<'a> {
    pub plugin_config: Value,
    pub peers: Vec<Peer<'a>>,
}

pub struct Sidecar<'a> {
    pub wasm: &'a Path,
    pub node_metadata: Value,
    pub inbound: Option<Inbound<'a>>,
    pub outbound: Option<Outbound<'a>>,
}

/// `stats_tags` that turn meshtally's encoded names into Prometheus labels.
pub fn stats_tags() -> Value {
    meshtally_core::metrics::stats_tags()
        .iter()
        .map(|(tag, regex)| json!({"tag_name": tag, "regex": regex}))
        .collect()
}

pub fn sidecar(spec: &Sidecar<'_>) -> Value {
    let mut listeners = Vec::new();
    let mut clusters = Vec::new();
    if let Some(inbound) = &spec.inbound {
        listeners.push(inbound_listener(spec.wasm, inbound));
        clusters.push(cluster("app", inbound.app_port, None));
    }
    if let Some(outbound) = &spec.outbound {
        listeners.push(outbound_listener(spec.wasm, outbound));
        for peer in &outbound.peers {
            clusters.push(cluster(peer.name, peer.port, peer.tls.as_ref()));
        }
    }
    json!({
        "node": {"id": "meshtally-test", "cluster": "meshtally", "metadata": spec.node_metadata},
        "admin": {"address": socket(0)},
        "stats_config": {"stats_tags": stats_tags()},
        // Histograms reach the admin endpoint only when stats flush; flush often so tests and
        // `deployer stats` see durations promptly.
        "stats_flush_interval": "0.2s",
        "static_resources": {"listeners": listeners, "clusters": clusters},
    })
}

fn socket(port: u16) -> Value {
    json!({"socket_address": {"address": "127.0.0.1", "port_value": port}})
}

pub fn wasm_filter(wasm: &Path, config: &Value) -> Value {
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
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": configuration},
                "vm_config": {
                    "vm_id": "meshtally",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm.display().to_string()}},
                },
            },
        },
    })
}

fn hcm(stat_prefix: &str, wasm: &Path, config: &Value, virtual_hosts: Value) -> Value {
    json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": stat_prefix,
            "route_config": {"name": stat_prefix, "virtual_hosts": virtual_hosts},
            "http_filters": [
                wasm_filter(wasm, config),
                {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
            ],
        },
    })
}

fn inbound_listener(wasm: &Path, inbound: &Inbound<'_>) -> Value {
    let vhosts = json!([{"name": "app", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]);
    let plain =
        json!({"filters": [hcm("inbound_plain", wasm, &inbound.plugin_config, vhosts.clone())]});
    let Some(tls) = &inbound.tls else {
        return json!({"name": "inbound", "traffic_direction": "INBOUND", "address": socket(0), "filter_chains": [plain]});
    };
    let mtls = json!({
        "filter_chain_match": {"transport_protocol": "tls"},
        "filters": [hcm("inbound_mtls", wasm, &inbound.plugin_config, vhosts)],
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": true,
                "common_tls_context": common_tls(tls),
            },
        },
    });
    let mut chains = vec![mtls];
    if inbound.permissive {
        chains.push(plain);
    }
    json!({
        "name": "inbound",
        "traffic_direction": "INBOUND",
        "address": socket(0),
        "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
        "filter_chains": chains,
    })
}

fn outbound_listener(wasm: &Path, outbound: &Outbound<'_>) -> Value {
    let vhosts: Vec<Value> = outbound
        .peers
        .iter()
        .map(|p| {
            json!({"name": p.name, "domains": [p.name, format!("{}:*", p.name), format!("{}.*", p.name)],
                   "routes": [{"match": {"prefix": "/"}, "route": {"cluster": p.name}}]})
        })
        .collect();
    json!({
        "name": "outbound",
        "traffic_direction": "OUTBOUND",
        "address": socket(0),
        "filter_chains": [{"filters": [hcm("outbound", wasm, &outbound.plugin_config, Value::Array(vhosts))]}],
    })
}

fn common_tls(tls: &Tls<'_>) -> Value {
    json!({
        "tls_certificates": [{
            "certificate_chain": {"filename": tls.identity.cert.display().to_string()},
            "private_key": {"filename": tls.identity.key.display().to_string()},
        }],
        "validation_context": {"trusted_ca": {"filename": tls.ca.display().to_string()}},
    })
}

fn cluster(name: &str, port: u16, tls: Option<&Tls<'_>>) -> Value {
    let mut c = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(port)}}]}]},
    });
    if let Some(tls) = tls {
        c["transport_socket"] = json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "common_tls_context": common_tls(tls),
            },
        });
    }
    c
}
