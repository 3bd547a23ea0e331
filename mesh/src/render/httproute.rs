//! The traffic rules in the Kubernetes Gateway API (`render --api gateway-api`), as Istio
//! documents the mapping: per service an in-mesh HTTPRoute whose parent is its Service (GAMMA),
//! an HTTPRoute bound to the ingress Gateway, a Service per version (Gateway API splits by
//! backend Service, not by subset) and DestinationRules for what they still govern (TLS, load
//! balancing, connection pool, outlier detection), on the plain host and on each version's.
//! The model has already refused what Gateway API cannot say (see `model::dialect`).

use k8s_openapi::api::core::v1::Service as KubeService;

use super::gateway_api::LabelSelector;
use super::gateway_api::{
    AddressType, AllowedRoutes, BackendRef, FilterType, FromNamespaces, Gateway, GatewayAddress,
    GatewaySpec, HeaderMatch, HeaderMatchType, HttpRoute, HttpRouteFilter, HttpRouteMatch,
    HttpRouteRule, HttpRouteSpec, Listener, ListenerProtocol, Object, ParentRef, PathMatch,
    PathMatchType, PathModifier, PathModifierType, Retry, RouteNamespaces, Timeouts, UrlRewrite,
};
use super::istio::DestinationRule;
use super::security::INGRESS_NAMESPACE;
use super::{meta, traffic, workload};
use crate::model::dialect::version_service;
use crate::model::traffic::{HeaderMatch as ModelMatch, Millis};
use crate::model::{Mesh, Service};

/// The gateway class istiod implements.
pub const GATEWAY_CLASS: &str = "istio";
/// The gateway the Gateway binds to (Istio's "manual deployment", by address): the same one the
/// Istio-API render's Gateway selects, so the AuthorizationPolicies (which allow its identity),
/// `apply`'s hints and `verify --cluster` hold for both. istiod binds a Gateway only to a gateway
/// Service of its own namespace, so the Gateway lives in istio-system, one per mesh.
pub const INGRESS_SERVICE: &str = "istio-ingressgateway";
/// The label naming, on the Gateway in istio-system, the mesh it belongs to (`delete` selects
/// it by this).
pub const MESH_LABEL: &str = "app.kubernetes.io/instance";
/// The label the API server puts on every Namespace, naming it: the Gateway admits routes of
/// the mesh's namespace alone.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The mesh's Gateway, in istio-system: one per mesh namespace.
pub fn gateway_name(mesh: &Mesh) -> String {
    format!("{}-{}", meta::GATEWAY, mesh.namespace)
}

/// Gateway API's Duration (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`): each unit at most five digits, so
/// a duration is written by its parts (`1m30s`), never as `90000ms`.
pub fn duration(d: Millis) -> String {
    let ms = d.0;
    let parts = [
        (ms / 3_600_000, "h"),
        (ms / 60_000 % 60, "m"),
        (ms / 1000 % 60, "s"),
        (ms % 1000, "ms"),
    ];
    let out: String = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if out.is_empty() {
        "0s".to_owned()
    } else {
        out
    }
}

/// The plain Service (callers use it) stays; one more per version selects `app` + `version`.
pub fn version_services(mesh: &Mesh, service: &Service) -> Vec<KubeService> {
    service
        .traffic
        .versions
        .iter()
        .map(|v| {
            let mut s = workload::service(mesh, service);
            let name = version_service(&service.name, &v.name);
            s.metadata = meta::meta(
                &name,
                Some(&mesh.namespace),
                &[(meta::APP, &service.name), (meta::VERSION_LABEL, &v.name)],
            );
            if let Some(spec) = s.spec.as_mut() {
                let mut selector = meta::app_selector(service);
                selector.insert(meta::VERSION_LABEL.to_owned(), v.name.clone());
                spec.selector = Some(selector);
            }
            s
        })
        .collect()
}

/// The Istio render's DestinationRule without subsets (nothing routes to one), and the same
/// traffic policy on every version's host, where the per-version backends' clusters are.
pub fn destination_rules(mesh: &Mesh, service: &Service) -> Vec<DestinationRule> {
    let mut plain = traffic::destination_rule(mesh, service);
    plain.spec.subsets.clear();
    let per_version: Vec<DestinationRule> = service
        .traffic
        .versions
        .iter()
        .map(|v| {
            let name = version_service(&service.name, &v.name);
            let mut rule = plain.clone();
            rule.metadata = meta::meta(
                &name,
                Some(&mesh.namespace),
                &[(meta::APP, &service.name), (meta::VERSION_LABEL, &v.name)],
            );
            rule.spec.host = format!("{name}.{}.svc.cluster.local", mesh.namespace);
            rule
        })
        .collect();
    std::iter::once(plain).chain(per_version).collect()
}

fn backend(service: &Service, name: String, weight: Option<u32>) -> BackendRef {
    BackendRef {
        name,
        port: service.port,
        weight,
    }
}

/// The default rule's backends: the one version's Service, each weighted version's, or (no
/// weights) the plain Service, whose endpoints are every version's.
fn split(service: &Service) -> Vec<BackendRef> {
    let t = &service.traffic;
    match t.versions.as_slice() {
        [only] => vec![backend(
            service,
            version_service(&service.name, &only.name),
            None,
        )],
        _ if !t.weighted() => vec![backend(service, service.name.clone(), None)],
        all => all
            .iter()
            .map(|v| backend(service, version_service(&service.name, &v.name), v.weight))
            .collect(),
    }
}

fn header(m: &ModelMatch) -> HeaderMatch {
    HeaderMatch {
        kind: HeaderMatchType::Exact,
        name: m.header.clone(),
        value: m.value.clone(),
    }
}

/// One service's rules: a rule per header match, then the split, all under `path`. In the mesh
/// the rules retry (and their per-try timeout is `backendRequest`); at the ingress they do not,
/// as the Istio render's ingress routes do not.
fn rules(service: &Service, path: &str, rewrite: bool, retry: bool) -> Vec<HttpRouteRule> {
    let t = &service.traffic;
    let retries = t.retries.as_ref().filter(|_| retry);
    let timeouts = Timeouts {
        request: Some(duration(t.timeout)),
        backend_request: retries.and_then(|r| r.per_try_timeout).map(duration),
    };
    let filters = if rewrite {
        vec![HttpRouteFilter {
            kind: FilterType::URLRewrite,
            url_rewrite: UrlRewrite {
                path: PathModifier {
                    kind: PathModifierType::ReplacePrefixMatch,
                    replace_prefix_match: "/".to_owned(),
                },
            },
        }]
    } else {
        Vec::new()
    };
    let rule = |headers: Vec<HeaderMatch>, backend_refs| HttpRouteRule {
        matches: vec![HttpRouteMatch {
            path: PathMatch {
                kind: PathMatchType::PathPrefix,
                value: path.to_owned(),
            },
            headers,
        }],
        filters: filters.clone(),
        backend_refs,
        timeouts: Some(timeouts.clone()),
        retry: retries.map(|r| Retry {
            attempts: r.attempts,
        }),
    };
    t.matches
        .iter()
        .map(|m| {
            rule(
                vec![header(m)],
                vec![backend(
                    service,
                    version_service(&service.name, &m.version),
                    None,
                )],
            )
        })
        .chain(std::iter::once(rule(Vec::new(), split(service))))
        .collect()
}

/// In the mesh (GAMMA): the route's parent is the service's own Service, so every sidecar
/// calling it follows these rules.
pub fn mesh_route(mesh: &Mesh, service: &Service) -> HttpRoute {
    Object::new(
        meta::meta(
            &service.name,
            Some(&mesh.namespace),
            &[(meta::APP, &service.name)],
        ),
        HttpRouteSpec {
            parent_refs: vec![ParentRef {
                group: Some(String::new()),
                kind: Some("Service".to_owned()),
                namespace: None,
                name: service.name.clone(),
            }],
            rules: rules(service, "/", false, true),
        },
    )
}

/// The name of a service's route at the ingress Gateway. Service names never start with
/// `meshtally-`, so this never collides with a service's own route.
pub fn ingress_route_name(service: &str) -> String {
    format!("{}-{service}", meta::INGRESS_ROUTES)
}

/// At the ingress: `/<service>` and `/<service>/…` (a PathPrefix matches whole segments) to the
/// service, the prefix replaced by `/`.
pub fn ingress_route(mesh: &Mesh, service: &Service) -> HttpRoute {
    Object::new(
        meta::meta(
            &ingress_route_name(&service.name),
            Some(&mesh.namespace),
            &[(meta::APP, &service.name)],
        ),
        HttpRouteSpec {
            parent_refs: vec![ParentRef {
                group: None,
                kind: None,
                namespace: Some(INGRESS_NAMESPACE.to_owned()),
                name: gateway_name(mesh),
            }],
            rules: rules(service, &format!("/{}", service.name), true, false),
        },
    )
}

/// The ingress Gateway: plain HTTP on port 80, on Istio's default ingress gateway, for routes
/// of the mesh's namespace only.
pub fn gateway(mesh: &Mesh) -> Gateway {
    Object::new(
        meta::meta(
            &gateway_name(mesh),
            Some(INGRESS_NAMESPACE),
            &[(MESH_LABEL, &mesh.namespace)],
        ),
        GatewaySpec {
            gateway_class_name: GATEWAY_CLASS.to_owned(),
            // A short name: istiod completes it in the Gateway's namespace.
            addresses: vec![GatewayAddress {
                kind: AddressType::Hostname,
                value: INGRESS_SERVICE.to_owned(),
            }],
            listeners: vec![Listener {
                name: "http".to_owned(),
                port: 80,
                protocol: ListenerProtocol::Http,
                allowed_routes: AllowedRoutes {
                    namespaces: RouteNamespaces {
                        from: FromNamespaces::Selector,
                        selector: Some(LabelSelector {
                            match_labels: [(
                                NAMESPACE_NAME_LABEL.to_owned(),
                                mesh.namespace.clone(),
                            )]
                            .into(),
                        }),
                    },
                },
            }],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fit_gateway_api() {
        for (ms, want) in [
            (0, "0s"),
            (300, "300ms"),
            (2_000, "2s"),
            (90_000, "1m30s"),
            (3_600_000, "1h"),
            (123_456_789, "34h17m36s789ms"),
        ] {
            assert_eq!(duration(Millis(ms)), want);
        }
    }
}
