//! Which inbound headers travel on to peers, and how header maps are shown as JSON.
//! Istio only stitches traces and the mesh's loop guard only counts hops if the app
//! copies these few headers from each request onto the calls it makes for it.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderName};

/// Copied verbatim from an inbound request onto every outbound peer call it causes.
/// Everything else — notably the mesh's own `x-mesh-source` / `x-mesh-*` tags — is
/// deliberately dropped: the sidecar sets those, and forwarding them would let a
/// caller's identity leak one hop further than it really went.
pub const PROPAGATED: &[&str] = &[
    meshtally_wire::headers::HOPS,
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
];

/// The subset of `inbound` that must follow the request to its peers, every value of
/// a repeated header included.
pub fn propagated(inbound: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in PROPAGATED {
        let name = HeaderName::from_static(name);
        for value in inbound.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Lower-case name → value. A header that occurs more than once is joined with ", "
/// (the HTTP list form), which keeps every value a plain string for `jq` and tests.
/// Non-UTF-8 bytes are replaced rather than dropped so the header still shows up.
pub fn to_json(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_string())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_trace_and_hop_headers_are_propagated() {
        let mut inbound = HeaderMap::new();
        inbound.insert("x-mesh-hops", HeaderValue::from_static("3"));
        inbound.insert("x-mesh-source", HeaderValue::from_static("service-a"));
        inbound.insert("traceparent", HeaderValue::from_static("00-abc-def-01"));
        inbound.append("b3", HeaderValue::from_static("one"));
        inbound.append("b3", HeaderValue::from_static("two"));
        inbound.insert("authorization", HeaderValue::from_static("secret"));

        let out = propagated(&inbound);
        assert_eq!(out.len(), 4);
        assert_eq!(out["x-mesh-hops"], "3");
        assert_eq!(out["traceparent"], "00-abc-def-01");
        assert_eq!(out.get_all("b3").iter().count(), 2);
        assert!(out.get("x-mesh-source").is_none());
        assert!(out.get("authorization").is_none());
    }

    #[test]
    fn repeated_headers_are_joined_in_order() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        h.insert("Host", HeaderValue::from_static("example"));
        let json = to_json(&h);
        assert_eq!(json["x-a"], "1, 2");
        assert_eq!(json["host"], "example");
    }
}
