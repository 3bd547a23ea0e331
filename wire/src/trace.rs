//! The facts meshtally puts on trace spans. proxy-wasm cannot write spans, so the filter's
//! headers become span tags through the tracer's custom tags (Istio's Telemetry `customTags`,
//! Envoy's `custom_tags`): one list, which `render` writes into the Telemetry and `up` into
//! every connection manager, and which `deployer trace` reads back from the spans.

use crate::headers;

/// Where a tag's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A request header (as the filter left it), or `default` when it is absent.
    RequestHeader {
        name: &'static str,
        default: &'static str,
    },
    /// An access-log format string, evaluated when the span ends (Istio's `formatter` tag,
    /// Envoy's `value`): how a response header reaches a span.
    Formatter(&'static str),
}

/// Tag: the caller, as the callee's filter verified it (on a client span: the caller the
/// outbound filter set).
pub const SOURCE: &str = "mesh.source";
/// Tag: `true` when a certificate proved the caller (server spans only).
pub const PEER_VERIFIED: &str = "mesh.peer_verified";
/// Tag: the hop count the filter parsed.
pub const HOPS: &str = "mesh.hops";
/// Tag: the version of the service that answered.
pub const SERVED_VERSION: &str = "mesh.served_version";

/// Every custom tag, sorted by name as istiod sorts them.
pub const TAGS: [(&str, Source); 4] = [
    (
        HOPS,
        Source::RequestHeader {
            name: headers::HOPS,
            default: "0",
        },
    ),
    (
        PEER_VERIFIED,
        Source::RequestHeader {
            name: headers::PEER_VERIFIED,
            default: "false",
        },
    ),
    (
        SERVED_VERSION,
        Source::Formatter("%RESP(x-mesh-served-version)%"),
    ),
    (
        SOURCE,
        Source::RequestHeader {
            name: headers::SOURCE,
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
    fn tags_are_sorted_and_the_formatter_reads_the_served_version_header() {
        let names: Vec<&str> = TAGS.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        let formatters: Vec<&str> = TAGS
            .iter()
            .filter_map(|(_, s)| match s {
                Source::Formatter(f) => Some(*f),
                Source::RequestHeader { .. } => None,
            })
            .collect();
        assert_eq!(
            formatters,
            [format!("%RESP({})%", headers::SERVED_VERSION).as_str()]
        );
    }
}
