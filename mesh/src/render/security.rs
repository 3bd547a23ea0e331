//! Who may talk to whom: STRICT mTLS for the whole namespace, and per service an ALLOW policy
//! naming exactly the other services' identities and the ingress gateway's.

use super::directory::Directory;
use super::istio::{
    AuthorizationPolicy, AuthorizationPolicySpec, AuthzAction, Object, PeerAuthentication,
    PeerAuthenticationSpec, PeerMtls, Rule, RuleFrom, Source, WorkloadSelector,
};
use super::meta;
use crate::model::{Mesh, Service};

pub use meshtally_wire::ingress::{ingress_principal, INGRESS_NAMESPACE, INGRESS_SERVICE_ACCOUNT};

pub fn peer_authentication(mesh: &Mesh) -> PeerAuthentication {
    Object::new(
        meta::meta(meta::PEER_AUTHENTICATION, Some(&mesh.namespace), &[]),
        PeerAuthenticationSpec {
            mtls: PeerMtls { mode: mesh.mtls },
        },
    )
}

/// Once any ALLOW policy selects a workload, Istio denies whatever no policy allows, so this
/// one policy is the whole list of callers. Kubelet's probes are not among them and need not
/// be: the sidecar injector rewrites HTTP probes to istio-agent's port 15020, which is not
/// intercepted, and the agent calls the app over localhost.
pub fn authorization_policy(
    mesh: &Mesh,
    directory: &Directory,
    service: &Service,
) -> AuthorizationPolicy {
    let mut principals = directory.principals(service);
    principals.push(ingress_principal());
    Object::new(
        meta::meta(
            &service.name,
            Some(&mesh.namespace),
            &[(meta::APP, &service.name)],
        ),
        AuthorizationPolicySpec {
            selector: WorkloadSelector {
                match_labels: meta::app_selector(service),
            },
            action: AuthzAction::Allow,
            rules: vec![Rule {
                from: vec![RuleFrom {
                    source: Source { principals },
                }],
            }],
        },
    )
}
