//! After an apply has rolled out, the objects an earlier apply made that this render no longer
//! has are deleted, as Helm and Argo CD prune: a WasmPlugin an upgrade renamed (the single
//! `meshtally` plugin became `meshtally-outbound` and `-inbound`, and the new module refuses the
//! old plugin's config), a service dropped from the mesh file, the other API's routes after
//! `--api` changed. Only objects with meshtally's label, of the kinds `delete` removes, where
//! `delete` looks (the mesh's namespace, and its Gateway API Gateway in istio-system), and only
//! once the new objects are live: make before break.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Deserialize;
use serde_json::Value;

use super::checks;
use super::delete::steps;
use super::kubectl::Kubectl;

/// What names an object to the API server: its group, kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Identity {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl Identity {
    /// From an object (a rendered document or a listed item); `namespace` for one that names
    /// none.
    fn of(object: &Value, namespace: &str) -> Option<Identity> {
        let api_version = object["apiVersion"].as_str()?;
        let group = api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
            .to_owned();
        Some(Identity {
            group,
            kind: object["kind"].as_str()?.to_owned(),
            namespace: object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(namespace)
                .to_owned(),
            name: object["metadata"]["name"].as_str()?.to_owned(),
        })
    }

    /// `kind.group/name`, which kubectl resolves to the one resource whatever other API has a
    /// kind of the same name (Istio's Gateway is not the Gateway API's).
    fn kubectl_ref(&self) -> String {
        let kind = self.kind.to_ascii_lowercase();
        if self.group.is_empty() {
            format!("{kind}/{}", self.name)
        } else {
            format!("{kind}.{}/{}", self.group, self.name)
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Every object of a rendered multi-document YAML stream.
pub fn rendered(stream: &[u8], namespace: &str) -> Result<BTreeSet<Identity>> {
    let mut out = BTreeSet::new();
    for doc in serde_norway::Deserializer::from_slice(stream) {
        let value = Value::deserialize(doc).context("reading the render back")?;
        if let Some(id) = Identity::of(&value, namespace) {
            out.insert(id);
        }
    }
    Ok(out)
}

/// The listed objects (a kubectl JSON List) the render does not have.
pub fn stale(listed: &Value, rendered: &BTreeSet<Identity>, namespace: &str) -> Vec<Identity> {
    listed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| Identity::of(item, namespace))
        .filter(|id| !rendered.contains(id))
        .collect()
}

/// Finds and deletes the stale objects, kind group by kind group in `delete`'s order (ingress
/// routes first, security policies last); returns what went.
pub fn run(
    kubectl: &Kubectl,
    namespace: &str,
    rendered: &BTreeSet<Identity>,
    timeout: Duration,
) -> Result<Vec<Identity>> {
    let crds: Vec<&'static str> = checks::ISTIO_CRDS
        .into_iter()
        .chain(checks::GATEWAY_API_CRDS)
        .collect();
    let missing = checks::missing_crds(kubectl, &crds).unwrap_or_default();
    let mut pruned = Vec::new();
    for step in steps(&missing) {
        let (ns, selector) = step.scope(namespace);
        let kinds = step.kinds.join(",");
        let listed = kubectl.run(
            &[
                "get",
                &kinds,
                "-n",
                &ns,
                "-l",
                &selector,
                "--ignore-not-found",
                "-o",
                "json",
            ],
            None,
        )?;
        // An empty answer (nothing of these kinds) is an empty list.
        let listed: Value = if listed.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&listed).context("reading kubectl's list")?
        };
        for id in stale(&listed, rendered, &ns) {
            eprintln!("pruning {id} (no longer rendered)…");
            kubectl.run(
                &[
                    "delete",
                    &id.kubectl_ref(),
                    "-n",
                    &id.namespace,
                    "--ignore-not-found",
                    "--wait=true",
                    &format!("--timeout={}s", timeout.as_secs().max(1)),
                ],
                None,
            )?;
            pruned.push(id);
        }
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RENDER: &str = "\
---
apiVersion: v1
kind: Namespace
metadata:
  name: istio-demo
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: meshtally-outbound
  namespace: istio-demo
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: meshtally-gateway
  namespace: istio-demo
---
apiVersion: v1
kind: Service
metadata:
  name: service-a
  namespace: istio-demo
";

    fn item(api_version: &str, kind: &str, name: &str) -> Value {
        json!({"apiVersion": api_version, "kind": kind,
               "metadata": {"name": name, "namespace": "istio-demo"}})
    }

    #[test]
    fn only_what_the_render_lacks_is_stale() {
        let rendered = rendered(RENDER.as_bytes(), "istio-demo").unwrap();
        assert_eq!(rendered.len(), 4);
        let listed = json!({"items": [
            item("extensions.istio.io/v1alpha1", "WasmPlugin", "meshtally-outbound"),
            item("extensions.istio.io/v1alpha1", "WasmPlugin", "meshtally"),
            item("v1", "Service", "service-a"),
            item("v1", "Service", "service-d"),
            // The Gateway API's Gateway of the same name is another object than Istio's.
            item("gateway.networking.k8s.io/v1", "Gateway", "meshtally-gateway"),
            item("networking.istio.io/v1", "Gateway", "meshtally-gateway"),
        ]});
        let stale: Vec<String> = stale(&listed, &rendered, "istio-demo")
            .iter()
            .map(|id| format!("{id} {}", id.kubectl_ref()))
            .collect();
        assert_eq!(
            stale,
            [
                "WasmPlugin istio-demo/meshtally wasmplugin.extensions.istio.io/meshtally",
                "Service istio-demo/service-d service/service-d",
                "Gateway istio-demo/meshtally-gateway gateway.gateway.networking.k8s.io/meshtally-gateway",
            ]
        );
        assert!(super::stale(&Value::Null, &rendered, "istio-demo").is_empty());
    }
}
