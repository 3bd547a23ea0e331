//! Calls that leave the mesh, as Istio's egress tasks render them: per external entry a
//! `ServiceEntry` (MESH_EXTERNAL, resolved by DNS), for TLS origination a `DestinationRule`
//! whose port 80 opens TLS to the server with its SNI and checks it with `caCertificates`
//! (without them, analyze says IST0129) and for its name (`subjectAltNames`: with an explicit
//! `sni`, istiod checks no name otherwise), and a `VirtualService` carrying the entry's timeout
//! and retries; when an entry names its callers, a `Sidecar` per service that imports only the
//! hosts that service may call (under REGISTRY_ONLY, a host a sidecar does not import is the
//! BlackHoleCluster's). The same objects under either dialect: the Gateway API has no kind for
//! a host outside the cluster, and Istio reads these beside HTTPRoutes.

use super::istio::{
    Destination, EgressListener, EntryLocation, EntryPort, EntryResolution, ExternalRule,
    ExternalRuleSpec, HttpRetry, HttpRoute, HttpRouteDestination, Object, OriginationMode,
    OriginationTls, PortLevelPolicy, PortSelector, PortTrafficPolicy, ServiceEntry,
    ServiceEntrySpec, Sidecar, SidecarSelector, SidecarSpec, VirtualService, VirtualServiceSpec,
};
use super::meta;
use crate::model::traffic::{DEFAULT_PER_TRY_TIMEOUT, DEFAULT_RETRY_ATTEMPTS, DEFAULT_RETRY_ON};
use crate::model::{External, Mesh, Service};

/// The file the egress objects go in.
pub const FILE: &str = "istio/egress.yaml";
/// The root namespace, which a Sidecar's egress must import for the ingress gateway and istiod.
const ROOT_NAMESPACE_HOSTS: &str = "istio-system/*";

pub fn service_entry(mesh: &Mesh, e: &External) -> ServiceEntry {
    let port = if e.tls_origination {
        // The app's plain HTTP on port 80, sent by the sidecar to the server's TLS port.
        EntryPort {
            number: u32::from(e.app_port()),
            name: "http".to_owned(),
            protocol: "HTTP".to_owned(),
            target_port: Some(u32::from(e.port)),
        }
    } else {
        EntryPort {
            number: u32::from(e.port),
            name: e.protocol.istio().to_lowercase(),
            protocol: e.protocol.istio().to_owned(),
            target_port: None,
        }
    };
    Object::new(
        meta::meta(&e.name, Some(&mesh.namespace), &[]),
        ServiceEntrySpec {
            hosts: vec![e.host.clone()],
            location: EntryLocation::MeshExternal,
            resolution: EntryResolution::Dns,
            ports: vec![port],
        },
    )
}

/// TLS origination on the app's port: `None` for an entry the app speaks to as it is.
pub fn destination_rule(mesh: &Mesh, e: &External) -> Option<ExternalRule> {
    e.tls_origination.then(|| {
        Object::new(
            meta::meta(&e.name, Some(&mesh.namespace), &[]),
            ExternalRuleSpec {
                host: e.host.clone(),
                traffic_policy: PortLevelPolicy {
                    port_level_settings: vec![PortTrafficPolicy {
                        port: PortSelector {
                            number: u32::from(e.app_port()),
                        },
                        tls: OriginationTls {
                            mode: OriginationMode::Simple,
                            sni: e.host.clone(),
                            subject_alt_names: vec![e.host.clone()],
                            ca_certificates: e.ca_certificates.clone(),
                        },
                    }],
                },
            },
        )
    })
}

/// The retries of a call to an outside server: only failures where the request never reached
/// it, as for calls inside the mesh.
pub fn retries() -> HttpRetry {
    HttpRetry {
        attempts: DEFAULT_RETRY_ATTEMPTS,
        per_try_timeout: Some(DEFAULT_PER_TRY_TIMEOUT.to_string()),
        retry_on: DEFAULT_RETRY_ON.to_owned(),
    }
}

/// The entry's timeout and retries, for the sidecars (`mesh`): `None` for a TLS stream the
/// sidecar does not open, whose requests it never sees.
pub fn virtual_service(mesh: &Mesh, e: &External) -> Option<VirtualService> {
    e.is_http().then(|| {
        Object::new(
            meta::meta(&e.name, Some(&mesh.namespace), &[]),
            VirtualServiceSpec {
                hosts: vec![e.host.clone()],
                gateways: vec!["mesh".to_owned()],
                http: vec![HttpRoute {
                    name: e.name.clone(),
                    matches: Vec::new(),
                    rewrite: None,
                    route: vec![HttpRouteDestination {
                        destination: Destination {
                            host: e.host.clone(),
                            subset: None,
                            port: PortSelector {
                                number: u32::from(e.app_port()),
                            },
                        },
                        weight: None,
                    }],
                    timeout: Some(e.timeout.to_string()),
                    retries: Some(retries()),
                    fault: None,
                }],
            },
        )
    })
}

/// What `service`'s sidecar imports when some entry names its callers: every service of the
/// mesh, the root namespace, and the external hosts it may call.
pub fn sidecar(mesh: &Mesh, service: &Service) -> Sidecar {
    let hosts = mesh
        .services
        .iter()
        .map(|s| format!("./{}", mesh.fqdn(s)))
        .chain(
            mesh.external
                .iter()
                .filter(|e| e.admits(&service.name))
                .map(|e| format!("./{}", e.host)),
        )
        .chain([ROOT_NAMESPACE_HOSTS.to_owned()])
        .collect();
    Object::new(
        meta::meta(
            &service.name,
            Some(&mesh.namespace),
            &[(meta::APP, &service.name)],
        ),
        SidecarSpec {
            workload_selector: SidecarSelector {
                labels: meta::app_selector(service),
            },
            egress: vec![EgressListener { hosts }],
        },
    )
}

/// Whether the render needs per-service Sidecars: some entry keeps a caller out.
pub fn restricts_callers(mesh: &Mesh) -> bool {
    mesh.external.iter().any(|e| e.callers.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MeshInput;

    fn mesh(yaml: &str) -> Mesh {
        Mesh::from_input(MeshInput::from_yaml(yaml).unwrap()).unwrap()
    }

    #[test]
    fn tls_origination_as_istio_teaches_it() {
        let m = mesh(
            "services: 2\noutbound_policy: registry_only\nexternal:\n  - {name: payments, host: api.payments.example, port: 443, protocol: https, tls_origination: true, timeout: 3s, callers: [service-b]}\n",
        );
        let e = &m.external[0];
        let se = serde_json::to_value(service_entry(&m, e)).unwrap();
        assert_eq!(se["spec"]["location"], "MESH_EXTERNAL");
        assert_eq!(se["spec"]["resolution"], "DNS");
        assert_eq!(
            se["spec"]["ports"][0],
            serde_json::json!({"number": 80, "name": "http", "protocol": "HTTP", "targetPort": 443})
        );
        let dr = serde_json::to_value(destination_rule(&m, e).unwrap()).unwrap();
        let tls = &dr["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"];
        assert_eq!(tls["mode"], "SIMPLE");
        assert_eq!(tls["sni"], "api.payments.example");
        assert_eq!(tls["subjectAltNames"][0], "api.payments.example");
        assert_eq!(
            tls["caCertificates"],
            crate::model::external::SYSTEM_CA_BUNDLE
        );
        let vs = serde_json::to_value(virtual_service(&m, e).unwrap()).unwrap();
        assert_eq!(vs["spec"]["http"][0]["timeout"], "3s");
        let a = serde_json::to_value(sidecar(&m, &m.services[0])).unwrap();
        let b = serde_json::to_value(sidecar(&m, &m.services[1])).unwrap();
        let imports = |v: &serde_json::Value, host: &str| {
            v["spec"]["egress"][0]["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h == &format!("./{host}"))
        };
        assert!(!imports(&a, "api.payments.example"));
        assert!(imports(&b, "api.payments.example"));
        assert!(imports(&a, "service-b.istio-demo.svc.cluster.local"));
    }

    #[test]
    fn a_tls_stream_has_no_route_and_no_origination() {
        let m =
            mesh("external:\n  - {name: db, host: db.example.org, port: 5432, protocol: tls}\n");
        let e = &m.external[0];
        assert!(destination_rule(&m, e).is_none());
        assert!(virtual_service(&m, e).is_none());
        let se = serde_json::to_value(service_entry(&m, e)).unwrap();
        assert_eq!(se["spec"]["ports"][0]["protocol"], "TLS");
    }
}
