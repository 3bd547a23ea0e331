//! Traces on a cluster, in Istio's two halves: the install-time half (the `IstioOperator` of
//! [`super::install`], whose `meshConfig` declares the `zipkin` extension provider at `zipkin.istio-system:9411`, which
//! Zipkin and Istio's Jaeger addon both serve), passed to `istioctl install -f`, and the
//! runtime half (the mesh-wide `Telemetry` that turns tracing on with the mesh's sampling and
//! meshtally's span tags, `meshtally_wire::trace::TAGS`). Written to `monitoring/` beside the
//! manifests, not applied by `apply`: the first is install configuration, the second lives in
//! `istio-system`, outside the mesh's namespace.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::istio::{Kind, Object};
use super::meta::meta;
use super::security::INGRESS_NAMESPACE;
use crate::model::Mesh;
use meshtally_wire::trace;

/// The Telemetry's file, and the install-time file.
pub const TELEMETRY_FILE: &str = "monitoring/telemetry.yaml";
pub use super::install::FILE as INSTALL_FILE;
/// The extension provider's name, as Istio's samples and addons name it.
pub const PROVIDER: &str = "zipkin";
/// Where a cluster's collector is: Istio's Zipkin and Jaeger addons both serve it.
pub const COLLECTOR_SERVICE: &str = "zipkin.istio-system.svc.cluster.local";
/// The mesh-wide Telemetry's conventional name (in the root namespace).
pub const TELEMETRY_NAME: &str = "mesh-default";

pub type Telemetry = Object<TelemetrySpec>;

impl Kind for TelemetrySpec {
    const KIND: &'static str = "Telemetry";
    const API_VERSION: &'static str = "telemetry.istio.io/v1";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TelemetrySpec {
    pub tracing: Vec<Tracing>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tracing {
    pub providers: Vec<ProviderRef>,
    pub random_sampling_percentage: f64,
    pub custom_tags: BTreeMap<String, CustomTag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderRef {
    pub name: String,
}

/// Istio's custom tag (a oneof of literal, environment, header and formatter): meshtally's
/// are all request headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomTag {
    pub header: HeaderTag,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderTag {
    pub name: String,
    pub default_value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtensionProvider {
    pub name: String,
    pub zipkin: ZipkinProvider,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZipkinProvider {
    pub service: String,
    pub port: u16,
}

/// meshtally's span tags as Istio's Telemetry spells them.
pub fn custom_tags() -> BTreeMap<String, CustomTag> {
    trace::TAGS
        .iter()
        .map(|(tag, source)| {
            let value = CustomTag {
                header: HeaderTag {
                    name: source.header.to_owned(),
                    default_value: source.default.to_owned(),
                },
            };
            ((*tag).to_owned(), value)
        })
        .collect()
}

/// The mesh-wide Telemetry: the provider, the mesh's sampling, meshtally's tags.
pub fn telemetry(mesh: &Mesh) -> Telemetry {
    Telemetry::new(
        meta(TELEMETRY_NAME, Some(INGRESS_NAMESPACE), &[]),
        TelemetrySpec {
            tracing: vec![Tracing {
                providers: vec![ProviderRef {
                    name: PROVIDER.to_owned(),
                }],
                random_sampling_percentage: mesh.sampling.percent(),
                custom_tags: custom_tags(),
            }],
        },
    )
}

/// The install-time half: the `zipkin` extension provider (in [`super::install`]'s file).
pub fn extension_provider() -> ExtensionProvider {
    ExtensionProvider {
        name: PROVIDER.to_owned(),
        zipkin: ZipkinProvider {
            service: COLLECTOR_SERVICE.to_owned(),
            port: trace::ZIPKIN_PORT,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MeshInput, Sampling};

    #[test]
    fn the_telemetry_carries_the_mesh_sampling_and_every_tag() {
        let mesh = Mesh::from_input(MeshInput {
            sampling: Some(Sampling::try_from(12.5).unwrap()),
            ..MeshInput::default()
        })
        .unwrap();
        let t = serde_json::to_value(telemetry(&mesh)).unwrap();
        let tracing = &t["spec"]["tracing"][0];
        assert_eq!(tracing["randomSamplingPercentage"], 12.5);
        assert_eq!(tracing["providers"][0]["name"], PROVIDER);
        assert_eq!(
            tracing["customTags"][trace::SOURCE]["header"]["name"],
            meshtally_wire::headers::SOURCE
        );
        assert_eq!(
            tracing["customTags"][trace::PEER_VERIFIED]["header"]["defaultValue"],
            "false"
        );
        assert_eq!(
            t["spec"]["tracing"][0]["customTags"]
                .as_object()
                .unwrap()
                .len(),
            trace::TAGS.len()
        );
    }
}
