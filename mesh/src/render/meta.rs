//! Names and labels every rendered object shares, so selectors elsewhere (the WasmPlugin, the
//! Service, the subsets) and the labels they select are written in one place.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::model::Service;

pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "meshtally");
pub const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "meshtally");
pub const APP: &str = "app";
pub const VERSION_LABEL: &str = "version";

/// Names of the mesh-wide objects. Service names may not start with `meshtally-`, so these
/// never collide with a per-service object of the same kind.
pub const GATEWAY: &str = "meshtally-gateway";
pub const INGRESS_ROUTES: &str = "meshtally-ingress";
pub const WASM_PLUGIN_OUTBOUND: &str = "meshtally-outbound";
pub const WASM_PLUGIN_INBOUND: &str = "meshtally-inbound";
pub const FILTER_CONFIGMAP: &str = "meshtally-filter";
/// A namespace-wide PeerAuthentication is conventionally called `default`.
pub const PEER_AUTHENTICATION: &str = "default";

pub fn labels(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    [MANAGED_BY, PART_OF]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Metadata with the shared labels plus `extra`.
pub fn meta(name: &str, namespace: Option<&str>, extra: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels(extra)),
        ..ObjectMeta::default()
    }
}

/// Labels of one version's Deployment and pods: `app` and `version`, which Istio's telemetry
/// and the subsets read, besides the shared ones the WasmPlugin selects on.
pub fn workload_labels(service: &Service, version: &str) -> BTreeMap<String, String> {
    labels(&[(APP, &service.name), (VERSION_LABEL, version)])
}

/// What selects a service's pods, whatever their version.
pub fn app_selector(service: &Service) -> BTreeMap<String, String> {
    BTreeMap::from([(APP.to_owned(), service.name.clone())])
}
