//! What must hold before anything is sent to a cluster: a kubeconfig, a cluster that answers,
//! Istio's CRDs, and a namespace that is not being deleted.
//! Each failure is one line saying what to do, so a user without a cluster or without Istio
//! learns it before a half-applied mesh does.

use super::kubectl::{reason, Kubectl, KubectlError};
use meshtally_mesh::render::meta::MANAGED_BY;
pub use meshtally_mesh::render::security::INGRESS_NAMESPACE;

/// The Istio kinds the render uses, as CRD names.
pub const ISTIO_CRDS: [&str; 6] = [
    "gateways.networking.istio.io",
    "virtualservices.networking.istio.io",
    "destinationrules.networking.istio.io",
    "peerauthentications.security.istio.io",
    "authorizationpolicies.security.istio.io",
    "wasmplugins.extensions.istio.io",
];

/// The Gateway API kinds the `--api gateway-api` render makes (beside Istio's, which it keeps
/// for security, the filter and DestinationRules).
pub const GATEWAY_API_CRDS: [&str; 2] = [
    "gateways.gateway.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
];
/// The HTTPRoute CRD's annotation naming its channel (`standard` or `experimental`).
const CHANNEL_ANNOTATION: &str = "gateway.networking.k8s.io/channel";

/// How long a check may wait for the API server: an unreachable cluster should fail fast.
const REQUEST_TIMEOUT: &str = "--request-timeout=10s";

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Kubectl(#[from] KubectlError),
    #[error(
        "cannot reach the cluster of {context}: {reason} (is it running? `kubectl cluster-info` \
         should answer; pass --context to pick another)"
    )]
    Unreachable { context: String, reason: String },
    #[error(
        "Istio is not installed in this cluster (missing CRDs: {missing}): install it with \
         `istioctl install --set profile=demo -y`"
    )]
    IstioMissing { missing: String },
    #[error(
        "the Kubernetes Gateway API is not installed in this cluster (missing CRDs: {missing}): \
         install its experimental channel (`make cluster-up` does), or apply with --api istio"
    )]
    GatewayApiMissing { missing: String },
    #[error(
        "the cluster's HTTPRoute CRD is the Gateway API {found} channel, which has no HTTPRoute \
         `retry`, and the mesh retries: install the experimental channel, or set \
         gateway_api_channel: standard and retries: {{attempts: 0}}, or apply with --api istio"
    )]
    GatewayApiChannel { found: String },
    #[error(
        "namespace {0} does not exist, and the Gateway API render's Gateway binds there to Istio's \
         ingress gateway: install Istio (`istioctl install --set profile=demo -y`), or apply with \
         --api istio"
    )]
    IngressNamespaceMissing(String),
    #[error(
        "namespace {namespace} holds meshtally's VirtualServices ({names}) from an apply with \
         --api istio, which would route beside the HTTPRoutes: `deployer delete --namespace \
         {namespace}` first, or apply with --api istio"
    )]
    IstioRoutesPresent { namespace: String, names: String },
    #[error("cannot list the Istio CRDs: {0}")]
    CrdQuery(String),
    #[error(
        "no kubeconfig: {0}, so kubectl knows no cluster (point KUBECONFIG at your cluster's: kind \
         writes ~/.kube/config, `make cluster-up` prints the export line)"
    )]
    NoKubeconfig(String),
    #[error(
        "namespace {0} is terminating (a delete is still removing what it holds): apply again \
         once `kubectl get namespace {0}` says NotFound"
    )]
    Terminating(String),
    #[error("cannot read namespace {namespace}: {reason}")]
    NamespaceQuery { namespace: String, reason: String },
}

/// The API server answers `/readyz` (open to every client, even without RBAC on anything else).
pub fn reachable(kubectl: &Kubectl) -> Result<(), CheckError> {
    let output = kubectl.output(&["get", "--raw=/readyz", REQUEST_TIMEOUT], None)?;
    if output.status.success() {
        return Ok(());
    }
    if let Some(missing) = missing_kubeconfig() {
        return Err(CheckError::NoKubeconfig(missing));
    }
    let context = match &kubectl.context {
        Some(name) => format!("context `{name}`"),
        None => "the current kubectl context".to_owned(),
    };
    Err(CheckError::Unreachable {
        context,
        reason: reason(&output),
    })
}

/// What is missing when kubectl has no kubeconfig to read: every file KUBECONFIG names, or,
/// without KUBECONFIG, `~/.kube/config`. None inside a pod, where kubectl uses the pod's
/// service account instead.
fn missing_kubeconfig() -> Option<String> {
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return None;
    }
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(list) => {
            let files: Vec<_> = std::env::split_paths(&list).collect();
            (!files.iter().any(|f| f.is_file())).then(|| {
                let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                format!("KUBECONFIG={} does not exist", names.join(":"))
            })
        }
        None => {
            let home = std::env::var_os("HOME")?;
            let default = std::path::Path::new(&home).join(".kube/config");
            (!default.is_file()).then(|| {
                format!(
                    "KUBECONFIG is not set and {} does not exist",
                    default.display()
                )
            })
        }
    }
}

/// The namespace, if it exists, is not on its way out: objects sent into a terminating
/// namespace are refused, and waiting for it to become Active would only time out.
pub fn namespace_not_terminating(kubectl: &Kubectl, namespace: &str) -> Result<(), CheckError> {
    let output = kubectl.output(
        &[
            "get",
            "namespace",
            namespace,
            "--ignore-not-found",
            "-o",
            "jsonpath={.status.phase}",
            REQUEST_TIMEOUT,
        ],
        None,
    )?;
    if !output.status.success() {
        return Err(CheckError::NamespaceQuery {
            namespace: namespace.to_owned(),
            reason: reason(&output),
        });
    }
    if String::from_utf8_lossy(&output.stdout).trim() == "Terminating" {
        return Err(CheckError::Terminating(namespace.to_owned()));
    }
    Ok(())
}

/// Which of [`ISTIO_CRDS`] the cluster lacks.
pub fn missing_istio_crds(kubectl: &Kubectl) -> Result<Vec<&'static str>, CheckError> {
    missing_crds(kubectl, &ISTIO_CRDS)
}

/// The Gateway API CRDs are installed, Istio's ingress gateway namespace exists (the Gateway
/// goes there), and, when the render uses HTTPRoute `retry`, of the
/// experimental channel (the API server would refuse the field otherwise, less clearly).
pub fn gateway_api_installed(
    kubectl: &Kubectl,
    needs_experimental: bool,
) -> Result<(), CheckError> {
    let missing = missing_crds(kubectl, &GATEWAY_API_CRDS)?;
    if !missing.is_empty() {
        return Err(CheckError::GatewayApiMissing {
            missing: missing.join(", "),
        });
    }
    let output = kubectl.output(
        &[
            "get",
            "namespace",
            INGRESS_NAMESPACE,
            "--ignore-not-found",
            "-o",
            "name",
            REQUEST_TIMEOUT,
        ],
        None,
    )?;
    if !output.status.success() {
        return Err(CheckError::NamespaceQuery {
            namespace: INGRESS_NAMESPACE.to_owned(),
            reason: reason(&output),
        });
    }
    if String::from_utf8_lossy(&output.stdout).trim().is_empty() {
        return Err(CheckError::IngressNamespaceMissing(
            INGRESS_NAMESPACE.to_owned(),
        ));
    }
    if !needs_experimental {
        return Ok(());
    }
    let output = kubectl.output(
        &[
            "get",
            "crd",
            GATEWAY_API_CRDS[1],
            "-o",
            "json",
            REQUEST_TIMEOUT,
        ],
        None,
    )?;
    if !output.status.success() {
        return Err(CheckError::CrdQuery(reason(&output)));
    }
    channel_verdict(&output.stdout)
}

/// No VirtualService of meshtally's is in the namespace: an `--api istio` apply left there would
/// route the same hosts beside the Gateway API render's HTTPRoutes.
pub fn no_istio_routes(kubectl: &Kubectl, namespace: &str) -> Result<(), CheckError> {
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    let output = kubectl.output(
        &[
            "get",
            "virtualservices.networking.istio.io",
            "-n",
            namespace,
            "-l",
            &selector,
            "--ignore-not-found",
            "-o",
            "name",
            REQUEST_TIMEOUT,
        ],
        None,
    )?;
    if !output.status.success() {
        return Err(CheckError::NamespaceQuery {
            namespace: namespace.to_owned(),
            reason: reason(&output),
        });
    }
    let found = String::from_utf8_lossy(&output.stdout);
    let names: Vec<&str> = found
        .lines()
        .filter_map(|l| l.trim().rsplit('/').next())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    Err(CheckError::IstioRoutesPresent {
        namespace: namespace.to_owned(),
        names: names.join(", "),
    })
}

/// The HTTPRoute CRD (as `kubectl get crd -o json` prints it) is of the experimental channel,
/// which alone has HTTPRoute `retry`.
pub fn channel_verdict(crd_json: &[u8]) -> Result<(), CheckError> {
    let crd: serde_json::Value = serde_json::from_slice(crd_json)
        .map_err(|e| CheckError::CrdQuery(format!("kubectl printed no JSON: {e}")))?;
    match crd["metadata"]["annotations"][CHANNEL_ANNOTATION].as_str() {
        Some("experimental") => Ok(()),
        Some(found) if !found.is_empty() => Err(CheckError::GatewayApiChannel {
            found: found.to_owned(),
        }),
        _ => Err(CheckError::GatewayApiChannel {
            found: "unknown".to_owned(),
        }),
    }
}

/// Which of `crds` the cluster lacks.
pub fn missing_crds(
    kubectl: &Kubectl,
    crds: &[&'static str],
) -> Result<Vec<&'static str>, CheckError> {
    let mut args = vec!["get", "crd"];
    args.extend(crds);
    args.extend(["--ignore-not-found", "-o", "name", REQUEST_TIMEOUT]);
    let output = kubectl.output(&args, None)?;
    if !output.status.success() {
        return Err(CheckError::CrdQuery(reason(&output)));
    }
    let found = String::from_utf8_lossy(&output.stdout);
    // `-o name` prints `customresourcedefinition.apiextensions.k8s.io/<name>`.
    let present: Vec<&str> = found
        .lines()
        .filter_map(|l| l.trim().rsplit('/').next())
        .collect();
    Ok(crds
        .iter()
        .copied()
        .filter(|crd| !present.contains(crd))
        .collect())
}

/// All of [`ISTIO_CRDS`] are installed.
pub fn istio_installed(kubectl: &Kubectl) -> Result<(), CheckError> {
    let missing = missing_istio_crds(kubectl)?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CheckError::IstioMissing {
            missing: missing.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_need_the_experimental_channel() {
        let crd = |channel: &str| {
            format!(
                r#"{{"metadata":{{"annotations":{{"gateway.networking.k8s.io/channel":"{channel}"}}}}}}"#
            )
        };
        assert!(channel_verdict(crd("experimental").as_bytes()).is_ok());
        let err = channel_verdict(crd("standard").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the Gateway API standard channel, which has no HTTPRoute `retry`"),
            "{err}"
        );
        assert!(err.contains("--api istio") && !err.contains('\n'), "{err}");
        let err = channel_verdict(br#"{"metadata":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("the Gateway API unknown channel"), "{err}");
    }
}
