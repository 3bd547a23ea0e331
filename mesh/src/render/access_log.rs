//! The JSON access log for a cluster's sidecars, as an EnvoyFilter: the same format the local
//! proxies write (`crate::observe::access`), to the istio-proxy container's stdout, so
//! `deployer tap --kubectl` and `edges --kubectl` read `kubectl logs` of each sidecar. One patch
//! per direction merges the log into every HTTP connection manager of the mesh's sidecars.
//! Written to `monitoring/` beside the manifests and applied by the user (`kubectl apply -f`):
//! an EnvoyFilter changes Envoy config outside Istio's API, so `apply` does not do it unasked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::istio::{Kind, Object};
use super::meta::{meta, PART_OF};
use crate::model::Mesh;
use meshtally_wire::access::envoy_access_log;

pub const NAME: &str = "meshtally-access-log";
pub const FILE: &str = "monitoring/access-log.yaml";
/// The proxy's name in each line: the pod's, from the environment Istio's injector sets.
const POD_NAME: &str = "%ENVIRONMENT(POD_NAME)%";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyFilterSpec {
    pub workload_selector: WorkloadSelector,
    pub config_patches: Vec<ConfigPatch>,
}

impl Kind for EnvoyFilterSpec {
    const KIND: &'static str = "EnvoyFilter";
    const API_VERSION: &'static str = "networking.istio.io/v1alpha3";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSelector {
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigPatch {
    pub apply_to: String,
    #[serde(rename = "match")]
    pub matches: Value,
    pub patch: Patch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patch {
    pub operation: String,
    pub value: Value,
}

const HCM: &str = "envoy.filters.network.http_connection_manager";
const HCM_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

fn patch(context: &str, direction: &str) -> ConfigPatch {
    ConfigPatch {
        apply_to: "NETWORK_FILTER".into(),
        matches: json!({"context": context, "listener": {"filterChain": {"filter": {"name": HCM}}}}),
        patch: Patch {
            operation: "MERGE".into(),
            value: json!({"typed_config": {
                "@type": HCM_TYPE,
                "access_log": [envoy_access_log("/dev/stdout", POD_NAME, None, direction)],
            }}),
        },
    }
}

pub fn envoy_filter(mesh: &Mesh) -> Object<EnvoyFilterSpec> {
    Object::new(
        meta(NAME, Some(&mesh.namespace), &[]),
        EnvoyFilterSpec {
            workload_selector: WorkloadSelector {
                labels: BTreeMap::from([(PART_OF.0.to_owned(), PART_OF.1.to_owned())]),
            },
            config_patches: vec![
                patch("SIDECAR_INBOUND", "inbound"),
                patch("SIDECAR_OUTBOUND", "outbound"),
            ],
        },
    )
}
