//! Istio's install-time settings, in the one file a user passes to `istioctl install -f`: the
//! demo profile, the tracing extension provider ([`super::tracing`]) and the outbound traffic
//! policy (ALLOW_ANY or REGISTRY_ONLY, [`crate::model::OutboundPolicy`]). Written beside the
//! manifests, never applied by `apply`: it configures Istio itself, for every namespace.

use serde::{Deserialize, Serialize};

use super::istio::{Kind, Object};
use super::meta::meta;
use super::security::INGRESS_NAMESPACE;
use super::tracing::{extension_provider, ExtensionProvider};
use crate::model::Mesh;

pub const FILE: &str = "monitoring/istio-install.yaml";
/// The profile the install file builds on: the one the README's cluster quick start installs.
pub const PROFILE: &str = "demo";

pub type IstioOperator = Object<IstioOperatorSpec>;

impl Kind for IstioOperatorSpec {
    const KIND: &'static str = "IstioOperator";
    const API_VERSION: &'static str = "install.istio.io/v1alpha1";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioOperatorSpec {
    pub profile: String,
    pub mesh_config: MeshConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshConfig {
    pub enable_tracing: bool,
    pub extension_providers: Vec<ExtensionProvider>,
    pub outbound_traffic_policy: OutboundTrafficPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundTrafficPolicy {
    pub mode: String,
}

/// The demo profile with the `zipkin` provider and the mesh's outbound policy, written out
/// even when it is Istio's default, so the file says what the mesh expects.
pub fn istio_operator(mesh: &Mesh) -> IstioOperator {
    IstioOperator::new(
        meta("meshtally", Some(INGRESS_NAMESPACE), &[]),
        IstioOperatorSpec {
            profile: PROFILE.to_owned(),
            mesh_config: MeshConfig {
                enable_tracing: true,
                extension_providers: vec![extension_provider()],
                outbound_traffic_policy: OutboundTrafficPolicy {
                    mode: mesh.outbound_policy.istio().to_owned(),
                },
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MeshInput;

    #[test]
    fn carries_tracing_and_the_outbound_policy() {
        let mesh =
            Mesh::from_input(MeshInput::from_yaml("outbound_policy: registry_only\n").unwrap())
                .unwrap();
        let v = serde_json::to_value(istio_operator(&mesh)).unwrap();
        let config = &v["spec"]["meshConfig"];
        assert_eq!(config["outboundTrafficPolicy"]["mode"], "REGISTRY_ONLY");
        assert_eq!(config["extensionProviders"][0]["name"], "zipkin");
        let default = Mesh::from_input(MeshInput::default()).unwrap();
        let v = serde_json::to_value(istio_operator(&default)).unwrap();
        assert_eq!(
            v["spec"]["meshConfig"]["outboundTrafficPolicy"]["mode"],
            "ALLOW_ANY"
        );
    }
}
