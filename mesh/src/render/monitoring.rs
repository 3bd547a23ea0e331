//! The Prometheus Operator's PodMonitor for the mesh's sidecars, as Istio documents the scrape
//! of merged metrics: every meshtally pod's `prometheus.io/port` (15020, where pilot-agent
//! serves Envoy's and the app's metrics together) at `prometheus.io/path`, labelled with the
//! pod's namespace, name, service (`app`) and `version` — the same labels `up --prometheus`
//! gives locally, so the dashboard's queries work on both. Written to `monitoring/` beside the
//! manifests, not applied by `apply`: it needs the operator's CRDs on the cluster.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;

use super::istio::{Kind, Object};
use super::meta::{meta, APP, PART_OF, VERSION_LABEL};
use crate::model::Mesh;

/// Its name, and its file in an output folder.
pub const NAME: &str = "meshtally-sidecars";
pub const FILE: &str = "monitoring/podmonitor.yaml";

/// The Prometheus Operator's kind, typed like the Istio ones: the type fixes `kind` and
/// `apiVersion`.
pub type PodMonitor = Object<PodMonitorSpec>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorSpec {
    pub job_label: String,
    pub namespace_selector: NamespaceSelector,
    pub selector: LabelSelector,
    pub pod_metrics_endpoints: Vec<PodMetricsEndpoint>,
}

impl Kind for PodMonitorSpec {
    const KIND: &'static str = "PodMonitor";
    const API_VERSION: &'static str = "monitoring.coreos.com/v1";
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    pub match_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMetricsEndpoint {
    pub path: String,
    pub interval: String,
    pub relabelings: Vec<Relabeling>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Relabeling {
    pub action: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_labels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,
}

fn relabel(
    action: &str,
    sources: &[&str],
    regex: Option<&str>,
    replacement: Option<&str>,
    target: Option<&str>,
) -> Relabeling {
    Relabeling {
        action: action.to_owned(),
        source_labels: sources.iter().map(|s| (*s).to_owned()).collect(),
        regex: regex.map(str::to_owned),
        replacement: replacement.map(str::to_owned),
        target_label: target.map(str::to_owned),
    }
}

/// A pod label as Prometheus's Kubernetes discovery names it.
fn pod_label(label: &str) -> String {
    let sanitized: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("__meta_kubernetes_pod_label_{sanitized}")
}

pub fn pod_monitor(mesh: &Mesh) -> PodMonitor {
    const PORT: &str = "__meta_kubernetes_pod_annotation_prometheus_io_port";
    const IP: &str = "__meta_kubernetes_pod_ip";
    let app = pod_label(APP);
    let version = pod_label(VERSION_LABEL);
    let relabelings = vec![
        // Only pods whose sidecar merges metrics (Istio annotates them), through the agent's
        // merged port, as Istio's own PodMonitor does (IPv6 first, then IPv4).
        relabel(
            "keep",
            &["__meta_kubernetes_pod_container_name"],
            Some("istio-proxy"),
            None,
            None,
        ),
        relabel(
            "keep",
            &["__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape"],
            Some("true"),
            None,
            None,
        ),
        relabel(
            "replace",
            &[PORT, IP],
            Some(r"(\d+);(([A-Fa-f0-9]{1,4}::?){1,7}[A-Fa-f0-9]{1,4})"),
            Some("[$2]:$1"),
            Some("__address__"),
        ),
        relabel(
            "replace",
            &[PORT, IP],
            Some(r"(\d+);((([0-9]+?)(\.|$)){4})"),
            Some("$2:$1"),
            Some("__address__"),
        ),
        relabel(
            "replace",
            &["__meta_kubernetes_namespace"],
            None,
            None,
            Some("namespace"),
        ),
        relabel(
            "replace",
            &["__meta_kubernetes_pod_name"],
            None,
            None,
            Some("pod"),
        ),
        relabel("replace", &[app.as_str()], None, None, Some("service")),
        relabel("replace", &[version.as_str()], None, None, Some("version")),
    ];
    PodMonitor::new(
        meta(NAME, Some(&mesh.namespace), &[]),
        PodMonitorSpec {
            job_label: APP.to_owned(),
            namespace_selector: NamespaceSelector {
                match_names: vec![mesh.namespace.clone()],
            },
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    PART_OF.0.to_owned(),
                    PART_OF.1.to_owned(),
                )])),
                ..LabelSelector::default()
            },
            pod_metrics_endpoints: vec![PodMetricsEndpoint {
                path: "/stats/prometheus".to_owned(),
                interval: "15s".to_owned(),
                relabelings,
            }],
        },
    )
}
