//! One service's workload: its ServiceAccount (the identity mTLS and the authorization policies
//! name), a Deployment per version running the demo service, and its Kubernetes Service (which
//! selects every version: the subsets split them).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, HTTPGetAction, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext,
    Service as KubeService, ServiceAccount, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use meshtally_wire::app::env;

use super::directory::Directory;
use super::meta;
use crate::model::traffic::Version;
use crate::model::{Mesh, Service};

/// The port name Istio reads the protocol from, and the probes target.
pub const PORT_NAME: &str = "http";
/// An unprivileged UID that is not Istio's reserved 1337 (distroless "nonroot").
const APP_UID: i64 = 65532;

pub fn service_account(mesh: &Mesh, service: &Service) -> ServiceAccount {
    ServiceAccount {
        metadata: meta::meta(&service.name, Some(&mesh.namespace), &[]),
        // The demo service never calls the Kubernetes API; the sidecar has its own token.
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// The Deployments, one per version. `pod_annotations` are the sidecar settings the filter
/// needs (see `filter::pod_annotations`).
pub fn deployments(
    mesh: &Mesh,
    directory: &Directory,
    service: &Service,
    pod_annotations: &BTreeMap<String, String>,
) -> Vec<Deployment> {
    service
        .traffic
        .versions
        .iter()
        .enumerate()
        .map(|(i, v)| deployment(mesh, directory, service, i, v, pod_annotations))
        .collect()
}

fn deployment(
    mesh: &Mesh,
    directory: &Directory,
    service: &Service,
    index: usize,
    version: &Version,
    pod_annotations: &BTreeMap<String, String>,
) -> Deployment {
    let labels = meta::workload_labels(service, &version.name);
    let mut annotations = pod_annotations.clone();
    // `kubectl logs/exec` then pick the app rather than istio-proxy.
    annotations.insert(
        "kubectl.kubernetes.io/default-container".to_owned(),
        service.name.clone(),
    );
    Deployment {
        metadata: ObjectMeta {
            labels: Some(labels.clone()),
            ..meta::meta(
                &service.workload_name(index, &version.name),
                Some(&mesh.namespace),
                &[],
            )
        },
        spec: Some(DeploymentSpec {
            replicas: Some(mesh.replicas),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([
                    (meta::APP.to_owned(), service.name.clone()),
                    (meta::VERSION_LABEL.to_owned(), version.name.clone()),
                ])),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(mesh, directory, service, version)),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn pod_spec(mesh: &Mesh, directory: &Directory, service: &Service, version: &Version) -> PodSpec {
    PodSpec {
        service_account_name: Some(service.name.clone()),
        security_context: Some(PodSecurityContext {
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        containers: vec![Container {
            name: service.name.clone(),
            image: Some(mesh.image.clone()),
            image_pull_policy: Some("IfNotPresent".to_owned()),
            ports: Some(vec![ContainerPort {
                name: Some(PORT_NAME.to_owned()),
                container_port: i32::from(service.port),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            }]),
            env: Some(env(mesh, directory, service, version)),
            // With a sidecar, the injector rewrites these to go through istio-agent on 15020,
            // so kubelet's plaintext probes still reach the app under STRICT mTLS and ALLOW
            // policies that name no kubelet identity.
            readiness_probe: Some(probe(1, 5)),
            liveness_probe: Some(probe(5, 10)),
            resources: Some(ResourceRequirements {
                requests: Some(quantities("25m", "32Mi")),
                limits: Some(quantities("500m", "128Mi")),
                ..ResourceRequirements::default()
            }),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                run_as_non_root: Some(true),
                run_as_user: Some(APP_UID),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".to_owned()]),
                    ..Capabilities::default()
                }),
                ..SecurityContext::default()
            }),
            ..Container::default()
        }],
        ..PodSpec::default()
    }
}

/// The demo service's settings. PEERS is every other service as `name=url`, comma-separated,
/// in mesh order: whom `/call/<name>` may reach; EXTERNAL (when the mesh declares any) the
/// hosts outside it that `/call-external/<name>` calls, every one, so a caller left out is
/// refused by its sidecar, not by the app.
fn env(mesh: &Mesh, directory: &Directory, service: &Service, version: &Version) -> Vec<EnvVar> {
    let fail = version.app_env();
    let external = (!mesh.external.is_empty()).then(|| (env::EXTERNAL, external_env(mesh)));
    [
        (env::SERVICE_NAME, service.name.clone()),
        (env::PORT, service.port.to_string()),
        (env::VERSION, version.name.clone()),
        (env::PEERS, directory.peers(service)),
    ]
    .into_iter()
    .chain(fail)
    .chain(external)
    .map(|(name, value)| EnvVar {
        name: name.to_owned(),
        value: Some(value),
        ..EnvVar::default()
    })
    .collect()
}

/// `EXTERNAL`: every entry an app speaks plain HTTP to, by its declared host.
pub fn external_env(mesh: &Mesh) -> String {
    meshtally_wire::app::format_peers(mesh.external.iter().filter(|e| e.is_http()).map(|e| {
        meshtally_wire::app::peer_entry(
            &e.name,
            &meshtally_wire::app::external_url(&e.host, e.app_port()),
        )
    }))
}

fn probe(initial_delay: i32, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".to_owned()),
            port: IntOrString::String(PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

fn quantities(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_owned(), Quantity(cpu.to_owned())),
        ("memory".to_owned(), Quantity(memory.to_owned())),
    ])
}

pub fn service(mesh: &Mesh, service: &Service) -> KubeService {
    KubeService {
        metadata: meta::meta(
            &service.name,
            Some(&mesh.namespace),
            &[(meta::APP, &service.name)],
        ),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(meta::app_selector(service)),
            ports: Some(vec![ServicePort {
                // Both the name and appProtocol tell Istio this is HTTP, so it routes and
                // counts requests instead of treating the port as opaque TCP.
                name: Some(PORT_NAME.to_owned()),
                app_protocol: Some("http".to_owned()),
                port: i32::from(service.port),
                target_port: Some(IntOrString::Int(i32::from(service.port))),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..KubeService::default()
    }
}
