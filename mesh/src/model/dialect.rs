//! Which API the traffic rules are rendered in: Istio's (VirtualService, DestinationRule
//! subsets) or the Kubernetes Gateway API (HTTPRoute, a Service per version). What each can say
//! is written once, in [`FEATURES`]: the model's check refuses, from it, what the chosen API
//! cannot say, and the README's table is generated from it, so the two never drift apart.

use serde::{Deserialize, Serialize};

use super::traffic::{Traffic, DEFAULT_RETRY_ON};
use super::Service;

/// The API the traffic rules are written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    /// Istio's own: Gateway, VirtualService, DestinationRule with a subset per version.
    #[default]
    Istio,
    /// Kubernetes Gateway API: a Gateway (class istio) with an HTTPRoute per service, and in
    /// the mesh an HTTPRoute whose parent is the Service (GAMMA); a Service per version.
    GatewayApi,
}

/// Which Gateway API CRDs the cluster has: the experimental channel adds HTTPRoute `retry`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    Standard,
    /// The default: meshtally's services retry by default, and only this channel can say so.
    #[default]
    Experimental,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Istio => "istio",
            Api::GatewayApi => "gateway-api",
        }
    }
}

/// How far the Gateway API goes for one feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Yes,
    /// Only with the experimental channel's CRDs.
    Experimental,
    /// Not at all: a mesh asking for it is refused under `--api gateway-api`.
    Refused,
    /// Both APIs can say it, but the mesh model has no field for it.
    NotModelled,
}

/// One row of what the two APIs express.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    pub row: &'static str,
    /// The mesh-file field (`-` when the model has none).
    pub field: &'static str,
    /// How the Istio render says it.
    pub istio: &'static str,
    /// How the Gateway API render says it, or why it cannot.
    pub gateway_api: &'static str,
    pub support: Support,
}

pub const WEIGHTS: Feature = Feature {
    row: "weights",
    field: "versions[].weight",
    istio: "VirtualService route weights over DestinationRule subsets",
    gateway_api: "HTTPRoute backendRefs weights over a Service per version (`<service>-<version>`)",
    support: Support::Yes,
};
pub const HEADER_MATCH: Feature = Feature {
    row: "header match",
    field: "match",
    istio: "VirtualService `match.headers` (exact)",
    gateway_api: "HTTPRoute `matches.headers` (Exact)",
    support: Support::Yes,
};
pub const TIMEOUT: Feature = Feature {
    row: "timeout",
    field: "timeout",
    istio: "VirtualService `timeout`",
    gateway_api: "HTTPRoute `timeouts.request`",
    support: Support::Yes,
};
pub const RETRIES: Feature = Feature {
    row: "retries",
    field: "retries",
    istio: "VirtualService `retries` (attempts, perTryTimeout, retryOn)",
    gateway_api: "HTTPRoute `retry.attempts`, per try `timeouts.backendRequest` (at most the \
                  timeout); retry_on only connect-failure,refused-stream,unavailable,cancelled",
    support: Support::Experimental,
};
pub const FAULT: Feature = Feature {
    row: "fault",
    field: "fault",
    istio: "VirtualService `fault` (delay, abort)",
    gateway_api: "Gateway API has no fault injection",
    support: Support::Refused,
};
pub const CIRCUIT_BREAKER: Feature = Feature {
    row: "circuit breaker",
    field: "circuit_breaker.max_*",
    istio: "DestinationRule `connectionPool`",
    gateway_api: "DestinationRule `connectionPool`, on each per-version Service's host",
    support: Support::Yes,
};
pub const OUTLIER_DETECTION: Feature = Feature {
    row: "outlier detection",
    field: "circuit_breaker.consecutive_5xx, …",
    istio: "DestinationRule `outlierDetection`",
    gateway_api: "DestinationRule `outlierDetection`, on each per-version Service's host",
    support: Support::Yes,
};
pub const MIRROR: Feature = Feature {
    row: "mirror",
    field: "-",
    istio: "VirtualService `mirror`",
    gateway_api: "HTTPRoute `RequestMirror` filter",
    support: Support::NotModelled,
};

/// Every row, in the README's order.
pub const FEATURES: &[Feature] = &[
    WEIGHTS,
    HEADER_MATCH,
    TIMEOUT,
    RETRIES,
    FAULT,
    CIRCUIT_BREAKER,
    OUTLIER_DETECTION,
    MIRROR,
];

/// The conditions Istio's Gateway API translation retries on, whatever the route says (status
/// codes aside, which the mesh model has none of).
pub const GATEWAY_API_RETRY_ON: &str = DEFAULT_RETRY_ON;

/// Rules in one HTTPRoute, at most (the CRD's maxItems): a rule per header match plus the split.
pub const MAX_RULES: usize = 16;

/// What the Gateway API cannot say about one service: its field (as a traffic rule spells it)
/// and the one-line reason, ending with the way out.
pub fn refusals(service: &Service, channel: Channel) -> Vec<(String, String)> {
    let t: &Traffic = &service.traffic;
    let mut out = Vec::new();
    let istio = "use --api istio";
    if t.fault.is_some() {
        out.push((
            FAULT.field.to_owned(),
            format!("{}: {istio}", FAULT.gateway_api),
        ));
    }
    if t.matches.len() + 1 > MAX_RULES {
        out.push((
            HEADER_MATCH.field.to_owned(),
            format!(
                "{} header matches and the split make {} HTTPRoute rules, over the {MAX_RULES} \
                 Gateway API allows in one route: {istio}",
                t.matches.len(),
                t.matches.len() + 1
            ),
        ));
    }
    if let Some(r) = &t.retries {
        if channel == Channel::Standard {
            out.push((
                RETRIES.field.to_owned(),
                format!(
                    "HTTPRoute `retry` needs the Gateway API experimental channel: set \
                     gateway_api_channel: experimental, retries: {{attempts: 0}}, or {istio}"
                ),
            ));
        }
        let mut asked: Vec<&str> = r.retry_on.split(',').collect();
        let mut can: Vec<&str> = GATEWAY_API_RETRY_ON.split(',').collect();
        asked.sort_unstable();
        can.sort_unstable();
        if asked != can {
            out.push((
                format!("{}.retry_on", RETRIES.field),
                format!(
                    "Gateway API retries on {GATEWAY_API_RETRY_ON} only, not `{}`: {istio}",
                    r.retry_on
                ),
            ));
        }
        if let Some(per_try) = r.per_try_timeout.filter(|p| *p > t.timeout) {
            out.push((
                format!("{}.per_try_timeout", RETRIES.field),
                format!(
                    "the per-try timeout {per_try} is longer than the timeout {}, and Gateway \
                     API wants timeouts.backendRequest at most timeouts.request: give \
                     retries.per_try_timeout at most {}, or {istio}",
                    t.timeout, t.timeout
                ),
            ));
        }
    }
    out
}

/// Per-version Service names that cannot be: too long for a Service name, or the name of
/// another service or of another version's Service. Each is the service's index and the reason.
pub fn clashes(services: &[Service]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut taken: std::collections::HashMap<String, String> = services
        .iter()
        .map(|s| (s.name.clone(), format!("service `{}`", s.name)))
        .collect();
    for (i, s) in services.iter().enumerate() {
        for v in &s.traffic.versions {
            let name = version_service(&s.name, &v.name);
            let why = if !super::names::is_dns1035_label(&name) {
                Some(format!(
                    "Gateway API needs a Service `{name}` for version `{}`, longer than the 63 \
                     characters of a Service name: shorten the names, or use --api istio",
                    v.name
                ))
            } else {
                taken.get(&name).map(|owner| {
                    format!(
                        "Gateway API needs a Service `{name}` for version `{}`, but that is the \
                         name of {owner}: rename one, or use --api istio",
                        v.name
                    )
                })
            };
            match why {
                Some(why) => out.push((i, why)),
                None => {
                    taken.insert(
                        name,
                        format!("version `{}` of service `{}`", v.name, s.name),
                    );
                }
            }
        }
    }
    out
}

/// The Service name of a version under the Gateway API.
pub fn version_service(service: &str, version: &str) -> String {
    format!("{service}-{version}")
}

/// The README's table: one row per [`FEATURES`] entry.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| feature | mesh file | `--api istio` | `--api gateway-api` |\n| --- | --- | --- | --- |\n",
    );
    for f in FEATURES {
        let gateway_api = match f.support {
            Support::Yes => format!("yes: {}", f.gateway_api),
            Support::Experimental => format!("experimental channel: {}", f.gateway_api),
            Support::Refused => format!("**refused**: {}", f.gateway_api),
            Support::NotModelled => format!("{} (not in the mesh model)", f.gateway_api),
        };
        let istio = match f.support {
            Support::NotModelled => format!("{} (not in the mesh model)", f.istio),
            _ => format!("yes: {}", f.istio),
        };
        let field = if f.field == "-" {
            "-".to_owned()
        } else {
            format!("`{}`", f.field)
        };
        out.push_str(&format!(
            "| {} | {field} | {istio} | {gateway_api} |\n",
            f.row
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mesh, MeshInput, ModelError};

    fn checked(yaml: &str) -> Result<Mesh, ModelError> {
        Mesh::from_input(MeshInput::from_yaml(yaml).unwrap())
    }

    fn refused(yaml: &str) -> String {
        let text = checked(yaml).unwrap_err().to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        text
    }

    #[test]
    fn the_default_mesh_speaks_both() {
        for api in ["istio", "gateway-api"] {
            let mesh = checked(&format!("api: {api}\n")).unwrap();
            assert_eq!(mesh.api.name(), api);
        }
        assert_eq!(checked("").unwrap().api, Api::Istio);
        assert_eq!(
            checked("").unwrap().gateway_api_channel,
            Channel::Experimental
        );
    }

    #[test]
    fn a_fault_is_refused_naming_the_field_and_the_way_out() {
        let text = refused(
            "api: gateway-api\nservices:\n  - name: a\n    fault: {abort: {status: 503, percent: 5}}\n",
        );
        assert_eq!(
            text,
            "service `a`: fault: Gateway API has no fault injection: use --api istio"
        );
        // The same mesh in Istio's API is fine.
        checked("services:\n  - name: a\n    fault: {abort: {status: 503, percent: 5}}\n").unwrap();
    }

    #[test]
    fn retries_need_the_experimental_channel_and_gateway_api_conditions() {
        let text = refused("api: gateway-api\ngateway_api_channel: standard\nservices: [a]\n");
        assert!(
            text.contains("retries: HTTPRoute `retry` needs the Gateway API experimental channel"),
            "{text}"
        );
        assert!(text.contains("use --api istio"), "{text}");
        checked("api: gateway-api\ngateway_api_channel: standard\nservices:\n  - name: a\n    retries: {attempts: 0}\n").unwrap();
        let text = refused(
            "api: gateway-api\nservices:\n  - name: a\n    retries: {attempts: 2, retry_on: 5xx}\n",
        );
        assert!(text.contains("retries.retry_on: Gateway API retries on connect-failure,refused-stream,unavailable,cancelled only, not `5xx`"), "{text}");
        // The same conditions in another order say the same thing.
        checked("api: gateway-api\nservices:\n  - name: a\n    retries: {attempts: 2, retry_on: \"cancelled,unavailable,refused-stream,connect-failure\"}\n").unwrap();
        let text = refused("api: gateway-api\nservices:\n  - name: a\n    timeout: 1s\n");
        assert!(
            text.contains(
                "retries.per_try_timeout: the per-try timeout 4s is longer than the timeout 1s"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_version_service_may_not_take_another_name() {
        let text = refused(
            "api: gateway-api\nservices:\n  - name: web\n    versions: [{name: v1, weight: 50}, {name: api, weight: 50}]\n  - web-api\n",
        );
        assert_eq!(
            text,
            "service `web`: versions: Gateway API needs a Service `web-api` for version `api`, \
             but that is the name of service `web-api`: rename one, or use --api istio"
        );
        let matches: String = (0..16)
            .map(|i| format!("{{header: h{i}, value: x, version: v1}}, "))
            .collect();
        let text = refused(&format!(
            "api: gateway-api\nservices:\n  - name: a\n    match: [{matches}]\n"
        ));
        assert!(
            text.contains("match: 16 header matches and the split make 17 HTTPRoute rules"),
            "{text}"
        );
        let long = "a".repeat(60);
        let text = refused(&format!(
            "api: gateway-api\nservices:\n  - name: {long}\n    versions: [{{name: v1234}}]\n"
        ));
        assert!(text.contains("longer than the 63 characters"), "{text}");
    }

    #[test]
    fn the_table_has_a_row_per_feature_and_refuses_what_the_check_refuses() {
        let table = markdown_table();
        assert_eq!(table.lines().count(), FEATURES.len() + 2);
        for row in [
            "weights",
            "header match",
            "timeout",
            "retries",
            "fault",
            "circuit breaker",
            "outlier detection",
            "mirror",
        ] {
            assert!(table.contains(&format!("| {row} |")), "{row}");
        }
        let refused_rows: Vec<&str> = FEATURES
            .iter()
            .filter(|f| f.support == Support::Refused)
            .map(|f| f.field)
            .collect();
        assert_eq!(refused_rows, [FAULT.field]);
    }
}
