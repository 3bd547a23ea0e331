//! What must hold before anything is sent to a cluster: it answers, and Istio's CRDs are there.
//! Each failure is one line saying what to do, so a user without a cluster or without Istio
//! learns it before a half-applied mesh does.

use super::kubectl::{reason, Kubectl, KubectlError};

/// The Istio kinds the render uses, as CRD names.
pub const ISTIO_CRDS: [&str; 6] = [
    "gateways.networking.istio.io",
    "virtualservices.networking.istio.io",
    "destinationrules.networking.istio.io",
    "peerauthentications.security.istio.io",
    "authorizationpolicies.security.istio.io",
    "wasmplugins.extensions.istio.io",
];

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
    #[error("cannot list the Istio CRDs: {0}")]
    CrdQuery(String),
}

/// The API server answers `/readyz` (open to every client, even without RBAC on anything else).
pub fn reachable(kubectl: &Kubectl) -> Result<(), CheckError> {
    let output = kubectl.output(&["get", "--raw=/readyz", REQUEST_TIMEOUT], None)?;
    if output.status.success() {
        return Ok(());
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

/// Which of [`ISTIO_CRDS`] the cluster lacks.
pub fn missing_istio_crds(kubectl: &Kubectl) -> Result<Vec<&'static str>, CheckError> {
    let mut args = vec!["get", "crd"];
    args.extend(ISTIO_CRDS);
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
    Ok(ISTIO_CRDS
        .into_iter()
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
