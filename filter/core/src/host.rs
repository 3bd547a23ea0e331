//! What a stream needs from the proxy, as a trait: Envoy implements it with proxy-wasm host calls
//! (`meshtally-filter`), the fake in `fake.rs` with plain maps, so the stream's behaviour is
//! unit-tested natively and every host call it makes can be counted.

use crate::metrics::MetricKind;

/// The proxy-wasm host calls the filter makes. Every method is infallible from the caller's
/// side: a host error is logged by the implementation and reads as "absent".
pub trait Host {
    /// The plugin configuration buffer (empty when none was given).
    fn plugin_configuration(&self) -> Vec<u8>;
    /// A property by path (`["request", "duration"]`), as Envoy serialises it.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    fn request_header(&self, name: &str) -> Option<Vec<u8>>;
    fn set_request_header(&self, name: &str, value: &str);
    fn response_header(&self, name: &str) -> Option<Vec<u8>>;
    fn set_response_header(&self, name: &str, value: &str);
    /// Answers the stream locally; the request goes no further.
    fn send_local_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]);
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32>;
    fn increment(&self, id: u32);
    /// The host's clock, in nanoseconds since the epoch.
    fn now_nanos(&self) -> Option<u64>;
    fn record(&self, id: u32, value: u64);
    /// Where log lines go (the proxy's log in Envoy).
    fn log(&self, level: LogLevel, message: &str);

    /// Envoy encodes integer properties as 8 little-endian bytes.
    fn property_i64(&self, path: &[&str]) -> Option<i64> {
        let bytes: [u8; 8] = self.property(path)?.try_into().ok()?;
        Some(i64::from_le_bytes(bytes))
    }

    /// A node metadata value (`["WORKLOAD_NAME"]`, `["LABELS", "app"]`), under `xds.node` first,
    /// then the pre-1.28 `node`.
    fn node_metadata(&self, path: &[&str]) -> Option<Vec<u8>> {
        let modern: Vec<&str> = ["xds", "node", "metadata"]
            .iter()
            .chain(path)
            .copied()
            .collect();
        self.property(&modern)
            .or_else(|| self.property(modern.get(1..).unwrap_or_default()))
    }
}

/// A borrowed host is a host: the tests lend theirs to a stream and look at it afterwards.
impl<H: Host + ?Sized> Host for &H {
    fn plugin_configuration(&self) -> Vec<u8> {
        (**self).plugin_configuration()
    }
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        (**self).property(path)
    }
    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        (**self).request_header(name)
    }
    fn set_request_header(&self, name: &str, value: &str) {
        (**self).set_request_header(name, value)
    }
    fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        (**self).response_header(name)
    }
    fn set_response_header(&self, name: &str, value: &str) {
        (**self).set_response_header(name, value)
    }
    fn send_local_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        (**self).send_local_response(status, headers, body)
    }
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        (**self).define_metric(kind, name)
    }
    fn increment(&self, id: u32) {
        (**self).increment(id)
    }
    fn now_nanos(&self) -> Option<u64> {
        (**self).now_nanos()
    }
    fn record(&self, id: u32, value: u64) {
        (**self).record(id, value)
    }
    fn log(&self, level: LogLevel, message: &str) {
        (**self).log(level, message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}
