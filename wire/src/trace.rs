//! The facts meshtally puts on trace spans. proxy-wasm cannot write spans, so the filter's
//! request headers become span tags through the tracer's custom tags (Istio's Telemetry
//! `customTags`, Envoy's `custom_tags`): one list, which `render` writes into the Telemetry and
//! `up` into every connection manager, and which `deployer trace` reads back from the spans.
//! The version that answered needs no tag of ours: the callee's SERVER span carries Istio's
//! `istio.canonical_revision` (its workload's `version` label), known at configure time.

use crate::headers;

/// A tag's value: a request header as the filter left it, or `default` when it is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub header: &'static str,
    pub default: &'static str,
}

/// Tag: the caller, as the callee's filter verified it (on a client span: the caller the
/// outbound filter set).
pub const SOURCE: &str = "mesh.source";
/// Tag: `true` when a certificate proved the caller (server spans only).
pub const PEER_VERIFIED: &str = "mesh.peer_verified";
/// Tag: the hop count the filter parsed.
pub const HOPS: &str = "mesh.hops";
/// Istio's tag on every span: the workload's version (on a SERVER span, the version that
/// answered).
pub const VERSION: &str = "istio.canonical_revision";

/// Every custom tag, sorted by name as istiod sorts them.
pub const TAGS: [(&str, Source); 3] = [
    (
        HOPS,
        Source {
            header: headers::HOPS,
            default: "0",
        },
    ),
    (
        PEER_VERIFIED,
        Source {
            header: headers::PEER_VERIFIED,
            default: "false",
        },
    ),
    (
        SOURCE,
        Source {
            header: headers::SOURCE,
            default: "unknown",
        },
    ),
];

/// The Zipkin collector path Envoy posts spans to (Zipkin v2 JSON).
pub const ZIPKIN_SPANS_PATH: &str = "/api/v2/spans";
/// The port Zipkin (and Jaeger's Zipkin receiver) listens on, and Istio's extension provider
/// names.
pub const ZIPKIN_PORT: u16 = 9411;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_sorted_and_read_the_filters_headers() {
        let names: Vec<&str> = TAGS.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert!(TAGS.iter().all(|(_, s)| s.header.starts_with("x-mesh-")));
    }
}
