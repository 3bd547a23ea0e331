//! Istio traffic objects: per service a DestinationRule (mTLS, load balancing, a subset per
//! version, the connection pool and outlier detection) and an in-mesh VirtualService (header
//! matches, the weighted split, timeout, retries, fault); for the mesh, the ingress Gateway and
//! the one VirtualService bound to it that routes `/<service>/…` to each service with the same
//! rules.

use super::istio::{
    ClientTls, ClientTlsMode, ConnectionPool, Destination, DestinationRule, DestinationRuleSpec,
    ExactMatch, FaultAbort, FaultDelay, Gateway, GatewaySpec, HttpFaultInjection, HttpMatchRequest,
    HttpPool, HttpRetry, HttpRewrite, HttpRoute, HttpRouteDestination, LoadBalancer, Object,
    OutlierDetection, Percent, PortSelector, Server, ServerPort, SimpleLb, StringMatch, Subset,
    TcpPool, TrafficPolicy, VirtualService, VirtualServiceSpec,
};
use super::meta;
use crate::model::traffic::{CircuitBreaker, Fault, HeaderMatch, Traffic};
use crate::model::{Mesh, Service};

/// Istio's name for "the sidecars", as opposed to a Gateway.
const MESH_GATEWAY: &str = "mesh";

pub fn destination_rule(mesh: &Mesh, service: &Service) -> DestinationRule {
    let (connection_pool, outlier_detection) = match &service.traffic.circuit_breaker {
        Some(cb) => circuit_breaker(cb),
        None => (None, None),
    };
    Object::new(
        meta::meta(
            &service.name,
            Some(&mesh.namespace),
            &[(meta::APP, &service.name)],
        ),
        DestinationRuleSpec {
            host: mesh.fqdn(service),
            traffic_policy: TrafficPolicy {
                load_balancer: LoadBalancer {
                    simple: SimpleLb::LeastRequest,
                },
                // Spelled out although auto-mTLS would pick it: with STRICT peer authentication
                // a plaintext client is refused, so the rule documents what the mesh needs.
                tls: ClientTls {
                    mode: ClientTlsMode::IstioMutual,
                },
                connection_pool,
                outlier_detection,
            },
            subsets: service
                .traffic
                .versions
                .iter()
                .map(|v| Subset {
                    name: v.name.clone(),
                    labels: [(meta::VERSION_LABEL.to_owned(), v.name.clone())].into(),
                })
                .collect(),
        },
    )
}

fn circuit_breaker(cb: &CircuitBreaker) -> (Option<ConnectionPool>, Option<OutlierDetection>) {
    let tcp = cb.max_connections.map(|n| TcpPool { max_connections: n });
    let http = (cb.max_pending.is_some() || cb.max_requests.is_some()).then_some(HttpPool {
        http1_max_pending_requests: cb.max_pending,
        http2_max_requests: cb.max_requests,
    });
    let pool = (tcp.is_some() || http.is_some()).then_some(ConnectionPool { tcp, http });
    let outlier = cb.outlier.as_ref().map(|o| OutlierDetection {
        consecutive_5xx_errors: o.consecutive_5xx,
        interval: o.interval.to_string(),
        base_ejection_time: o.base_ejection.to_string(),
        max_ejection_percent: o.max_ejection_percent,
    });
    (pool, outlier)
}

fn destination(
    mesh: &Mesh,
    service: &Service,
    subset: Option<&str>,
    weight: Option<u32>,
) -> HttpRouteDestination {
    HttpRouteDestination {
        destination: Destination {
            host: mesh.fqdn(service),
            subset: subset.map(str::to_owned),
            port: PortSelector {
                number: u32::from(service.port),
            },
        },
        weight,
    }
}

/// The default route's destinations: the one version, the weighted versions, or (no weights)
/// the whole host.
fn split(mesh: &Mesh, service: &Service) -> Vec<HttpRouteDestination> {
    let t = &service.traffic;
    match t.versions.as_slice() {
        [only] => vec![destination(mesh, service, Some(&only.name), None)],
        _ if !t.weighted() => vec![destination(mesh, service, None, None)],
        all => all
            .iter()
            .map(|v| destination(mesh, service, Some(&v.name), v.weight))
            .collect(),
    }
}

fn fault(f: &Fault) -> HttpFaultInjection {
    HttpFaultInjection {
        delay: f.delay.as_ref().map(|d| FaultDelay {
            fixed_delay: d.fixed.to_string(),
            percentage: Percent {
                value: f64::from(d.percent),
            },
        }),
        abort: f.abort.as_ref().map(|a| FaultAbort {
            http_status: u32::from(a.status),
            percentage: Percent {
                value: f64::from(a.percent),
            },
        }),
    }
}

fn header(m: &HeaderMatch) -> std::collections::BTreeMap<String, ExactMatch> {
    [(
        m.header.clone(),
        ExactMatch {
            exact: m.value.clone(),
        },
    )]
    .into()
}

/// One service's routes: a route per header match, then the split, each with the service's
/// timeout and fault; `retries` and `rewrite` as the caller asks; `uris` (if any) are ANDed
/// with each header match.
fn routes(
    mesh: &Mesh,
    service: &Service,
    uris: &[StringMatch],
    rewrite: Option<HttpRewrite>,
    retries: Option<HttpRetry>,
) -> Vec<HttpRoute> {
    let t: &Traffic = &service.traffic;
    let matches = |headers: Option<&HeaderMatch>| -> Vec<HttpMatchRequest> {
        let headers = headers.map(header).unwrap_or_default();
        if uris.is_empty() {
            return if headers.is_empty() {
                Vec::new()
            } else {
                vec![HttpMatchRequest { uri: None, headers }]
            };
        }
        uris.iter()
            .map(|uri| HttpMatchRequest {
                uri: Some(uri.clone()),
                headers: headers.clone(),
            })
            .collect()
    };
    let route = |name: String, matches, route| HttpRoute {
        name,
        matches,
        rewrite: rewrite.clone(),
        route,
        timeout: Some(t.timeout.to_string()),
        retries: retries.clone(),
        fault: t.fault.as_ref().map(fault),
    };
    let mut out: Vec<HttpRoute> = t
        .matches
        .iter()
        .map(|m| {
            route(
                format!("{}-{}-{}", service.name, m.header, m.version),
                matches(Some(m)),
                vec![destination(mesh, service, Some(&m.version), None)],
            )
        })
        .collect();
    out.push(route(
        service.name.clone(),
        matches(None),
        split(mesh, service),
    ));
    out
}

pub fn virtual_service(mesh: &Mesh, service: &Service) -> VirtualService {
    let retries = service.traffic.retries.as_ref().map(|r| HttpRetry {
        attempts: r.attempts,
        per_try_timeout: r.per_try_timeout.map(|t| t.to_string()),
        retry_on: r.retry_on.clone(),
    });
    Object::new(
        meta::meta(
            &service.name,
            Some(&mesh.namespace),
            &[(meta::APP, &service.name)],
        ),
        VirtualServiceSpec {
            hosts: vec![mesh.fqdn(service)],
            gateways: vec![MESH_GATEWAY.to_owned()],
            http: routes(mesh, service, &[], None, retries),
        },
    )
}

/// The ingress Gateway: plain HTTP on port 80 of Istio's default ingress gateway.
pub fn gateway(mesh: &Mesh) -> Gateway {
    Object::new(
        meta::meta(meta::GATEWAY, Some(&mesh.namespace), &[]),
        GatewaySpec {
            selector: [("istio".to_owned(), "ingressgateway".to_owned())].into(),
            servers: vec![Server {
                port: ServerPort {
                    number: 80,
                    name: "http".to_owned(),
                    protocol: "HTTP".to_owned(),
                },
                hosts: vec!["*".to_owned()],
            }],
        },
    )
}

/// Routes `/<service>/rest` to `<service>` as `/rest`, and `/<service>` alone to `/`, with the
/// service's matches, split, timeout and fault. The prefix keeps its trailing slash so
/// `/service-a/` never swallows `/service-ab/…`.
pub fn ingress_routes(mesh: &Mesh) -> VirtualService {
    let http = mesh
        .services
        .iter()
        .flat_map(|service| {
            let uris = [
                StringMatch::Prefix(format!("/{}/", service.name)),
                StringMatch::Exact(format!("/{}", service.name)),
            ];
            // Istio replaces only the matched part: the prefix for the first match, the whole
            // path for the exact one.
            let rewrite = HttpRewrite {
                uri: "/".to_owned(),
            };
            routes(mesh, service, &uris, Some(rewrite), None)
        })
        .collect();
    Object::new(
        meta::meta(meta::INGRESS_ROUTES, Some(&mesh.namespace), &[]),
        VirtualServiceSpec {
            hosts: vec!["*".to_owned()],
            gateways: vec![meta::GATEWAY.to_owned()],
            http,
        },
    )
}
