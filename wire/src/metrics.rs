//! The filter's metrics as every reader meets them: their names, and the tags encoded in a
//! stat name in the `<tag>=.=<value>;.;` form that Istio's extraStatTags and Envoy's `stats_tags`
//! extract, so `/stats/prometheus` shows `meshtally_requests_total{source=…,destination=…,…}`.
//! The filter writes these names; `deployer`, the tests and the bench read them back.

pub const REQUESTS_TOTAL: &str = "meshtally_requests_total";
pub const REQUEST_DURATION: &str = "meshtally_request_duration_milliseconds";

/// The `destination_version` of an outbound call that left the mesh: the caller alone counted
/// it (no callee in the mesh did). The label set stays fixed, as Istio's
/// `destination_service_name` reuses its cluster names for such calls.
pub const EXTERNAL_VERSION: &str = "external";
/// The destination of a call to a host the mesh does not know, refused by the sidecar
/// (`outbound_policy: registry_only`) or passed through (`allow_any`): Istio's cluster names.
pub const BLACKHOLE: &str = "BlackHoleCluster";
pub const PASSTHROUGH: &str = "PassthroughCluster";
/// istiod's names of the catch-all routes that send calls there.
pub const BLOCK_ALL_ROUTE: &str = "block_all";
pub const ALLOW_ANY_ROUTE: &str = "allow_any";

/// Tag names, in the order they appear in a metric name.
pub const TAG_NAMES: [&str; 6] = [
    "source",
    "destination",
    "destination_version",
    "direction",
    "response_code_class",
    "connection_security_policy",
];

/// The `stats_tags` entries (tag name, regex) Envoy needs to turn our names into labels.
pub fn stats_tags() -> [(&'static str, String); 6] {
    TAG_NAMES.map(|tag| (tag, format!("({tag}=\\.=(.*?);\\.;)")))
}

/// One parsed meshtally stat: the inverse of the filter's `metric_name`, for readers of `/stats` that do
/// not have Envoy's tag extraction at hand (`deployer stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMetric<'a> {
    pub metric: &'a str,
    pub source: &'a str,
    pub destination: &'a str,
    pub destination_version: &'a str,
    pub direction: &'a str,
    pub response_code_class: &'a str,
    pub connection_security_policy: &'a str,
}

/// Parses `[wasmcustom.]source=.=a;.;destination=.=b;.;destination_version=.=v;.;direction=.=d;.;response_code_class=.=c;.;connection_security_policy=.=p;.;<metric>`.
pub fn parse_metric_name(name: &str) -> Option<ParsedMetric<'_>> {
    let mut rest = name.strip_prefix("wasmcustom.").unwrap_or(name);
    let mut values = [""; TAG_NAMES.len()];
    for (tag, slot) in TAG_NAMES.iter().zip(values.iter_mut()) {
        rest = rest.strip_prefix(tag)?.strip_prefix("=.=")?;
        let end = rest.find(";.;")?;
        *slot = rest.get(..end)?;
        rest = rest.get(end + 3..)?;
    }
    let [source, destination, destination_version, direction, response_code_class, connection_security_policy] =
        values;
    Some(ParsedMetric {
        metric: rest,
        source,
        destination,
        destination_version,
        direction,
        response_code_class,
        connection_security_policy,
    })
}
