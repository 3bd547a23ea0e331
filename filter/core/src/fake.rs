//! A fake proxy-wasm host: headers, properties and metrics in plain maps, and a ledger of every
//! host call a stream makes with the bytes it moves across the Wasm boundary. The stream tests
//! drive [`crate::stream::Stream`] with it natively (as Kuadrant's wasm-shim does with its own),
//! and `make bench` prints its per-request ledger as the deterministic counterpart of the CPU
//! figures. Not compiled into the filter module (test builds and the `fake-host` feature only).

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::host::{Host, LogLevel};
use crate::metrics::MetricKind;

/// The kinds of host call, as they cost differently in Envoy: a read makes the host call back
/// into the module to allocate the answer, a property read also walks Envoy's attribute tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CallKind {
    PluginConfiguration,
    Property,
    RequestHeaderRead,
    RequestHeaderWrite,
    ResponseHeaderRead,
    ResponseHeaderWrite,
    LocalResponse,
    DefineMetric,
    IncrementMetric,
    RecordMetric,
    Clock,
    Log,
}

impl CallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::PluginConfiguration => "get_buffer(plugin config)",
            CallKind::Property => "get_property",
            CallKind::RequestHeaderRead => "get_header_map_value(request)",
            CallKind::RequestHeaderWrite => "replace_header_map_value(request)",
            CallKind::ResponseHeaderRead => "get_header_map_value(response)",
            CallKind::ResponseHeaderWrite => "replace_header_map_value(response)",
            CallKind::LocalResponse => "send_local_response",
            CallKind::DefineMetric => "define_metric",
            CallKind::IncrementMetric => "increment_metric",
            CallKind::RecordMetric => "record_metric",
            CallKind::Clock => "get_current_time_nanoseconds",
            CallKind::Log => "log",
        }
    }
}

/// One host call: what it was about (header name, property path, metric id), the bytes the
/// module passed in, and the bytes the host copied back into the module's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub kind: CallKind,
    pub what: String,
    pub bytes_in: usize,
    pub bytes_out: usize,
}

/// A locally sent response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The fake host. Headers are kept in order with lower-case names, as Envoy keeps them.
#[derive(Debug, Default)]
pub struct FakeHost {
    pub configuration: Vec<u8>,
    /// Property paths joined with `.` (`request.duration`).
    pub properties: BTreeMap<String, Vec<u8>>,
    pub request_headers: RefCell<Vec<(String, Vec<u8>)>>,
    pub response_headers: RefCell<Vec<(String, String)>>,
    pub local_response: RefCell<Option<LocalResponse>>,
    /// Defined metrics; a metric's id is its index here plus one.
    pub metrics: RefCell<Vec<(MetricKind, String)>>,
    pub counters: RefCell<BTreeMap<u32, u64>>,
    pub histograms: RefCell<BTreeMap<u32, Vec<u64>>>,
    /// What the host's clock reads; tests move it.
    pub clock_nanos: std::cell::Cell<u64>,
    /// When set, `define_metric` refuses (as Envoy does when its stats store is full).
    pub refuse_metrics: bool,
    pub logs: RefCell<Vec<(LogLevel, String)>>,
    pub calls: RefCell<Vec<Call>>,
}

impl FakeHost {
    pub fn with_property(mut self, path: &str, value: &[u8]) -> FakeHost {
        self.properties.insert(path.to_owned(), value.to_vec());
        self
    }

    pub fn with_i64_property(self, path: &str, value: i64) -> FakeHost {
        self.with_property(path, &value.to_le_bytes())
    }

    /// The upstream's response arrives: its `:status` in the response headers, as Envoy puts it.
    pub fn respond(&self, status: u16) {
        let mut headers = self.response_headers.borrow_mut();
        headers.retain(|(n, _)| n != ":status");
        headers.insert(0, (":status".to_owned(), status.to_string()));
    }

    /// Starts a new request: these request headers, no response yet, an empty call ledger.
    /// Metrics stay, as they do in a sidecar.
    pub fn start_request(&self, headers: &[(&str, &[u8])]) {
        *self.request_headers.borrow_mut() = headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_vec()))
            .collect();
        self.response_headers.borrow_mut().clear();
        *self.local_response.borrow_mut() = None;
        self.calls.borrow_mut().clear();
    }

    pub fn request_header_value(&self, name: &str) -> Option<String> {
        let headers = self.request_headers.borrow();
        let (_, value) = headers.iter().find(|(n, _)| n == name)?;
        Some(String::from_utf8_lossy(value).into_owned())
    }

    pub fn response_header_value(&self, name: &str) -> Option<String> {
        let headers = self.response_headers.borrow();
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    /// The counter's value for the metric whose full name ends with `name`.
    pub fn counter(&self, name: &str) -> u64 {
        let metrics = self.metrics.borrow();
        let counters = self.counters.borrow();
        (1u32..)
            .zip(metrics.iter())
            .filter(|(_, (kind, n))| *kind == MetricKind::Counter && n == name)
            .map(|(id, _)| counters.get(&id).copied().unwrap_or(0))
            .sum()
    }

    /// The values recorded into the histogram named `name`.
    pub fn histogram(&self, name: &str) -> Vec<u64> {
        let metrics = self.metrics.borrow();
        let histograms = self.histograms.borrow();
        (1u32..)
            .zip(metrics.iter())
            .filter(|(_, (kind, n))| *kind == MetricKind::Histogram && n == name)
            .flat_map(|(id, _)| histograms.get(&id).cloned().unwrap_or_default())
            .collect()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    fn note(&self, kind: CallKind, what: &str, bytes_in: usize, bytes_out: usize) {
        self.calls.borrow_mut().push(Call {
            kind,
            what: what.to_owned(),
            bytes_in,
            bytes_out,
        });
    }

    fn set_header(headers: &mut Vec<(String, Vec<u8>)>, name: &str, value: &[u8]) {
        // Envoy's replace: the first entry takes the value, any repeats go.
        let mut seen = false;
        headers.retain_mut(|(n, v)| {
            if n != name {
                return true;
            }
            if seen {
                return false;
            }
            seen = true;
            *v = value.to_vec();
            true
        });
        if !seen {
            headers.push((name.to_owned(), value.to_vec()));
        }
    }
}

impl Host for FakeHost {
    fn plugin_configuration(&self) -> Vec<u8> {
        self.note(
            CallKind::PluginConfiguration,
            "",
            0,
            self.configuration.len(),
        );
        self.configuration.clone()
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let key = path.join(".");
        let value = self.properties.get(&key).cloned();
        // proxy-wasm serialises a path as its segments, each followed by a NUL.
        let path_bytes = path.iter().map(|s| s.len() + 1).sum();
        self.note(
            CallKind::Property,
            &key,
            path_bytes,
            value.as_ref().map_or(0, Vec::len),
        );
        value
    }

    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        // Envoy joins repeated headers with "," when one value is asked for.
        let values: Vec<Vec<u8>> = self
            .request_headers
            .borrow()
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect();
        let value = (!values.is_empty()).then(|| values.join(&b","[..]));
        self.note(
            CallKind::RequestHeaderRead,
            name,
            name.len(),
            value.as_ref().map_or(0, Vec::len),
        );
        value
    }

    fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        let headers = self.response_headers.borrow();
        let value = headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone().into_bytes());
        self.note(
            CallKind::ResponseHeaderRead,
            name,
            name.len(),
            value.as_ref().map_or(0, Vec::len),
        );
        value
    }

    fn set_request_header(&self, name: &str, value: &str) {
        self.note(
            CallKind::RequestHeaderWrite,
            name,
            name.len() + value.len(),
            0,
        );
        FakeHost::set_header(
            &mut self.request_headers.borrow_mut(),
            name,
            value.as_bytes(),
        );
    }

    fn set_response_header(&self, name: &str, value: &str) {
        self.note(
            CallKind::ResponseHeaderWrite,
            name,
            name.len() + value.len(),
            0,
        );
        let mut headers = self.response_headers.borrow_mut();
        headers.retain(|(n, _)| n != name);
        headers.push((name.to_owned(), value.to_owned()));
    }

    fn send_local_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        // proxy-wasm serialises a header map as a count, two lengths per pair, then each
        // name and value followed by a NUL.
        let map_bytes = 4 + headers
            .iter()
            .map(|(n, v)| 8 + n.len() + v.len() + 2)
            .sum::<usize>();
        self.note(CallKind::LocalResponse, "", map_bytes + body.len(), 0);
        *self.local_response.borrow_mut() = Some(LocalResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_vec(),
        });
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        self.note(CallKind::DefineMetric, name, name.len(), 0);
        if self.refuse_metrics {
            return None;
        }
        let mut metrics = self.metrics.borrow_mut();
        metrics.push((kind, name.to_owned()));
        u32::try_from(metrics.len()).ok()
    }

    fn increment(&self, id: u32) {
        self.note(CallKind::IncrementMetric, "", 0, 0);
        *self.counters.borrow_mut().entry(id).or_default() += 1;
    }

    fn now_nanos(&self) -> Option<u64> {
        self.note(CallKind::Clock, "", 0, 0);
        Some(self.clock_nanos.get())
    }

    fn record(&self, id: u32, value: u64) {
        self.note(CallKind::RecordMetric, "", 0, 0);
        self.histograms
            .borrow_mut()
            .entry(id)
            .or_default()
            .push(value);
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.note(CallKind::Log, "", message.len(), 0);
        self.logs.borrow_mut().push((level, message.to_owned()));
    }
}
