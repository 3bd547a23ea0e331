//! Envoy config for local sidecars and the gateway, built as JSON values (never text
//! templates), in either of two deliveries from the same builders: a static bootstrap (tests of
//! one proxy, and `envoy --mode validate`), or a bootstrap whose connection managers reference
//! route tables (RDS), the meshtally filter (ECDS) and clusters (CDS) delivered as files of a
//! watched directory, built as those resources in the first place ([`build`]). A sidecar has an inbound listener in front of its app (mTLS and, in PERMISSIVE
//! mode, plain HTTP, as Istio's) and an outbound listener the app uses as its HTTP proxy, which
//! routes by host to the peers' inbound listeners over mTLS. What istiod pushes for the same
//! mesh is the reference (tests/istio holds them to it): an RBAC filter admits the callers, the
//! meshtally filter runs after it, and routes carry the services' traffic rules (built by
//! [`crate::routes`]).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::cluster::{socket, static_cluster};
use crate::egress::{self, ExternalUpstream};
use crate::routes::{self, Upstream};
use crate::tls::{common_tls, Tls};
use crate::tracing::{collector_cluster, hcm_tracing, Tracing};
use crate::xds::{self, Resources, XdsConfig};
use meshtally_mesh::model::traffic::Millis;
use meshtally_wire::access::envoy_access_log;

pub use meshtally_mesh::model::{MtlsMode, OutboundPolicy};

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
    /// The hosts outside the mesh this sidecar may call.
    pub external: Vec<ExternalUpstream>,
    /// What it does with a host it does not know; `None`: no catch-all (Envoy's 404), for the
    /// gateway's stand-in listener and the filter's own tests.
    pub catch_all: Option<OutboundPolicy>,
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

/// How often Envoy writes buffered access-log lines to the file, in ms (`--file-flush-interval-msec`;
/// its default is 10 s): `tap` shows requests within this.
pub const ACCESS_LOG_FLUSH_MS: u32 = 100;

/// The JSON access log of a proxy's listeners (`tap`, `edges`; the format is
/// `meshtally_wire::access`): the file, and the proxy and version each line names.
#[derive(Debug, Clone)]
pub struct AccessLog {
    pub path: PathBuf,
    pub proxy: String,
    pub version: Option<String>,
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
    /// Every connection manager logs here, its direction named by its listener.
    pub access_log: Option<AccessLog>,
    /// Spans to a Zipkin collector from the sidecar's inbound and outbound connection managers,
    /// or the gateway's front one (`up --tracing`).
    pub tracing: Option<Tracing>,
}

/// Where a proxy's routes, clusters and filter go.
#[derive(Debug, Clone, Copy)]
pub enum Delivery<'a> {
    /// In the bootstrap itself.
    Static,
    /// As xDS resources in files of this directory (named as Envoy will find them), which the
    /// bootstrap references.
    Files(&'a Path),
}

/// The resources a proxy's listeners need, gathered while they are built.
struct Builder<'a> {
    delivery: Delivery<'a>,
    access_log: Option<&'a AccessLog>,
    tracing: Option<&'a Tracing>,
    routes: Vec<Value>,
    filters: Vec<Value>,
    /// Two connection managers that would need different ECDS resources of one name.
    conflict: Option<String>,
}

/// `stats_tags` that turn meshtally's encoded names into Prometheus labels.
pub fn stats_tags() -> Value {
    meshtally_wire::metrics::stats_tags()
        .iter()
        .map(|(tag, regex)| json!({"tag_name": tag, "regex": regex}))
        .collect()
}

/// A proxy's complete static bootstrap.
pub fn render(proxy: &Proxy) -> Value {
    // Static delivery has no ECDS resource to disagree about: it cannot fail.
    build(proxy, Delivery::Static).map_or(Value::Null, |c| c.bootstrap)
}

/// A proxy's config as `delivery` says: with [`Delivery::Files`], a bootstrap of listeners
/// that reference their route tables and the meshtally filter by name, with the clusters from
/// CDS, and those resources, to be written by [`xds::write`].
pub fn build(proxy: &Proxy, delivery: Delivery<'_>) -> anyhow::Result<XdsConfig> {
    let mut b = Builder {
        delivery,
        access_log: proxy.access_log.as_ref(),
        tracing: proxy.tracing.as_ref(),
        routes: Vec::new(),
        filters: Vec::new(),
        conflict: None,
    };
    let mut listeners = Vec::new();
    let mut clusters = Vec::new();
    if let Some(inbound) = &proxy.inbound {
        listeners.push(inbound_listener(&mut b, proxy, inbound));
        clusters.push(static_cluster("app", &[inbound.app_port], None));
    }
    if let Some(outbound) = &proxy.outbound {
        // A gateway's outbound listener is the local stand-in for its router's upstream: its
        // one span is the front connection manager's upstream span, as on Istio's gateway.
        let traced = proxy.ingress.is_none();
        listeners.push(outbound_listener(&mut b, proxy, outbound, traced));
        for peer in &outbound.peers {
            clusters.extend(routes::clusters(peer));
        }
        clusters.extend(outbound.external.iter().map(egress::cluster));
        if outbound.catch_all == Some(OutboundPolicy::AllowAny) {
            clusters.push(egress::passthrough_cluster());
        }
    }
    if let Some(ingress) = &proxy.ingress {
        listeners.push(ingress_listener(&mut b, ingress));
        clusters.push(static_cluster(
            "gateway-outbound",
            &[ingress.outbound_port],
            None,
        ));
    }
    let mut bootstrap = json!({
        // The node's cluster is `<app>.<namespace>`, as Istio's bootstrap names it: Zipkin's
        // tracer takes it for the spans' service name.
        "node": {"id": "meshtally-local", "cluster": node_cluster(&proxy.node_metadata), "metadata": proxy.node_metadata},
        "admin": {"address": socket(proxy.admin_port)},
        "stats_config": {"stats_tags": stats_tags()},
        // Histograms reach the admin endpoint only when stats flush; flush often so tests and
        // `deployer stats` see durations promptly.
        "stats_flush_interval": "0.2s",
        "static_resources": {"listeners": listeners},
    });
    // The tracer needs its collector's cluster when the (static) listeners are built, before
    // CDS has delivered anything: it is static in either delivery, and never changes live.
    let collector: Vec<Value> = proxy.tracing.iter().map(collector_cluster).collect();
    let clusters = match b.delivery {
        Delivery::Static => {
            bootstrap["static_resources"]["clusters"] =
                clusters.into_iter().chain(collector).collect();
            Vec::new()
        }
        Delivery::Files(dir) => {
            bootstrap["dynamic_resources"] = json!({"cds_config": xds::source(dir, xds::CDS_FILE)});
            // The app's cluster stays in the bootstrap too, beside the inline inbound route table
            // that names it (Envoy checks an inline table's clusters when the listener loads).
            let (app, dynamic): (Vec<Value>, Vec<Value>) =
                clusters.into_iter().partition(|c| c["name"] == "app");
            let statics: Vec<Value> = app.into_iter().chain(collector).collect();
            if !statics.is_empty() {
                bootstrap["static_resources"]["clusters"] = Value::Array(statics);
            }
            dynamic
                .into_iter()
                .map(|c| xds::typed(xds::CLUSTER_TYPE, c))
                .collect()
        }
    };
    if let Some(conflict) = b.conflict {
        anyhow::bail!(conflict);
    }
    Ok(XdsConfig {
        bootstrap,
        resources: Resources {
            clusters,
            routes: b.routes,
            filters: b.filters,
        },
    })
}

/// `<app>.<namespace>` from a proxy's node metadata (`meshtally` when it names neither).
fn node_cluster(metadata: &Value) -> String {
    match (
        metadata["LABELS"]["app"].as_str(),
        metadata["NAMESPACE"].as_str(),
    ) {
        (Some(app), Some(ns)) => format!("{app}.{ns}"),
        _ => "meshtally".to_owned(),
    }
}

/// The meshtally filter of one side of a proxy (`inbound`, `outbound`): each side is its own
/// filter with its own config (its `direction`), as Istio makes one per WasmPlugin `match.mode`.
pub fn wasm_filter(side: &str, wasm: &Path, config: &Value, fail_open: bool) -> Value {
    let configuration = match config {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    json!({
        "name": xds::filter_name(side),
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

/// The proxy's filter for one side (`inbound`, `outbound`), if any, then the router. Delivered
/// as files, each side's meshtally filter is one ECDS resource, shared by that side's
/// connection managers as a WasmPlugin is one resource for all the listeners its `match`
/// selects; no default config and warming on, so a listener is ready only once its filter is
/// loaded, as a sidecar with a WasmPlugin is.
fn http_filters(b: &mut Builder<'_>, proxy: &Proxy, side: &str, config: &Value) -> Vec<Value> {
    let first = match &proxy.filter {
        Filter::Wasm(path) => Some(match b.delivery {
            Delivery::Static => wasm_filter(side, path, config, proxy.fail_open),
            Delivery::Files(dir) => {
                let name = xds::filter_name(side);
                let filter = wasm_filter(side, path, config, proxy.fail_open);
                let resource = json!({"@type": xds::EXTENSION_TYPE, "name": name, "typed_config": filter["typed_config"]});
                match b.filters.iter().find(|f| f["name"] == name) {
                    None => b.filters.push(resource),
                    Some(known) if *known == resource => {}
                    Some(_) => {
                        b.conflict = Some(format!(
                            "the {name} filter differs between two listeners: one ECDS resource cannot carry both"
                        ))
                    }
                }
                json!({
                    "name": name,
                    "config_discovery": {
                        "config_source": xds::source(dir, &xds::filter_file(&name)),
                        "type_urls": [xds::WASM_TYPE],
                    },
                })
            }
        }),
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

/// An HTTP connection manager of the listener named `direction`: its route table is named
/// after its `stat_prefix` (unique per proxy), inline or an RDS resource.
/// Traced connection managers carry the proxy's tracer, with an upstream span when
/// `Traced::WithUpstreamSpan` (a gateway's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Traced {
    No,
    Yes,
    WithUpstreamSpan,
}

fn hcm(
    b: &mut Builder<'_>,
    direction: &str,
    stat_prefix: &str,
    http_filters: Vec<Value>,
    virtual_hosts: Value,
    traced: Traced,
) -> Value {
    let mut typed_config = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
        "http_filters": http_filters,
    });
    let route_config = json!({"name": stat_prefix, "virtual_hosts": virtual_hosts});
    match b.delivery {
        // The inbound route table never changes (everything goes to the app), so it stays
        // inline: each file-delivered resource costs the proxy a filesystem watcher, an inotify
        // instance, and a user gets 128 by default for all its processes.
        Delivery::Static => typed_config["route_config"] = route_config,
        Delivery::Files(_) if direction == "inbound" => typed_config["route_config"] = route_config,
        Delivery::Files(dir) => {
            b.routes.push(xds::typed(xds::ROUTE_TYPE, route_config));
            typed_config["rds"] = json!({
                "route_config_name": stat_prefix,
                "config_source": xds::source(dir, &xds::route_file(stat_prefix)),
            });
        }
    }
    if let (Some(t), true) = (b.tracing, traced != Traced::No) {
        typed_config["tracing"] = hcm_tracing(t, traced == Traced::WithUpstreamSpan);
    }
    if let Some(log) = b.access_log {
        typed_config["access_log"] = json!([envoy_access_log(
            &log.path.display().to_string(),
            &log.proxy,
            log.version.as_deref(),
            direction
        )]);
    }
    json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": typed_config,
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

fn inbound_listener(b: &mut Builder<'_>, proxy: &Proxy, inbound: &Inbound) -> Value {
    let vhosts = json!([{"name": "app", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]);
    // Plain HTTP, for a proxy without TLS or in PERMISSIVE mode (built only then, so a STRICT
    // proxy has no route table it does not use).
    let plain = |b: &mut Builder<'_>, vhosts: Value| {
        let filters = http_filters(b, proxy, "inbound", &inbound.plugin_config);
        json!({"filters": [hcm(b, "inbound", "inbound_plain", filters, vhosts, Traced::Yes)]})
    };
    let Some((tls, mode)) = &inbound.tls else {
        let plain = plain(b, vhosts);
        return json!({"name": "inbound", "traffic_direction": "INBOUND", "address": socket(inbound.port), "filter_chains": [plain]});
    };
    let validation = json!({"trusted_ca": {"filename": tls.ca.display().to_string()}});
    // Authorization first, then the filter (phase STATS runs after AUTHZ), as istiod orders
    // them. The plain-HTTP chain of PERMISSIVE has no RBAC, so a sidecar can be curled directly
    // (on Istio the AuthorizationPolicy would refuse a caller without a principal).
    let mut mtls_filters = http_filters(b, proxy, "inbound", &inbound.plugin_config);
    if !inbound.allowed_peers.is_empty() {
        mtls_filters.insert(0, rbac(&inbound.allowed_peers));
    }
    let mtls = json!({
        "filter_chain_match": {"transport_protocol": "tls"},
        "filters": [hcm(b, "inbound", "inbound_mtls", mtls_filters, vhosts.clone(), Traced::Yes)],
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
        chains.push(plain(b, vhosts));
    }
    json!({
        "name": "inbound",
        "traffic_direction": "INBOUND",
        "address": socket(inbound.port),
        "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
        "filter_chains": chains,
    })
}

fn outbound_listener(
    b: &mut Builder<'_>,
    proxy: &Proxy,
    outbound: &Outbound,
    traced: bool,
) -> Value {
    let traced = if traced { Traced::Yes } else { Traced::No };
    let vhosts: Vec<Value> = outbound
        .peers
        .iter()
        .map(routes::virtual_host)
        .chain(outbound.external.iter().map(egress::virtual_host))
        .chain(outbound.catch_all.map(egress::catch_all))
        .collect();
    // Faults are injected before anything else sees the request, as in istiod's outbound
    // chain (the fault filter precedes the STATS-phase plugins).
    let mut filters = http_filters(b, proxy, "outbound", &outbound.plugin_config);
    filters.insert(0, routes::fault_filter());
    if outbound.catch_all == Some(OutboundPolicy::AllowAny) {
        // Just before the router, which it hands the resolved host.
        let router = filters.len() - 1;
        filters.insert(router, egress::passthrough_filter());
    }
    json!({
        "name": "outbound",
        "traffic_direction": "OUTBOUND",
        "address": socket(outbound.port),
        "filter_chains": [{"filters": [hcm(b, "outbound", "outbound", filters, Value::Array(vhosts), traced)]}],
    })
}

fn ingress_listener(b: &mut Builder<'_>, ingress: &Ingress) -> Value {
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
        "filter_chains": [{"filters": [hcm(b, "ingress", "ingress", vec![router()], vhosts, Traced::WithUpstreamSpan)]}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::Upstream;

    fn sidecar(dir: &Path, mode: MtlsMode) -> Proxy {
        let tls = Tls {
            cert: dir.join("a.pem"),
            key: dir.join("a.key"),
            ca: dir.join("ca.pem"),
        };
        let peer = Upstream::single(
            "service-b",
            15001,
            Some((
                tls.clone(),
                "spiffe://cluster.local/ns/d/sa/service-b".into(),
            )),
        );
        Proxy {
            filter: Filter::Wasm(dir.join("m.wasm")),
            fail_open: true,
            node_metadata: json!({"WORKLOAD_NAME": "service-a"}),
            admin_port: 15000,
            inbound: Some(Inbound {
                port: 15006,
                app_port: 8000,
                plugin_config: json!({"max_hops": 5, "direction": "inbound"}),
                tls: Some((tls, mode)),
                allowed_peers: vec!["spiffe://cluster.local/ns/d/sa/service-b".into()],
            }),
            outbound: Some(Outbound {
                port: 15002,
                plugin_config: json!({"max_hops": 5, "direction": "outbound"}),
                peers: vec![peer],
                external: Vec::new(),
                catch_all: Some(OutboundPolicy::AllowAny),
            }),
            ingress: None,
            tracing: None,
            access_log: Some(AccessLog {
                path: dir.join("a.log"),
                proxy: "service-a-sidecar".into(),
                version: Some("v1".into()),
            }),
        }
    }

    /// The two deliveries say the same: the files' resources, put back in place by
    /// [`xds::inline`] (which reads them as Envoy does), give the static bootstrap.
    #[test]
    fn files_and_static_delivery_say_the_same() {
        for mode in [MtlsMode::Strict, MtlsMode::Permissive] {
            let dir = tempfile::tempdir().unwrap();
            let proxy = sidecar(dir.path(), mode);
            let config = build(&proxy, Delivery::Files(dir.path())).unwrap();
            let statics = &config.bootstrap["static_resources"];
            let statics: Vec<&str> = statics["clusters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap())
                .collect();
            assert_eq!(
                statics,
                ["app"],
                "only the app's cluster is static, the rest from CDS"
            );
            let routes: Vec<&str> = config
                .resources
                .routes
                .iter()
                .map(|r| r["name"].as_str().unwrap())
                .collect();
            assert_eq!(
                routes,
                ["outbound"],
                "one route table per connection manager whose routes change (inbound's are inline)"
            );
            let filters: Vec<&str> = config
                .resources
                .filters
                .iter()
                .map(|f| f["name"].as_str().unwrap())
                .collect();
            assert_eq!(
                filters,
                ["meshtally-inbound", "meshtally-outbound"],
                "one ECDS resource per side"
            );
            xds::write(dir.path(), &config.resources, 7).unwrap();
            assert_eq!(xds::inline(&config.bootstrap).unwrap(), render(&proxy));
        }
    }

    #[test]
    fn every_connection_manager_logs_with_its_listener_direction() {
        let dir = tempfile::tempdir().unwrap();
        let config = render(&sidecar(dir.path(), MtlsMode::Permissive));
        let mut seen = Vec::new();
        for listener in config["static_resources"]["listeners"].as_array().unwrap() {
            for chain in listener["filter_chains"].as_array().unwrap() {
                let hcm = &chain["filters"][0]["typed_config"];
                let format = &hcm["access_log"][0]["typed_config"]["log_format"]["json_format"];
                assert_eq!(format["direction"], listener["name"]);
                assert_eq!(format["proxy"], "service-a-sidecar");
                assert_eq!(format["version"], "v1");
                seen.push(hcm["stat_prefix"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(seen, ["inbound_mtls", "inbound_plain", "outbound"]);
    }

    #[test]
    fn two_listeners_needing_different_filters_are_refused() {
        // The plain and the mTLS chain of PERMISSIVE share the inbound side's one resource.
        let dir = tempfile::tempdir().unwrap();
        let mut builder = Builder {
            delivery: Delivery::Files(dir.path()),
            access_log: None,
            tracing: None,
            routes: Vec::new(),
            filters: Vec::new(),
            conflict: None,
        };
        let proxy = sidecar(dir.path(), MtlsMode::Permissive);
        http_filters(&mut builder, &proxy, "inbound", &json!({"max_hops": 5}));
        http_filters(&mut builder, &proxy, "inbound", &json!({"max_hops": 5}));
        assert_eq!(builder.conflict, None);
        http_filters(&mut builder, &proxy, "inbound", &json!({"max_hops": 6}));
        let err = builder.conflict.unwrap();
        assert!(err.contains("one ECDS resource"), "{err}");
    }
}
