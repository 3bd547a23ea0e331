//! `deployer delete`: removes what `apply` created and nothing else. Every delete selects by the
//! `app.kubernetes.io/managed-by=meshtally` label (never `--all`), kind by kind with fully
//! qualified names (Istio's `gateways` is not the Gateway API's), in the order that keeps the
//! mesh safe while it goes: ingress routes first so no new traffic comes in, then the workloads
//! (waiting for their pods to stop), then the rest, and the security policies last, so no pod
//! ever runs without them. The Namespace goes only when meshtally alone manages it: a namespace
//! that existed before (or that someone else also edits) may hold objects that are not ours.

use crate::output::outln;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::checks;
use super::kubectl::Kubectl;
use crate::render::meta::MANAGED_BY;

/// The selector every delete uses: the label the renderer puts on every object.
pub fn selector() -> String {
    format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)
}

/// One `kubectl delete` of some kinds in the mesh's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub what: &'static str,
    pub kinds: Vec<&'static str>,
    /// Deployments are deleted in the foreground so the command returns once their pods are gone.
    pub foreground: bool,
}

/// The steps, in order. Kinds whose CRD the cluster lacks (Istio uninstalled since) are left
/// out: nothing of them can exist, and kubectl would fail on the unknown type.
pub fn steps(missing_crds: &[&str]) -> Vec<Step> {
    let keep = |kinds: &[&'static str]| -> Vec<&'static str> {
        kinds
            .iter()
            .copied()
            .filter(|k| !missing_crds.contains(k))
            .collect()
    };
    let all = [
        Step {
            what: "ingress routes and gateway",
            kinds: keep(&[
                "virtualservices.networking.istio.io",
                "gateways.networking.istio.io",
            ]),
            foreground: false,
        },
        Step {
            what: "workloads",
            kinds: keep(&["deployments.apps"]),
            foreground: true,
        },
        Step {
            what: "services, traffic rules, filter",
            kinds: keep(&[
                "services",
                "destinationrules.networking.istio.io",
                "wasmplugins.extensions.istio.io",
                "configmaps",
                "serviceaccounts",
            ]),
            foreground: false,
        },
        Step {
            what: "security policies",
            kinds: keep(&[
                "authorizationpolicies.security.istio.io",
                "peerauthentications.security.istio.io",
            ]),
            foreground: false,
        },
    ];
    all.into_iter().filter(|s| !s.kinds.is_empty()).collect()
}

impl Step {
    pub fn args(&self, namespace: &str, timeout: Duration) -> Vec<String> {
        let mut args = vec![
            "delete".to_owned(),
            self.kinds.join(","),
            "-n".to_owned(),
            namespace.to_owned(),
            "-l".to_owned(),
            selector(),
            "--ignore-not-found".to_owned(),
            "--wait=true".to_owned(),
            format!("--timeout={}s", timeout.as_secs()),
        ];
        if self.foreground {
            args.push("--cascade=foreground".to_owned());
        }
        args
    }
}

/// The Namespace's delete: by the label too, and by name through a field selector (kubectl
/// takes no name together with a label selector), so only this namespace can match.
pub fn namespace_args(namespace: &str, timeout: Duration) -> Vec<String> {
    vec![
        "delete".to_owned(),
        "namespace".to_owned(),
        format!("--field-selector=metadata.name={namespace}"),
        "-l".to_owned(),
        selector(),
        "--ignore-not-found".to_owned(),
        "--wait=true".to_owned(),
        format!("--timeout={}s", timeout.as_secs()),
    ]
}

/// Whether the Namespace (as `kubectl get namespace -o json` printed it) may be deleted.
#[derive(Debug, PartialEq, Eq)]
pub enum NamespaceVerdict {
    Delete,
    Absent,
    NotOurs,
    /// Managed by others as well (their manager names).
    Shared(Vec<String>),
}

pub fn namespace_verdict(json: &str) -> Result<NamespaceVerdict> {
    if json.trim().is_empty() {
        return Ok(NamespaceVerdict::Absent);
    }
    let ns: Value =
        serde_json::from_str(json).context("kubectl printed a namespace that is not JSON")?;
    let meta = &ns["metadata"];
    if meta["labels"][MANAGED_BY.0].as_str() != Some(MANAGED_BY.1) {
        return Ok(NamespaceVerdict::NotOurs);
    }
    let mut others: Vec<String> = meta["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        // Status is the control plane's; only who set the namespace's own fields matters.
        .filter(|entry| entry["subresource"].as_str() != Some("status"))
        .filter(|entry| {
            entry["fieldsV1"]
                .as_object()
                .is_none_or(|fields| fields.keys().any(|k| k != "f:status"))
        })
        .filter_map(|entry| entry["manager"].as_str())
        .filter(|manager| *manager != super::apply::FIELD_MANAGER)
        .map(str::to_owned)
        .collect();
    others.sort();
    others.dedup();
    if others.is_empty() {
        Ok(NamespaceVerdict::Delete)
    } else {
        Ok(NamespaceVerdict::Shared(others))
    }
}

/// A checked delete: the cluster answers.
pub struct DeletePlan {
    kubectl: Kubectl,
    namespace: String,
    timeout: Duration,
}

pub fn plan(kubectl: Kubectl, namespace: String, timeout: Duration) -> Result<DeletePlan> {
    checks::reachable(&kubectl)?;
    Ok(DeletePlan {
        kubectl,
        namespace,
        timeout,
    })
}

/// What `--dry-run` prints: every command, the Namespace's with the condition it runs under.
pub fn dry_run(kubectl: &Kubectl, namespace: &str, timeout: Duration) -> String {
    let mut out = String::new();
    for step in steps(&[]) {
        let args = step.args(namespace, timeout);
        out.push_str(&kubectl.display(&as_strs(&args)));
        out.push('\n');
    }
    out.push_str(&format!(
        "# then, only if meshtally alone manages namespace {namespace} (checked with `{}`):\n",
        kubectl.display(&namespace_get_args(namespace))
    ));
    out.push_str(&kubectl.display(&as_strs(&namespace_args(namespace, timeout))));
    out.push('\n');
    out
}

impl DeletePlan {
    pub fn run(self) -> Result<()> {
        let ns = self.namespace.as_str();
        // Unknown kinds are skipped rather than failed on; if even the CRD list cannot be read,
        // every kind is tried and kubectl's own error says what is wrong.
        let missing = checks::missing_istio_crds(&self.kubectl).unwrap_or_default();
        let mut deleted = 0;
        for step in steps(&missing) {
            eprintln!("deleting {} in {ns}…", step.what);
            let out = self
                .kubectl
                .run(&as_strs(&step.args(ns, self.timeout)), None)?;
            deleted += count_deleted(&out);
        }
        let json = self.kubectl.run(&namespace_get_args(ns), None)?;
        let verdict = namespace_verdict(&String::from_utf8_lossy(&json))?;
        match verdict {
            NamespaceVerdict::Delete => {
                eprintln!("deleting namespace {ns}…");
                let out = self
                    .kubectl
                    .run(&as_strs(&namespace_args(ns, self.timeout)), None)?;
                deleted += count_deleted(&out);
                outln!("deleted {deleted} objects, namespace {ns} included")?;
            }
            NamespaceVerdict::Absent => {
                outln!("deleted {deleted} objects; namespace {ns} does not exist")?
            }
            NamespaceVerdict::NotOurs => outln!(
                "deleted {deleted} objects; namespace {ns} is not labelled {}, so it stays",
                selector()
            )?,
            NamespaceVerdict::Shared(managers) => outln!(
                "deleted {deleted} objects; namespace {ns} stays: it is also managed by {} \
                 (`kubectl delete namespace {ns}` removes it and everything left in it)",
                managers.join(", ")
            )?,
        }
        Ok(())
    }
}

/// The namespace as JSON, with its managed fields: kubectl leaves them out unless asked, and
/// they are what says who else manages it.
fn namespace_get_args(namespace: &str) -> [&str; 7] {
    [
        "get",
        "namespace",
        namespace,
        "--ignore-not-found",
        "--show-managed-fields",
        "-o",
        "json",
    ]
}

/// kubectl prints one line per object: `<kind> "<name>" deleted`, since 1.33
/// `<kind> "<name>" deleted from <namespace> namespace`.
fn count_deleted(stdout: &[u8]) -> usize {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(str::trim_end)
        .filter(|l| l.ends_with("\" deleted") || l.contains("\" deleted from "))
        .count()
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The resource each rendered kind is deleted as.
    const RESOURCES: [(&str, &str); 10] = [
        ("ServiceAccount", "serviceaccounts"),
        ("Deployment", "deployments.apps"),
        ("Service", "services"),
        ("ConfigMap", "configmaps"),
        ("Gateway", "gateways.networking.istio.io"),
        ("VirtualService", "virtualservices.networking.istio.io"),
        ("DestinationRule", "destinationrules.networking.istio.io"),
        (
            "PeerAuthentication",
            "peerauthentications.security.istio.io",
        ),
        (
            "AuthorizationPolicy",
            "authorizationpolicies.security.istio.io",
        ),
        ("WasmPlugin", "wasmplugins.extensions.istio.io"),
    ];

    #[test]
    fn every_kind_the_render_makes_is_deleted_by_label() {
        use crate::model::{Delivery, Mesh, MeshInput, Module};
        let mesh = Mesh::from_input(MeshInput::default()).unwrap();
        let delivery = Delivery::ConfigMap(Module::from_bytes(b"\0asm\x01\0\0\0".to_vec()));
        let mut stream = Vec::new();
        crate::render::render(&mesh, &delivery)
            .unwrap()
            .write_stream(&mut stream, true)
            .unwrap();
        let text = String::from_utf8(stream).unwrap();
        let rendered: std::collections::BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("kind: "))
            .collect();
        let deleted: Vec<&str> = steps(&[]).iter().flat_map(|s| s.kinds.clone()).collect();
        for kind in rendered {
            if kind == "Namespace" {
                continue;
            }
            let resource = RESOURCES
                .iter()
                .find(|(k, _)| *k == kind)
                .unwrap_or_else(|| panic!("rendered kind {kind} has no delete"))
                .1;
            assert!(deleted.contains(&resource), "{kind} is not deleted");
        }
        assert_eq!(deleted.len(), RESOURCES.len());
        for step in steps(&[]) {
            let args = step.args("demo", Duration::from_secs(60));
            assert!(args
                .windows(2)
                .any(|w| w == ["-l", "app.kubernetes.io/managed-by=meshtally"]));
            assert!(args.windows(2).any(|w| w == ["-n", "demo"]));
            assert!(!args.iter().any(|a| a.starts_with("--all")));
        }
        let ns = namespace_args("demo", Duration::from_secs(60));
        assert!(ns.contains(&"--field-selector=metadata.name=demo".to_owned()));
    }

    #[test]
    fn missing_crds_drop_their_kinds() {
        let only_k8s = steps(&checks::ISTIO_CRDS);
        let kinds: Vec<&str> = only_k8s.iter().flat_map(|s| s.kinds.clone()).collect();
        assert_eq!(
            kinds,
            [
                "deployments.apps",
                "services",
                "configmaps",
                "serviceaccounts"
            ]
        );
    }

    #[test]
    fn deleted_lines_old_and_new() {
        let out = b"deployment.apps \"a\" deleted\nservice \"a\" deleted from shop namespace\n\
                    namespace \"shop\" deleted\nWarning: something deleted\n";
        assert_eq!(count_deleted(out), 3);
    }

    #[test]
    fn namespace_verdicts() {
        let ours = r#"{"metadata":{"labels":{"app.kubernetes.io/managed-by":"meshtally"},
            "managedFields":[{"manager":"meshtally","operation":"Apply","fieldsV1":{"f:metadata":{}}},
            {"manager":"kube-controller-manager","operation":"Update","subresource":"status","fieldsV1":{"f:status":{}}}]}}"#;
        assert_eq!(namespace_verdict(ours).unwrap(), NamespaceVerdict::Delete);
        let shared = r#"{"metadata":{"labels":{"app.kubernetes.io/managed-by":"meshtally"},
            "managedFields":[{"manager":"kubectl-create","operation":"Update","fieldsV1":{"f:metadata":{}}},
            {"manager":"meshtally","operation":"Apply","fieldsV1":{"f:metadata":{}}}]}}"#;
        assert_eq!(
            namespace_verdict(shared).unwrap(),
            NamespaceVerdict::Shared(vec!["kubectl-create".into()])
        );
        let foreign = r#"{"metadata":{"labels":{"team":"x"}}}"#;
        assert_eq!(
            namespace_verdict(foreign).unwrap(),
            NamespaceVerdict::NotOurs
        );
        assert_eq!(namespace_verdict("\n").unwrap(), NamespaceVerdict::Absent);
        assert!(namespace_verdict("{").is_err());
    }
}
