//! The meshtally filter in every sidecar: the WasmPlugin that loads it, the pod annotations that
//! make the sidecars keep and label its stats, and, for a locally built module, the ConfigMap
//! that carries it and the annotations that mount it into the sidecar.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::ByteString;
use meshtally_core::config::DEFAULT_MAX_HOPS;
use meshtally_wire::metrics::TAG_NAMES;
use serde::Serialize;

use super::istio::{
    ExternalPluginEntry, FailStrategy, Object, PluginConfig, PluginDirection, PluginPhase,
    PluginType, TrafficSelector, WasmPlugin, WasmPluginSpec, WorkloadMode, WorkloadSelector,
};
use super::meta;
use crate::model::{Delivery, Mesh, Module};

/// The ConfigMap key, and so the file name under the mount.
pub const MODULE_KEY: &str = "meshtally_filter.wasm";
/// Where the ConfigMap is mounted in the sidecar (istio-proxy) container.
pub const MOUNT_PATH: &str = "/var/local/meshtally";
/// The ConfigMap annotation recording which module it holds.
pub const SHA256_ANNOTATION: &str = "meshtally.io/module-sha256";
/// Matches both meshtally metrics (`meshtally_requests_total`,
/// `meshtally_request_duration_milliseconds`) whatever Envoy prefixes to them. Without an
/// inclusion rule the sidecar drops custom stats from its Prometheus output.
pub const STATS_REGEX: &str = ".*meshtally_.*";

/// The filter's stats are only useful with the sidecar keeping them and turning the
/// `tag=.=value;.;` parts of their names into labels, which `extraStatTags` asks for.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProxyConfig {
    proxy_stats_matcher: StatsMatcher,
    extra_stat_tags: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatsMatcher {
    inclusion_regexps: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserVolume {
    config_map: ConfigMapRef,
}

#[derive(Serialize)]
struct ConfigMapRef {
    name: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserVolumeMount {
    mount_path: &'static str,
    read_only: bool,
}

/// Annotations every meshtally pod carries for its sidecar.
pub fn pod_annotations(delivery: &Delivery) -> Result<BTreeMap<String, String>, serde_json::Error> {
    let proxy = ProxyConfig {
        proxy_stats_matcher: StatsMatcher {
            inclusion_regexps: vec![STATS_REGEX],
        },
        extra_stat_tags: TAG_NAMES.to_vec(),
    };
    let mut annotations = BTreeMap::from([(
        "proxy.istio.io/config".to_owned(),
        serde_json::to_string(&proxy)?,
    )]);
    if let Delivery::ConfigMap(_) = delivery {
        // The injector reads both as JSON maps keyed by volume name (the form Istio's own
        // integration tests use), adding the volume to the pod and the mount to istio-proxy.
        let volume = BTreeMap::from([(
            meta::FILTER_CONFIGMAP,
            UserVolume {
                config_map: ConfigMapRef {
                    name: meta::FILTER_CONFIGMAP,
                },
            },
        )]);
        let mount = BTreeMap::from([(
            meta::FILTER_CONFIGMAP,
            UserVolumeMount {
                mount_path: MOUNT_PATH,
                read_only: true,
            },
        )]);
        annotations.insert(
            "sidecar.istio.io/userVolume".to_owned(),
            serde_json::to_string(&volume)?,
        );
        annotations.insert(
            "sidecar.istio.io/userVolumeMount".to_owned(),
            serde_json::to_string(&mount)?,
        );
    }
    Ok(annotations)
}

/// The two WasmPlugins: one per side of the sidecar (`match.mode` CLIENT for the outbound
/// listener, SERVER for the inbound one), each with its `direction` in its plugin config, so the
/// filter knows its side when it is configured instead of reading the listener's direction as a
/// property on every request. Outbound first, as a call meets it first.
pub fn wasm_plugins(mesh: &Mesh, delivery: &Delivery) -> [WasmPlugin; 2] {
    [
        wasm_plugin(mesh, delivery, PluginDirection::Outbound),
        wasm_plugin(mesh, delivery, PluginDirection::Inbound),
    ]
}

/// The WasmPlugin of one side. For a ConfigMap delivery it names the mounted file and carries
/// no sha256: the module's digest would make this tracked file change with every build, and
/// Istio only verifies a digest when one is set. The digest is recorded on the generated
/// ConfigMap instead; after replacing the module, restart the Deployments so Envoy reloads it.
fn wasm_plugin(mesh: &Mesh, delivery: &Delivery, direction: PluginDirection) -> WasmPlugin {
    let (url, sha256) = match delivery {
        Delivery::Remote { url, sha256 } => (url.clone(), sha256.clone()),
        Delivery::ConfigMap(_) => (format!("file://{MOUNT_PATH}/{MODULE_KEY}"), None),
    };
    let (name, mode) = match direction {
        PluginDirection::Outbound => (meta::WASM_PLUGIN_OUTBOUND, WorkloadMode::Client),
        PluginDirection::Inbound => (meta::WASM_PLUGIN_INBOUND, WorkloadMode::Server),
    };
    Object::new(
        meta::meta(name, Some(&mesh.namespace), &[]),
        WasmPluginSpec {
            // Every meshtally pod carries this label; nothing else in the namespace should.
            selector: WorkloadSelector {
                match_labels: BTreeMap::from([(
                    meta::PART_OF.0.to_owned(),
                    meta::PART_OF.1.to_owned(),
                )]),
            },
            matches: vec![TrafficSelector { mode }],
            url,
            sha256,
            // STATS runs after authentication and authorization, so only admitted calls count.
            phase: PluginPhase::Stats,
            // Unless chosen otherwise, a broken module must not take the mesh down: calls go
            // on, uncounted.
            fail_strategy: FailStrategy::or_default(mesh.fail_strategy),
            plugin_type: PluginType::Http,
            plugin_config: PluginConfig {
                direction,
                max_hops: DEFAULT_MAX_HOPS,
                external: external_config(mesh),
                outbound_policy: outbound_policy_config(mesh),
            },
        },
    )
}

/// The external hosts as the filter's config names them (both back-ends give it the same).
pub fn external_config(mesh: &Mesh) -> BTreeMap<String, ExternalPluginEntry> {
    mesh.external
        .iter()
        .map(|e| {
            let entry = ExternalPluginEntry {
                name: e.name.clone(),
                callers: e.callers.as_ref().map(|c| c.join(",")),
            };
            (e.host.clone(), entry)
        })
        .collect()
}

/// The outbound policy as the filter's config names it: only when it is not the default.
pub fn outbound_policy_config(mesh: &Mesh) -> Option<crate::model::OutboundPolicy> {
    (mesh.outbound_policy != crate::model::OutboundPolicy::default())
        .then_some(mesh.outbound_policy)
}

/// The ConfigMap holding the module. Generated and git-ignored: the bytes are build output.
pub fn config_map(mesh: &Mesh, module: &Module) -> ConfigMap {
    let mut metadata = meta::meta(meta::FILTER_CONFIGMAP, Some(&mesh.namespace), &[]);
    metadata.annotations = Some(BTreeMap::from([(
        SHA256_ANNOTATION.to_owned(),
        module.sha256.clone(),
    )]));
    ConfigMap {
        metadata,
        binary_data: Some(BTreeMap::from([(
            MODULE_KEY.to_owned(),
            ByteString(module.bytes.clone()),
        )])),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtally_wire::metrics::{REQUESTS_TOTAL, REQUEST_DURATION};

    #[test]
    fn stats_regex_covers_both_metrics() {
        let core = STATS_REGEX.trim_start_matches(".*").trim_end_matches(".*");
        assert!(REQUESTS_TOTAL.starts_with(core));
        assert!(REQUEST_DURATION.starts_with(core));
    }

    #[test]
    fn annotations_by_delivery() {
        let remote = Delivery::Remote {
            url: "oci://x".into(),
            sha256: None,
        };
        let a = pod_annotations(&remote).unwrap();
        assert_eq!(
            a["proxy.istio.io/config"],
            r#"{"proxyStatsMatcher":{"inclusionRegexps":[".*meshtally_.*"]},"extraStatTags":["source","destination","destination_version","direction","response_code_class","connection_security_policy"]}"#
        );
        assert!(!a.contains_key("sidecar.istio.io/userVolume"));

        let local = Delivery::ConfigMap(Module::from_bytes(b"\0asm".to_vec()));
        let a = pod_annotations(&local).unwrap();
        assert_eq!(
            a["sidecar.istio.io/userVolume"],
            r#"{"meshtally-filter":{"configMap":{"name":"meshtally-filter"}}}"#
        );
        assert_eq!(
            a["sidecar.istio.io/userVolumeMount"],
            r#"{"meshtally-filter":{"mountPath":"/var/local/meshtally","readOnly":true}}"#
        );
    }
}
