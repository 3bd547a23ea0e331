//! Who the ingress gateway is: Istio's default ingress identity, which `render`'s
//! AuthorizationPolicies allow and `up`'s gateway takes, so a callee names gateway traffic the
//! same way on both back-ends.

/// The namespace and service account of Istio's default ingress gateway (`istioctl install`,
/// demo and default profiles), which forwards `/<service>/…` from the Gateway. `up`'s gateway
/// takes the same identity: the callee's filter names a verified caller by its service account,
/// so gateway traffic then reports the same caller locally as on a cluster.
pub const INGRESS_NAMESPACE: &str = "istio-system";
pub const INGRESS_SERVICE_ACCOUNT: &str = "istio-ingressgateway-service-account";

/// The ingress gateway's principal, as an AuthorizationPolicy names it.
pub fn ingress_principal() -> String {
    crate::identity::principal(INGRESS_NAMESPACE, INGRESS_SERVICE_ACCOUNT)
}
