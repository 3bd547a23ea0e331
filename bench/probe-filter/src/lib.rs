//! The price list for the benchmarks: the empty filter plus one kind of host call, made `N`
//! times on every request's headers. Configured as `<call> <N>` (`get_header 10`); callgrind's
//! (probe − empty) ÷ N is what one such call costs Envoy's worker, and meshtally's per-request
//! ledger times these prices says where its cost goes, call by call.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};

// `main!` expands to the `_initialize` export, which needs `#[no_mangle]`.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(super::Root::default())
        });
    }}
}

/// The host calls meshtally makes per request, one of which the probe repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// Read a request header that is present (`x-mesh-hops`).
    GetHeader,
    /// Overwrite a request header (`x-mesh-source`).
    SetHeader,
    /// Read the peer certificate's URI SAN (`connection.uri_san_peer_certificate`), as
    /// meshtally's inbound side does: absent over plain HTTP, a SPIFFE id over mTLS (the probe
    /// runs on both listeners, and the two cost differently).
    PeerIdentity,
    /// Add a request header the request does not carry (`x-probe-<i>`, a new one each time):
    /// what meshtally's inbound `x-mesh-destination` and `x-mesh-peer-verified` cost, the
    /// header's trip upstream included.
    AddHeader,
    /// Add a response header the response does not carry, on the response headers: what
    /// `x-mesh-served-by` costs, its trip to the client included.
    AddResponseHeader,
    /// Read all request headers at once.
    GetHeaders,
    /// Increment a counter.
    Increment,
    /// Record a value in a histogram (meshtally's duration), which Envoy's stats handle apart
    /// from counters.
    Record,
    /// Read the host's clock.
    Clock,
}

impl Call {
    fn parse(name: &str) -> Option<Call> {
        Some(match name {
            "get_header" => Call::GetHeader,
            "set_header" => Call::SetHeader,
            "peer_identity" => Call::PeerIdentity,
            "add_header" => Call::AddHeader,
            "add_response_header" => Call::AddResponseHeader,
            "get_headers" => Call::GetHeaders,
            "increment" => Call::Increment,
            "record" => Call::Record,
            "clock" => Call::Clock,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Plan {
    call: Call,
    times: u32,
    counter: u32,
}

#[derive(Default)]
struct Root {
    plan: Option<Rc<Plan>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&raw);
        let mut words = text.split_whitespace();
        let call = words.next().and_then(Call::parse);
        let times = words.next().and_then(|n| n.parse::<u32>().ok());
        let (Some(call), Some(times)) = (call, times) else {
            let _ = hostcalls::log(
                proxy_wasm::types::LogLevel::Error,
                "probe: configure as `<call> <times>`",
            );
            return false;
        };
        let kind = if call == Call::Record {
            MetricType::Histogram
        } else {
            MetricType::Counter
        };
        let counter = hostcalls::define_metric(kind, "meshtally_probe_total").unwrap_or_default();
        self.plan = Some(Rc::new(Plan {
            call,
            times,
            counter,
        }));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream(self.plan.clone()?)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream(Rc<Plan>);

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let plan = *self.0;
        for i in 0..plan.times {
            match plan.call {
                Call::GetHeader => {
                    let _ =
                        hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "x-mesh-hops");
                }
                Call::SetHeader => {
                    let _ = hostcalls::set_map_value(
                        MapType::HttpRequestHeaders,
                        "x-mesh-source",
                        Some("bench-proxy"),
                    );
                }
                Call::PeerIdentity => {
                    let _ = hostcalls::get_property(vec!["connection", "uri_san_peer_certificate"]);
                }
                Call::AddHeader => {
                    let _ = hostcalls::set_map_value(
                        MapType::HttpRequestHeaders,
                        new_header(i),
                        Some("bench-proxy"),
                    );
                }
                Call::AddResponseHeader => {}
                Call::GetHeaders => {
                    let _ = hostcalls::get_map_bytes(MapType::HttpRequestHeaders);
                }
                Call::Increment => {
                    let _ = hostcalls::increment_metric(plan.counter, 1);
                }
                Call::Record => {
                    let _ = hostcalls::record_metric(plan.counter, 7);
                }
                Call::Clock => {
                    let _ = hostcalls::get_current_time();
                }
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.0.call == Call::AddResponseHeader {
            for i in 0..self.0.times {
                let _ = hostcalls::set_map_value(
                    MapType::HttpResponseHeaders,
                    new_header(i),
                    Some("bench-proxy"),
                );
            }
        }
        Action::Continue
    }
}

/// A header name no request or response of the bench carries, one per repetition.
fn new_header(i: u32) -> &'static str {
    const NAMES: [&str; 10] = [
        "x-probe-0",
        "x-probe-1",
        "x-probe-2",
        "x-probe-3",
        "x-probe-4",
        "x-probe-5",
        "x-probe-6",
        "x-probe-7",
        "x-probe-8",
        "x-probe-9",
    ];
    NAMES
        .get(usize::try_from(i).unwrap_or(usize::MAX))
        .copied()
        .unwrap_or("x-probe")
}
