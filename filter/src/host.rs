//! Envoy as meshtally-core's [`Host`]: each method is one proxy-wasm host call (`abi.rs`). A
//! sidecar filter must never take the proxy's traffic down, so host errors are logged and read
//! as "absent". Log lines go straight to the host (`proxy_log`): no logger, no panic hook.

use meshtally_core::{Host, LogLevel, MetricKind};

use crate::abi::{self, REQUEST_HEADERS, RESPONSE_HEADERS};

/// The proxy this module runs in. Stateless: every call goes to the host.
pub(crate) struct Envoy;

impl Host for Envoy {
    fn plugin_configuration(&self) -> Vec<u8> {
        abi::plugin_configuration().unwrap_or_default()
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        abi::property(path)
    }

    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        abi::header(REQUEST_HEADERS, name)
    }

    fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        abi::header(RESPONSE_HEADERS, name)
    }

    fn set_request_header(&self, name: &str, value: &str) {
        if let Err(abi::Refused(status)) = abi::set_header(REQUEST_HEADERS, name, value) {
            warn(&format!(
                "meshtally: could not set request header {name}: status {status}"
            ));
        }
    }

    fn set_response_header(&self, name: &str, value: &str) {
        if let Err(abi::Refused(status)) = abi::set_header(RESPONSE_HEADERS, name, value) {
            warn(&format!(
                "meshtally: could not set response header {name}: status {status}"
            ));
        }
    }

    fn send_local_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        if let Err(abi::Refused(code)) = abi::send_local_response(status, headers, body) {
            warn(&format!(
                "meshtally: could not send local response: status {code}"
            ));
        }
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricKind::Counter => abi::COUNTER,
            MetricKind::Histogram => abi::HISTOGRAM,
        };
        abi::define_metric(kind, name)
            .map_err(|abi::Refused(status)| {
                warn(&format!(
                    "meshtally: could not define metric {name}: status {status}"
                ))
            })
            .ok()
    }

    fn increment(&self, id: u32) {
        abi::increment_metric(id);
    }

    fn now_nanos(&self) -> Option<u64> {
        abi::now_nanos()
    }

    fn record(&self, id: u32, value: u64) {
        abi::record_metric(id, value);
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Info => abi::LOG_INFO,
            LogLevel::Warn => abi::LOG_WARN,
            LogLevel::Error => abi::LOG_ERROR,
        };
        abi::log(level, message);
    }
}

fn warn(message: &str) {
    abi::log(abi::LOG_WARN, message);
}
