//! Thin, non-panicking wrappers over proxy-wasm host calls. The SDK's trait helpers unwrap host
//! errors; a sidecar filter must never take the proxy's traffic down, so errors are logged and
//! mapped to "absent" here instead.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType};

use meshtally_core::MetricKind;

pub fn plugin_configuration() -> Vec<u8> {
    hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
        .ok()
        .flatten()
        .unwrap_or_default()
}

pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    hostcalls::get_property(path.to_vec()).ok().flatten()
}

/// Envoy encodes integer properties as 8 little-endian bytes.
pub fn property_i64(path: &[&str]) -> Option<i64> {
    let bytes: [u8; 8] = property(path)?.try_into().ok()?;
    Some(i64::from_le_bytes(bytes))
}

/// Envoy 1.28+ serves the wasm attributes under `xds.`; older proxies (and some Istio builds)
/// only under their bare names, so both are tried.
pub fn listener_direction() -> Option<i64> {
    property_i64(&["xds", "listener_direction"]).or_else(|| property_i64(&["listener_direction"]))
}

pub fn node_metadata(path: &[&str]) -> Option<Vec<u8>> {
    let modern: Vec<&str> = ["xds", "node", "metadata"]
        .iter()
        .chain(path)
        .copied()
        .collect();
    property(&modern).or_else(|| property(modern.get(1..).unwrap_or_default()))
}

pub fn request_header(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
}

pub fn set_request_header(name: &str, value: &str) {
    if let Err(status) = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)) {
        log::warn!(
            "meshtally: could not set request header {name}: status {}",
            status as u32
        );
    }
}

pub fn set_response_header(name: &str, value: &str) {
    if let Err(status) = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value)) {
        log::warn!(
            "meshtally: could not set response header {name}: status {}",
            status as u32
        );
    }
}

pub fn send_local_response(status: u32, headers: Vec<(&str, &str)>, body: &[u8]) {
    if let Err(status) = hostcalls::send_http_response(status, headers, Some(body)) {
        log::warn!(
            "meshtally: could not send local response: status {}",
            status as u32
        );
    }
}

pub fn define_metric(kind: MetricKind, name: &str) -> Option<u32> {
    let kind = match kind {
        MetricKind::Counter => MetricType::Counter,
        MetricKind::Histogram => MetricType::Histogram,
    };
    hostcalls::define_metric(kind, name)
        .map_err(|status| {
            log::warn!(
                "meshtally: could not define metric {name}: status {}",
                status as u32
            )
        })
        .ok()
}

pub fn increment(id: u32) {
    let _ = hostcalls::increment_metric(id, 1);
}

pub fn record(id: u32, value: u64) {
    let _ = hostcalls::record_metric(id, value);
}
