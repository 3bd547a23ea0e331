//! `deployer apply`: the checks, then the render sent to `kubectl apply --server-side` in two
//! steps — the Namespace first (waited for until Active, since a namespace left Terminating by
//! an earlier `delete` refuses new objects), then everything else — then one rollout wait per
//! service, the prune of what an earlier apply made and this render has not (`prune.rs`), and
//! how to reach the result.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use super::checks;
use super::kubectl::Kubectl;
use meshtally_mesh::model::{names, Api, Delivery, Mesh};
use meshtally_mesh::render;

/// The field manager every apply uses, so a re-apply updates (and prunes within) its own
/// fields and a conflicting edit by someone else is reported rather than overwritten.
pub const FIELD_MANAGER: &str = "meshtally";
/// Istio's default ingress gateway, which the rendered Gateway selects (`istio: ingressgateway`).
pub const INGRESS_NAMESPACE: &str = "istio-system";
pub const INGRESS_SERVICE: &str = "istio-ingressgateway";

/// How an apply behaves beyond the mesh itself.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// For the namespace and all rollouts together.
    pub timeout: Duration,
    /// Passed on as server-side apply's `--force-conflicts`.
    pub force_conflicts: bool,
}

/// A checked apply: the cluster answers, has Istio, and the namespace is not being deleted.
pub struct ApplyPlan {
    kubectl: Kubectl,
    mesh: Mesh,
    delivery: Delivery,
    timeout: Duration,
    force_conflicts: bool,
}

pub fn plan(
    kubectl: Kubectl,
    mesh: Mesh,
    delivery: Delivery,
    options: ApplyOptions,
) -> Result<ApplyPlan> {
    checks::reachable(&kubectl)?;
    checks::istio_installed(&kubectl)?;
    if mesh.api == Api::GatewayApi {
        let retries = mesh.services.iter().any(|s| s.traffic.retries.is_some());
        checks::gateway_api_installed(&kubectl, retries)?;
        checks::no_istio_routes(&kubectl, &mesh.namespace)?;
    }
    checks::namespace_not_terminating(&kubectl, &mesh.namespace)?;
    Ok(ApplyPlan {
        kubectl,
        mesh,
        delivery,
        timeout: options.timeout,
        force_conflicts: options.force_conflicts,
    })
}

impl ApplyPlan {
    /// Applies and waits, showing progress on stderr; returns the report: what was applied and
    /// how to reach the mesh.
    pub fn run(self) -> Result<String> {
        let begin = Instant::now();
        let deadline = begin + self.timeout;
        let bundle = render::render(&self.mesh, &self.delivery)?;
        // The Namespace first (and waited for): everything else lives in it.
        let (namespace_doc, rest, objects) = bundle.split_stream(render::NAMESPACE_FILE);
        let (namespace_doc, rest) = (&namespace_doc[..], &rest[..]);
        let ns = self.mesh.namespace.as_str();

        eprintln!("applying namespace {ns}…");
        self.apply(namespace_doc)?;
        self.kubectl
            .run(
                &[
                    "wait",
                    "--for=jsonpath={.status.phase}=Active",
                    &format!("namespace/{ns}"),
                    &timeout_flag(deadline),
                ],
                None,
            )
            .with_context(|| format!("namespace {ns} did not become Active"))?;
        eprintln!("applying {objects} objects…");
        self.apply(rest).map_err(|e| partial(e, rest))?;

        let workloads: Vec<String> = self.mesh.workloads().collect();
        eprintln!(
            "waiting for {} rollouts (at most {}s)…",
            workloads.len(),
            self.timeout.as_secs()
        );
        for workload in &workloads {
            let started = Instant::now();
            self.rollout(workload, deadline)?;
            eprintln!(
                "  {}  rolled out ({:.1}s)",
                workload,
                started.elapsed().as_secs_f64()
            );
        }
        // Make before break: the new objects are live, so what the render no longer has goes.
        let rendered = super::prune::rendered(&[namespace_doc, rest].concat(), ns)?;
        let pruned = super::prune::run(
            &self.kubectl,
            ns,
            &rendered,
            deadline.saturating_duration_since(Instant::now()),
        )?;
        let pruned = match pruned.len() {
            0 => String::new(),
            n => format!(
                "; pruned {n} object{} an earlier apply made that this render has not: {}",
                if n == 1 { "" } else { "s" },
                pruned
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let elsewhere = match self.mesh.api {
            Api::Istio => String::new(),
            Api::GatewayApi => format!(" (its Gateway to {})", checks::INGRESS_NAMESPACE),
        };
        Ok(format!(
            "applied {} objects to namespace {ns}{elsewhere}; {} deployments rolled out in {:.1}s{pruned}\n{}",
            objects + 1,
            workloads.len(),
            begin.elapsed().as_secs_f64(),
            self.next_steps()
        ))
    }

    /// One `kubectl apply --server-side` of a stream. A failure carries what kubectl reported
    /// applied before it stopped, so the error can name what was and was not.
    fn apply(&self, docs: &[u8]) -> Result<(), ApplyError> {
        let manager = format!("--field-manager={FIELD_MANAGER}");
        let mut args = vec!["apply", "--server-side", &manager];
        if self.force_conflicts {
            args.push("--force-conflicts");
        }
        args.extend(["-f", "-"]);
        let output = self
            .kubectl
            .output(&args, Some(docs))
            .map_err(|e| ApplyError {
                message: e.to_string(),
                applied: Vec::new(),
            })?;
        if output.status.success() {
            return Ok(());
        }
        let applied = applied_objects(&output.stdout);
        let reason = super::kubectl::reason(&output);
        let message = if reason.contains("Apply failed with") {
            format!(
                "{reason}: another field manager changed fields that meshtally applies; \
                 `deployer apply --force-conflicts` takes them back"
            )
        } else if reason.starts_with("Error from server") || reason.contains(" is invalid: ") {
            // The server's own words: `Error from server (…)`, or for a failed validation
            // (schema, CEL) `The <Kind> "<name>" is invalid: <field>: <why>`.
            format!("the API server refused the mesh: {reason}")
        } else {
            format!("kubectl: {reason}")
        };
        Err(ApplyError { message, applied })
    }

    /// Waits for one Deployment; a failure names it and the condition that holds it back.
    fn rollout(&self, name: &str, deadline: Instant) -> Result<()> {
        let ns = self.mesh.namespace.as_str();
        let deployment = format!("deployment/{name}");
        let output = self.kubectl.output(
            &[
                "rollout",
                "status",
                &deployment,
                "-n",
                ns,
                &timeout_flag(deadline),
            ],
            None,
        )?;
        if output.status.success() {
            return Ok(());
        }
        let why = super::kubectl::reason(&output);
        let condition = self
            .kubectl
            .run(&["get", &deployment, "-n", ns, "-o", "json"], None)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .and_then(|d: serde_json::Value| blocking_condition(&d));
        let what = if why.contains("timed out") {
            format!(
                "did not roll out within the {}s --timeout",
                self.timeout.as_secs()
            )
        } else {
            format!("did not roll out ({why})")
        };
        bail!(
            "deployment {name} {what}{} (see `kubectl -n {ns} describe deployment {name}` and \
             `kubectl -n {ns} get pods -l app={name}`)",
            condition.map(|c| format!(": {c}")).unwrap_or_default()
        )
    }

    /// How to reach the ingress gateway and check the mesh through it.
    fn next_steps(&self) -> String {
        let context = self
            .kubectl
            .context
            .as_ref()
            .map(|c| format!(" --context {c}"))
            .unwrap_or_default();
        let services = services_flag(&self.mesh);
        let mut out = String::from("\nreach it through Istio's ingress gateway:\n");
        match self.gateway_address() {
            Ok(Some(address)) => out.push_str(&format!(
                "  deployer verify --gateway http://{address} {services}\n"
            )),
            Ok(None) => out.push_str(&format!(
                "  kubectl{context} -n {INGRESS_NAMESPACE} get svc {INGRESS_SERVICE}   \
                 # EXTERNAL-IP, once a load balancer gives it one; else:\n"
            )),
            Err(note) => out.push_str(&format!("  (note: {note})\n")),
        }
        out.push_str(&format!(
            "  kubectl{context} -n {INGRESS_NAMESPACE} port-forward svc/{INGRESS_SERVICE} 8080:80\n  \
             deployer verify --gateway http://127.0.0.1:8080 {services}\n\
             or let deployer port-forward while it checks:\n  \
             deployer verify --cluster{context} {services}\n\
             then see who called whom:\n  \
             deployer stats --cluster{context} --namespace {}\n",
            self.mesh.namespace
        ));
        out
    }

    /// The ingress gateway's external address when it has one (a cloud LoadBalancer); kind and
    /// k3d without a load-balancer controller have none, and port-forward is the way in.
    fn gateway_address(&self) -> Result<Option<String>, String> {
        let output = self
            .kubectl
            .output(
                &[
                    "get",
                    "svc",
                    INGRESS_SERVICE,
                    "-n",
                    INGRESS_NAMESPACE,
                    "-o",
                    "jsonpath={.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}",
                    "--request-timeout=10s",
                ],
                None,
            )
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(format!(
                "no {INGRESS_NAMESPACE}/{INGRESS_SERVICE} Service ({}): the Gateway needs Istio's \
                 ingress gateway, which `istioctl install --set profile=demo -y` installs",
                super::kubectl::reason(&output)
            ));
        }
        let address = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Ok((!address.is_empty()).then_some(address))
    }
}

/// A failed `kubectl apply` of a stream: why, and the objects (`kind/name`) it applied first.
#[derive(Debug)]
struct ApplyError {
    message: String,
    applied: Vec<String>,
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApplyError {}

/// The objects of kubectl's apply output, `<resource>[.<group>]/<name> serverside-applied`,
/// as `kind/name` (the group dropped, lowercase).
fn applied_objects(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.trim().strip_suffix(" serverside-applied"))
        .filter_map(|object| {
            let (resource, name) = object.split_once('/')?;
            let kind = resource.split('.').next()?;
            Some(format!("{}/{name}", kind.to_lowercase()))
        })
        .collect()
}

/// The objects of a YAML stream as `kind/name` (lowercase kind), in stream order.
fn stream_objects(docs: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(docs);
    text.split("\n---\n")
        .flat_map(|doc| doc.strip_prefix("---\n").or(Some(doc)))
        .filter_map(|doc| serde_norway::from_str::<serde_json::Value>(doc).ok())
        .filter_map(|object| {
            let kind = object["kind"].as_str()?.to_lowercase();
            let name = object["metadata"]["name"].as_str()?;
            Some(format!("{kind}/{name}"))
        })
        .collect()
}

/// A stream's apply that stopped part-way, as one line: how far it got, what was applied and
/// what was not, and that applying again converges (server-side apply is idempotent).
fn partial(error: ApplyError, docs: &[u8]) -> anyhow::Error {
    let all = stream_objects(docs);
    if error.applied.is_empty() && all.is_empty() {
        return error.into();
    }
    let (applied, missing): (Vec<&String>, Vec<&String>) =
        all.iter().partition(|o| error.applied.contains(o));
    let list = |objects: &[&String]| {
        if objects.is_empty() {
            "none".to_owned()
        } else {
            objects
                .iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    anyhow::anyhow!(
        "apply stopped after {} of {} objects ({}); applied: {}; not applied: {}; \
         `deployer apply` again converges to the render",
        applied.len(),
        all.len(),
        error.message,
        list(&applied),
        list(&missing)
    )
}

/// `--services N` when the names are the generated ones, else `--names a,b,…`.
pub fn services_flag(mesh: &Mesh) -> String {
    let generated = mesh
        .services
        .iter()
        .enumerate()
        .all(|(i, s)| s.name == names::generated(i));
    if generated {
        format!("--services {}", mesh.services.len())
    } else {
        let names: Vec<&str> = mesh.services.iter().map(|s| s.name.as_str()).collect();
        format!("--names {}", names.join(","))
    }
}

/// The Deployment condition that says why it is not available, as `Type=Status (Reason):
/// message`: a failure to create pods first, then unavailability, then a stalled progress.
pub fn blocking_condition(deployment: &serde_json::Value) -> Option<String> {
    let conditions = deployment["status"]["conditions"].as_array()?;
    let find = |kind: &str, status: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == kind && c["status"] == status)
    };
    let condition = find("ReplicaFailure", "True")
        .or_else(|| find("Available", "False"))
        .or_else(|| find("Progressing", "False"))?;
    Some(format!(
        "{}={} ({}): {}",
        condition["type"].as_str().unwrap_or_default(),
        condition["status"].as_str().unwrap_or_default(),
        condition["reason"].as_str().unwrap_or_default(),
        condition["message"].as_str().unwrap_or_default()
    ))
}

/// `--timeout=<seconds left>s`, at least one second.
fn timeout_flag(deadline: Instant) -> String {
    let left = deadline.saturating_duration_since(Instant::now());
    format!("--timeout={}s", left.as_secs().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtally_mesh::model::{MeshInput, ServiceChoice, ServiceEntry};

    #[test]
    fn namespace_first() {
        use meshtally_mesh::model::{Delivery, Module};
        let mesh = Mesh::from_input(MeshInput::default()).unwrap();
        let delivery = Delivery::ConfigMap(Module::from_bytes(b"\0asm\x01\0\0\0".to_vec()));
        let bundle = render::render(&mesh, &delivery).unwrap();
        let (ns, rest, objects) = bundle.split_stream(render::NAMESPACE_FILE);
        let (ns, rest) = (
            String::from_utf8(ns).unwrap(),
            String::from_utf8(rest).unwrap(),
        );
        assert_eq!(ns.matches("\nkind: Namespace\n").count(), 1, "{ns}");
        assert_eq!(ns.matches("---\n").count(), 1, "{ns}");
        assert!(!rest.contains("\nkind: Namespace\n"));
        assert_eq!(objects, rest.lines().filter(|l| *l == "---").count());
        let mut whole = Vec::new();
        bundle.write_stream(&mut whole, true).unwrap();
        assert_eq!(whole.len(), ns.len() + rest.len());
    }

    #[test]
    fn a_stopped_apply_names_what_was_and_was_not_applied() {
        let stdout = b"serviceaccount/service-a serverside-applied\n\
            virtualservice.networking.istio.io/service-a serverside-applied\n";
        assert_eq!(
            applied_objects(stdout),
            ["serviceaccount/service-a", "virtualservice/service-a"]
        );
        let docs = b"---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: service-a\n\
            ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: service-a\n\
            ---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: service-a\n";
        assert_eq!(
            stream_objects(docs),
            [
                "serviceaccount/service-a",
                "virtualservice/service-a",
                "deployment/service-a"
            ]
        );
        let error = ApplyError {
            message: "The connection to the server 127.0.0.1:1 was refused".into(),
            applied: applied_objects(stdout),
        };
        assert_eq!(
            partial(error, docs).to_string(),
            "apply stopped after 2 of 3 objects (The connection to the server 127.0.0.1:1 was \
             refused); applied: serviceaccount/service-a, virtualservice/service-a; not applied: \
             deployment/service-a; `deployer apply` again converges to the render"
        );
    }

    #[test]
    fn the_condition_that_blocks_a_rollout() {
        let deployment = serde_json::json!({"status": {"conditions": [
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "progressing"},
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."},
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "pods \"a-1\" is forbidden: exceeded quota"},
        ]}});
        assert_eq!(
            blocking_condition(&deployment).unwrap(),
            "ReplicaFailure=True (FailedCreate): pods \"a-1\" is forbidden: exceeded quota"
        );
        let unavailable = serde_json::json!({"status": {"conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "m"},
        ]}});
        assert_eq!(
            blocking_condition(&unavailable).unwrap(),
            "Available=False (MinimumReplicasUnavailable): m"
        );
        assert_eq!(blocking_condition(&serde_json::json!({})), None);
    }

    #[test]
    fn verify_flag_names_the_services() {
        let mesh = Mesh::from_input(MeshInput::default()).unwrap();
        assert_eq!(services_flag(&mesh), "--services 3");
        let named = Mesh::from_input(MeshInput {
            services: Some(ServiceChoice::Listed(vec![
                ServiceEntry::named("web".into()),
                ServiceEntry::named("api".into()),
            ])),
            ..MeshInput::default()
        })
        .unwrap();
        assert_eq!(services_flag(&named), "--names web,api");
    }
}
