//! The namespace, labelled so Istio injects a sidecar into every pod created in it.

use k8s_openapi::api::core::v1::Namespace;

use super::meta;
use crate::model::Mesh;

pub fn namespace(mesh: &Mesh) -> Namespace {
    Namespace {
        metadata: meta::meta(&mesh.namespace, None, &[("istio-injection", "enabled")]),
        ..Namespace::default()
    }
}
