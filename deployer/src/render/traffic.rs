//! Istio traffic objects: per service a DestinationRule (mTLS, load balancing, the `v1` subset)
//! and an in-mesh VirtualService (timeout, retries); for the mesh, the ingress Gateway and the
//! one VirtualService bound to it that routes `/<service>/…` to each service.

use super::istio::{
    ClientTls, ClientTlsMode, Destination, DestinationRule, DestinationRuleSpec, Gateway,
    GatewaySpec, HttpMatchRequest, HttpRetry, HttpRewrite, HttpRoute, HttpRouteDestination,
    LoadBalancer, Object, PortSelector, Server, ServerPort, SimpleLb, StringMatch, Subset,
    TrafficPolicy, VirtualService, VirtualServiceSpec,
};
use super::meta::{self, VERSION};
use crate::model::{Mesh, Service};

/// Istio's name for "the sidecars", as opposed to a Gateway.
const MESH_GATEWAY: &str = "mesh";

pub fn destination_rule(mesh: &Mesh, service: &Service) -> DestinationRule {
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
            },
            subsets: vec![Subset {
                name: VERSION.to_owned(),
                labels: [(meta::VERSION_LABEL.to_owned(), VERSION.to_owned())].into(),
            }],
        },
    )
}

fn destination(mesh: &Mesh, service: &Service) -> HttpRouteDestination {
    HttpRouteDestination {
        destination: Destination {
            host: mesh.fqdn(service),
            subset: VERSION.to_owned(),
            port: PortSelector {
                number: u32::from(service.port),
            },
        },
    }
}

pub fn virtual_service(mesh: &Mesh, service: &Service) -> VirtualService {
    Object::new(
        meta::meta(
            &service.name,
            Some(&mesh.namespace),
            &[(meta::APP, &service.name)],
        ),
        VirtualServiceSpec {
            hosts: vec![mesh.fqdn(service)],
            gateways: vec![MESH_GATEWAY.to_owned()],
            http: vec![HttpRoute {
                name: service.name.clone(),
                matches: Vec::new(),
                rewrite: None,
                route: vec![destination(mesh, service)],
                timeout: Some(service.traffic.timeout.to_string()),
                retries: service.traffic.retries.as_ref().map(|r| HttpRetry {
                    attempts: r.attempts,
                    per_try_timeout: r.per_try_timeout.map(|t| t.to_string()),
                    retry_on: r.retry_on.clone(),
                }),
            }],
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

/// Routes `/<service>/rest` to `<service>` as `/rest`, and `/<service>` alone to `/`. The
/// prefix keeps its trailing slash so `/service-a/` never swallows `/service-ab/…`.
pub fn ingress_routes(mesh: &Mesh) -> VirtualService {
    let http = mesh
        .services
        .iter()
        .map(|service| HttpRoute {
            name: service.name.clone(),
            matches: vec![
                HttpMatchRequest {
                    uri: StringMatch::Prefix(format!("/{}/", service.name)),
                },
                HttpMatchRequest {
                    uri: StringMatch::Exact(format!("/{}", service.name)),
                },
            ],
            // Istio replaces only the matched part: the prefix for the first match, the whole
            // path for the exact one.
            rewrite: Some(HttpRewrite {
                uri: "/".to_owned(),
            }),
            route: vec![destination(mesh, service)],
            timeout: Some(service.traffic.timeout.to_string()),
            retries: None,
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
