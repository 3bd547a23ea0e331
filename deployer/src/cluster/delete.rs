//! `deployer delete`: removes what `apply` created and nothing else. Every delete selects by the
//! `app.kubernetes.io/managed-by=meshtally` label (never `--all`), kind by kind with fully
//! qualified names (Istio's `gateways` is not the Gateway API's), in the order that keeps the
//! mesh safe while it goes: ingress routes first so no new traffic comes in, then the workloads
//! (waiting for their pods to stop), then the rest, and the security policies last, so no pod
//! ever runs without them. The Namespace goes only when meshtally created it, alone manages it,
//! and nothing but meshtally's objects lives in it (Helm's rule, one step further: an uninstall
//! never takes a user's object with it), or when the user says `--delete-namespace`.

use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::checks;
use super::kubectl::Kubectl;
use meshtally_mesh::render::httproute;
use meshtally_mesh::render::meta::MANAGED_BY;
use meshtally_mesh::render::security::INGRESS_NAMESPACE;

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
    /// Where else than the mesh's namespace: the Gateway API render's Gateway lives in
    /// istio-system (beside Istio's ingress gateway), labelled with the mesh's namespace.
    pub elsewhere: Option<&'static str>,
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
            what: "ingress Gateway (Gateway API)",
            kinds: keep(&["gateways.gateway.networking.k8s.io"]),
            foreground: false,
            elsewhere: Some(INGRESS_NAMESPACE),
        },
        Step {
            what: "ingress routes and gateway",
            kinds: keep(&[
                "virtualservices.networking.istio.io",
                "gateways.networking.istio.io",
                "httproutes.gateway.networking.k8s.io",
            ]),
            foreground: false,
            elsewhere: None,
        },
        Step {
            what: "workloads",
            kinds: keep(&["deployments.apps"]),
            foreground: true,
            elsewhere: None,
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
            elsewhere: None,
        },
        Step {
            what: "security policies",
            kinds: keep(&[
                "authorizationpolicies.security.istio.io",
                "peerauthentications.security.istio.io",
            ]),
            foreground: false,
            elsewhere: None,
        },
    ];
    all.into_iter().filter(|s| !s.kinds.is_empty()).collect()
}

impl Step {
    /// Where this step's objects of the mesh in `namespace` live, and the label selector that
    /// finds them (`apply`'s prune looks in the same places).
    pub fn scope(&self, namespace: &str) -> (String, String) {
        match self.elsewhere {
            None => (namespace.to_owned(), selector()),
            Some(elsewhere) => (
                elsewhere.to_owned(),
                format!("{},{}={namespace}", selector(), httproute::MESH_LABEL),
            ),
        }
    }

    pub fn args(&self, namespace: &str, timeout: Duration) -> Vec<String> {
        let (ns, selector) = self.scope(namespace);
        let mut args = vec![
            "delete".to_owned(),
            self.kinds.join(","),
            "-n".to_owned(),
            ns,
            "-l".to_owned(),
            selector,
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
/// takes no name together with a label selector), so only this namespace can match. With
/// `--delete-namespace` (`forced`) by name alone: the user asked for that namespace.
pub fn namespace_args(namespace: &str, timeout: Duration, forced: bool) -> Vec<String> {
    let mut args = vec!["delete".to_owned(), "namespace".to_owned()];
    if forced {
        args.push(namespace.to_owned());
    } else {
        args.extend([
            format!("--field-selector=metadata.name={namespace}"),
            "-l".to_owned(),
            selector(),
        ]);
    }
    args.extend([
        "--ignore-not-found".to_owned(),
        "--wait=true".to_owned(),
        format!("--timeout={}s", timeout.as_secs()),
    ]);
    args
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

/// The objects in a namespace that keep it: every one meshtally did not create, as
/// `kind[.group]/name` (kubectl's `-o name` spelling), from `kubectl get … -o json`'s List.
/// Not counted: meshtally's own (labelled; the delete removes them), objects with an owner (they
/// go with it, and the owner itself is listed), and what Kubernetes puts in every namespace or
/// derives from a Service (the `default` ServiceAccount, the `kube-root-ca.crt` ConfigMap,
/// Endpoints, Events).
pub fn foreign_objects(list_json: &[u8]) -> Result<Vec<String>> {
    let list: Value = serde_json::from_slice(list_json)
        .context("kubectl printed a list of objects that is not JSON")?;
    let mut foreign: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| {
            let meta = &item["metadata"];
            let kind = item["kind"].as_str().unwrap_or_default();
            let name = meta["name"].as_str().unwrap_or_default();
            let ours = meta["labels"][MANAGED_BY.0].as_str() == Some(MANAGED_BY.1);
            let owned = meta["ownerReferences"]
                .as_array()
                .is_some_and(|owners| !owners.is_empty());
            let automatic = matches!(
                (kind, name),
                ("ServiceAccount", "default")
                    | ("ConfigMap", "kube-root-ca.crt")
                    | ("Endpoints", _)
                    | ("Event", _)
            );
            !(ours || owned || automatic)
        })
        .map(|item| {
            let kind = item["kind"].as_str().unwrap_or("object").to_lowercase();
            let group = item["apiVersion"]
                .as_str()
                .and_then(|v| v.rsplit_once('/'))
                .map(|(group, _)| format!(".{group}"))
                .unwrap_or_default();
            let name = item["metadata"]["name"].as_str().unwrap_or_default();
            format!("{kind}{group}/{name}")
        })
        .collect();
    foreign.sort();
    Ok(foreign)
}

/// What happens to the namespace once meshtally's objects are gone, and why.
#[derive(Debug, PartialEq, Eq)]
pub enum NamespaceDecision {
    Delete,
    Absent,
    /// Kept, with the one reason printed after "namespace NS kept: ".
    Keep(String),
}

/// The decision from the namespace's verdict and the objects that would be left in it.
pub fn decide(verdict: NamespaceVerdict, foreign: &[String], forced: bool) -> NamespaceDecision {
    match verdict {
        NamespaceVerdict::Absent => NamespaceDecision::Absent,
        _ if forced => NamespaceDecision::Delete,
        NamespaceVerdict::NotOurs => NamespaceDecision::Keep(format!(
            "meshtally did not create it (it is not labelled {})",
            selector()
        )),
        NamespaceVerdict::Shared(managers) => {
            NamespaceDecision::Keep(format!("it is also managed by {}", managers.join(", ")))
        }
        NamespaceVerdict::Delete => match foreign {
            [] => NamespaceDecision::Delete,
            [one] => NamespaceDecision::Keep(format!("{one} was not created by meshtally")),
            [first, rest @ ..] => NamespaceDecision::Keep(format!(
                "{first} and {} more were not created by meshtally",
                rest.len()
            )),
        },
    }
}

/// A checked delete: the cluster answers.
pub struct DeletePlan {
    kubectl: Kubectl,
    namespace: String,
    timeout: Duration,
    /// `--delete-namespace`: the namespace goes whatever else lives in it.
    delete_namespace: bool,
}

pub fn plan(
    kubectl: Kubectl,
    namespace: String,
    timeout: Duration,
    delete_namespace: bool,
) -> Result<DeletePlan> {
    checks::reachable(&kubectl)?;
    Ok(DeletePlan {
        kubectl,
        namespace,
        timeout,
        delete_namespace,
    })
}

/// What `--dry-run` prints: every delete it would run (none is run), then what would become
/// of the namespace and why, read from the cluster with `get` calls only; without a cluster,
/// the condition the namespace's delete runs under.
pub fn dry_run(kubectl: &Kubectl, namespace: &str, timeout: Duration, forced: bool) -> String {
    let mut out = String::new();
    for step in steps(&[]) {
        let args = step.args(namespace, timeout);
        out.push_str(&kubectl.display(&as_strs(&args)));
        out.push('\n');
    }
    let namespace_delete = kubectl.display(&as_strs(&namespace_args(namespace, timeout, forced)));
    match namespace_decision(kubectl, namespace, forced) {
        Ok(NamespaceDecision::Delete) => out.push_str(&format!(
            "# then namespace {namespace} would be deleted (nothing but meshtally's objects lives in it):\n{namespace_delete}\n"
        )),
        Ok(NamespaceDecision::Absent) => {
            out.push_str(&format!("# namespace {namespace} does not exist\n"))
        }
        Ok(NamespaceDecision::Keep(why)) => {
            out.push_str(&format!("# namespace {namespace} would be kept: {why}\n"))
        }
        Err(e) => out.push_str(&format!(
            "# then, only if meshtally created namespace {namespace} and nothing else lives in it \
             (the cluster could not be asked: {e:#}):\n{namespace_delete}\n"
        )),
    }
    out
}

/// Reads the namespace and what lives in it, and decides.
fn namespace_decision(kubectl: &Kubectl, ns: &str, forced: bool) -> Result<NamespaceDecision> {
    let json = kubectl.run(&namespace_get_args(ns), None)?;
    let verdict = namespace_verdict(&String::from_utf8_lossy(&json))?;
    let foreign = match verdict {
        NamespaceVerdict::Delete if !forced => foreign_objects(&list_namespace(kubectl, ns)?)?,
        _ => Vec::new(),
    };
    Ok(decide(verdict, &foreign, forced))
}

/// Every listable object in the namespace, of every kind the cluster serves (CRDs included),
/// as one JSON List. Events are left out: they come and go on their own.
fn list_namespace(kubectl: &Kubectl, ns: &str) -> Result<Vec<u8>> {
    let resources = kubectl.run(
        &[
            "api-resources",
            "--verbs=list",
            "--namespaced",
            "-o",
            "name",
        ],
        None,
    )?;
    let resources: Vec<String> = String::from_utf8_lossy(&resources)
        .lines()
        .map(str::trim)
        .filter(|r| !r.is_empty() && *r != "events" && *r != "events.events.k8s.io")
        .map(str::to_owned)
        .collect();
    if resources.is_empty() {
        return Ok(br#"{"items":[]}"#.to_vec());
    }
    Ok(kubectl.run(
        &[
            "get",
            &resources.join(","),
            "-n",
            ns,
            "--ignore-not-found",
            "-o",
            "json",
        ],
        None,
    )?)
}

impl DeletePlan {
    /// Deletes, showing progress on stderr; returns the report: how many objects went, and
    /// what became of the namespace.
    pub fn run(self) -> Result<String> {
        let ns = self.namespace.as_str();
        // Unknown kinds are skipped rather than failed on; if even the CRD list cannot be read,
        // every kind is tried and kubectl's own error says what is wrong.
        // Both APIs' kinds: whichever `apply --api` made them, delete needs no flag to find them.
        let crds: Vec<&'static str> = checks::ISTIO_CRDS
            .into_iter()
            .chain(checks::GATEWAY_API_CRDS)
            .collect();
        let missing = checks::missing_crds(&self.kubectl, &crds).unwrap_or_default();
        let mut deleted = 0;
        for step in steps(&missing) {
            eprintln!("deleting {} in {ns}…", step.what);
            let out = self
                .kubectl
                .run(&as_strs(&step.args(ns, self.timeout)), None)?;
            deleted += count_deleted(&out);
        }
        Ok(match namespace_decision(&self.kubectl, ns, self.delete_namespace)? {
            NamespaceDecision::Delete => {
                eprintln!("deleting namespace {ns}…");
                let args = namespace_args(ns, self.timeout, self.delete_namespace);
                let out = self.kubectl.run(&as_strs(&args), None)?;
                deleted += count_deleted(&out);
                format!("deleted {deleted} objects, namespace {ns} included\n")
            }
            NamespaceDecision::Absent => {
                format!("deleted {deleted} objects; namespace {ns} does not exist\n")
            }
            NamespaceDecision::Keep(why) => format!(
                "deleted {deleted} objects; namespace {ns} kept: {why} \
                 (`deployer delete --namespace {ns} --delete-namespace` removes it and everything in it)\n"
            ),
        })
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

    /// The resource each rendered kind (by apiVersion and kind) is deleted as.
    const RESOURCES: [(&str, &str); 12] = [
        ("v1/ServiceAccount", "serviceaccounts"),
        ("apps/v1/Deployment", "deployments.apps"),
        ("v1/Service", "services"),
        ("v1/ConfigMap", "configmaps"),
        (
            "networking.istio.io/v1/Gateway",
            "gateways.networking.istio.io",
        ),
        (
            "networking.istio.io/v1/VirtualService",
            "virtualservices.networking.istio.io",
        ),
        (
            "networking.istio.io/v1/DestinationRule",
            "destinationrules.networking.istio.io",
        ),
        (
            "security.istio.io/v1/PeerAuthentication",
            "peerauthentications.security.istio.io",
        ),
        (
            "security.istio.io/v1/AuthorizationPolicy",
            "authorizationpolicies.security.istio.io",
        ),
        (
            "extensions.istio.io/v1alpha1/WasmPlugin",
            "wasmplugins.extensions.istio.io",
        ),
        (
            "gateway.networking.k8s.io/v1/Gateway",
            "gateways.gateway.networking.k8s.io",
        ),
        (
            "gateway.networking.k8s.io/v1/HTTPRoute",
            "httproutes.gateway.networking.k8s.io",
        ),
    ];

    #[test]
    fn every_kind_the_render_makes_is_deleted_by_label() {
        use meshtally_mesh::model::{Api, Delivery, Mesh, MeshInput, Module};
        let delivery = Delivery::ConfigMap(Module::from_bytes(b"\0asm\x01\0\0\0".to_vec()));
        let mut rendered = std::collections::BTreeSet::new();
        for api in [Api::Istio, Api::GatewayApi] {
            let mesh = Mesh::from_input(MeshInput {
                api: Some(api),
                ..MeshInput::default()
            })
            .unwrap();
            let mut stream = Vec::new();
            meshtally_mesh::render::render(&mesh, &delivery)
                .unwrap()
                .write_stream(&mut stream, true)
                .unwrap();
            let text = String::from_utf8(stream).unwrap();
            for doc in text.split("---\n") {
                let field = |key: &str| {
                    doc.lines()
                        .find_map(|l| l.strip_prefix(key))
                        .map(str::to_owned)
                };
                if let (Some(version), Some(kind)) = (field("apiVersion: "), field("kind: ")) {
                    rendered.insert(format!("{version}/{kind}"));
                }
            }
        }
        let deleted: Vec<&str> = steps(&[]).iter().flat_map(|s| s.kinds.clone()).collect();
        for kind in &rendered {
            if kind == "v1/Namespace" {
                continue;
            }
            let resource = RESOURCES
                .iter()
                .find(|(k, _)| k == kind)
                .unwrap_or_else(|| panic!("rendered kind {kind} has no delete"))
                .1;
            assert!(deleted.contains(&resource), "{kind} is not deleted");
        }
        assert_eq!(rendered.len(), RESOURCES.len() + 1, "{rendered:?}");
        assert_eq!(deleted.len(), RESOURCES.len());
        for step in steps(&[]) {
            let args = step.args("demo", Duration::from_secs(60));
            let (ns, selector) = match step.elsewhere {
                None => ("demo", "app.kubernetes.io/managed-by=meshtally".to_owned()),
                // Beside Istio's gateway: only this mesh's Gateway.
                Some(ns) => (
                    ns,
                    "app.kubernetes.io/managed-by=meshtally,app.kubernetes.io/instance=demo"
                        .to_owned(),
                ),
            };
            assert!(args.windows(2).any(|w| w[0] == "-l" && w[1] == selector));
            assert!(args.windows(2).any(|w| w == ["-n", ns]));
            assert!(!args.iter().any(|a| a.starts_with("--all")));
        }
        let ns = namespace_args("demo", Duration::from_secs(60), false);
        assert!(ns.contains(&"--field-selector=metadata.name=demo".to_owned()));
        let forced = namespace_args("demo", Duration::from_secs(60), true);
        assert_eq!(forced[..3], ["delete", "namespace", "demo"]);
    }

    #[test]
    fn missing_crds_drop_their_kinds() {
        let crds: Vec<&str> = checks::ISTIO_CRDS
            .into_iter()
            .chain(checks::GATEWAY_API_CRDS)
            .collect();
        let only_k8s = steps(&crds);
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

    #[test]
    fn what_keeps_a_namespace() {
        let list = br#"{"kind":"List","items":[
            {"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"keep-me"}},
            {"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"kube-root-ca.crt"}},
            {"kind":"ServiceAccount","apiVersion":"v1","metadata":{"name":"default"}},
            {"kind":"ServiceAccount","apiVersion":"v1","metadata":{"name":"robot"}},
            {"kind":"Endpoints","apiVersion":"v1","metadata":{"name":"service-a"}},
            {"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"service-a-x1",
              "ownerReferences":[{"kind":"Service","name":"service-a"}]}},
            {"kind":"Service","apiVersion":"v1","metadata":{"name":"service-a",
              "labels":{"app.kubernetes.io/managed-by":"meshtally"}}},
            {"kind":"VirtualService","apiVersion":"networking.istio.io/v1","metadata":{"name":"theirs"}}
        ]}"#;
        let foreign = foreign_objects(list).unwrap();
        assert_eq!(
            foreign,
            [
                "configmap/keep-me",
                "serviceaccount/robot",
                "virtualservice.networking.istio.io/theirs"
            ]
        );
        assert_eq!(
            decide(NamespaceVerdict::Delete, &foreign[..1], false),
            NamespaceDecision::Keep("configmap/keep-me was not created by meshtally".into())
        );
        assert_eq!(
            decide(NamespaceVerdict::Delete, &foreign, false),
            NamespaceDecision::Keep(
                "configmap/keep-me and 2 more were not created by meshtally".into()
            )
        );
        assert_eq!(
            decide(NamespaceVerdict::Delete, &[], false),
            NamespaceDecision::Delete
        );
        assert_eq!(
            decide(NamespaceVerdict::Delete, &foreign, true),
            NamespaceDecision::Delete
        );
        assert_eq!(
            decide(NamespaceVerdict::NotOurs, &[], true),
            NamespaceDecision::Delete
        );
        assert_eq!(
            decide(NamespaceVerdict::Absent, &[], true),
            NamespaceDecision::Absent
        );
        assert!(matches!(
            decide(NamespaceVerdict::Shared(vec!["kubectl-create".into()]), &[], false),
            NamespaceDecision::Keep(why) if why == "it is also managed by kubectl-create"
        ));
        assert!(foreign_objects(b"[").is_err());
    }
}
