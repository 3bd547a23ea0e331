//! Envoy bootstraps for the benchmark, built as JSON values like the end-to-end tests build
//! theirs. Every proxy config is the same listener, route and upstream cluster; only the HTTP
//! filters (or route header rules) and, for the mTLS variants, the transport socket differ.

use std::path::Path;

use serde_json::{json, Value};

use crate::certs::Pki;
use crate::variants::{Filter, Variant, LUA_CODE, SERVICE};

/// The compiled modules the Wasm variants load.
pub struct Modules<'a> {
    pub meshtally: &'a Path,
    pub empty: &'a Path,
    /// `bench/probe-filter`, for the callgrind price list (absent: no probes).
    pub probe: Option<&'a Path>,
}

fn socket(port: u16) -> Value {
    json!({"socket_address": {"address": "127.0.0.1", "port_value": port}})
}

fn router() -> Value {
    json!({"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
}

/// `stats_tags` for meshtally's encoded names. Every proxy variant gets them (not only
/// meshtally's) so tag extraction costs the same everywhere.
fn stats_tags() -> Value {
    meshtally_wire::metrics::stats_tags()
        .iter()
        .map(|(tag, regex)| json!({"tag_name": tag, "regex": regex}))
        .collect()
}

fn hcm(stat_prefix: &str, filters: Vec<Value>, route: Value) -> Value {
    json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": stat_prefix,
            "route_config": {"name": stat_prefix, "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}]},
            "http_filters": filters,
        },
    })
}

fn bootstrap(node: &str, listener: Value, clusters: Vec<Value>) -> Value {
    json!({
        "node": {"id": node, "cluster": "meshtally-bench"},
        "admin": {"address": socket(0)},
        "stats_config": {"stats_tags": stats_tags()},
        "static_resources": {"listeners": [listener], "clusters": clusters},
    })
}

fn header(key: &str, value: &str) -> Value {
    json!({"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"})
}

/// The upstream every variant forwards to: one Envoy with a `direct_response` route, started
/// once and shared, so it is the same process for every variant. It echoes the tags it received
/// in `x-echo-*` response headers so each variant's tagging can be checked before measuring.
pub fn upstream() -> Value {
    let route = json!({
        "match": {"prefix": "/"},
        "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}},
        "response_headers_to_add": [
            header("x-echo-source", "%REQ(x-mesh-source)%"),
            header("x-echo-hops", "%REQ(x-mesh-hops)%"),
            header("x-echo-verified", "%REQ(x-mesh-peer-verified)%"),
        ],
    });
    let listener = json!({
        "name": "upstream",
        "address": socket(0),
        "filter_chains": [{"filters": [hcm("upstream", vec![router()], route)]}],
    });
    bootstrap("bench-upstream", listener, vec![])
}

fn wasm_filter(name: &str, module: &Path, configuration: &str) -> Value {
    json!({
        "name": name,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": name,
                "root_id": name,
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": configuration},
                "vm_config": {
                    "vm_id": name,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": module.display().to_string()}},
                },
            },
        },
    })
}

fn lua_filter() -> Value {
    json!({
        "name": "envoy.filters.http.lua",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "inline_code": LUA_CODE,
        },
    })
}

/// The proxy under test for one variant: listener `proxy` → route `/` → cluster `upstream`.
pub fn proxy(variant: &Variant, modules: &Modules<'_>, upstream_port: u16, pki: &Pki) -> Value {
    let mut route = json!({"match": {"prefix": "/"}, "route": {"cluster": "upstream"}});
    let mut filters = Vec::new();
    match variant.filter {
        Filter::None => {}
        Filter::EmptyWasm => filters.push(wasm_filter("empty", modules.empty, "")),
        Filter::Probe(call) => {
            let config = format!("{call} {}", crate::variants::PROBE_TIMES);
            let module = modules.probe.unwrap_or(modules.empty);
            // One VM for every probe (same vm_id and code, a root context each): V8 reserves
            // gigabytes of address space per VM, and under valgrind a handful of VMs is the limit.
            let mut filter = wasm_filter(&format!("probe-{call}"), module, &config);
            filter["typed_config"]["config"]["vm_config"]["vm_id"] = "probe".into();
            filters.push(filter);
        }
        Filter::Meshtally(direction) => {
            let config = json!({"service": SERVICE, "direction": direction, "max_hops": 10});
            let module = variant.module.as_deref().unwrap_or(modules.meshtally);
            filters.push(wasm_filter("meshtally", module, &config.to_string()));
        }
        Filter::Lua => filters.push(lua_filter()),
        Filter::Native => {
            // Static values only: route rules can copy or set a header, not add one to it.
            route["request_headers_to_add"] =
                json!([header("x-mesh-source", SERVICE), header("x-mesh-hops", "1"),]);
            route["response_headers_to_add"] = json!([header("x-mesh-served-by", SERVICE)]);
        }
    }
    filters.push(router());

    let mut chain = json!({"filters": [hcm("proxy", filters, route)]});
    if variant.mtls {
        chain["transport_socket"] = json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": true,
                "common_tls_context": {
                    "tls_certificates": [{
                        "certificate_chain": {"filename": pki.server.cert.display().to_string()},
                        "private_key": {"filename": pki.server.key.display().to_string()},
                    }],
                    "validation_context": {"trusted_ca": {"filename": pki.ca.display().to_string()}},
                },
            },
        });
    }
    let listener = json!({"name": "proxy", "address": socket(0), "filter_chains": [chain]});
    let cluster = json!({
        "name": "upstream",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(upstream_port)}}]}]},
    });
    bootstrap(&format!("bench-{}", variant.id), listener, vec![cluster])
}
