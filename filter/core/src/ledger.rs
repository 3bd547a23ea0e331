//! The per-request host-call ledger: the requests `make bench` times, replayed through the real
//! stream code against the fake host, with every host call and byte crossed written down. Unlike
//! CPU time this does not depend on the machine, so it is the figure a change to the
//! per-request path can be judged by before it is timed.

use std::rc::Rc;

use crate::fake::{Call, FakeHost};
use crate::headers::{HOPS, SOURCE};
use crate::stream::{Plugin, Stream};

/// One kind of request, with the calls its second occurrence made (the first also defines the
/// metrics, once per sidecar and tag set).
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub calls: Vec<Call>,
}

impl Scenario {
    pub fn bytes_in(&self) -> usize {
        self.calls.iter().map(|c| c.bytes_in).sum()
    }

    pub fn bytes_out(&self) -> usize {
        self.calls.iter().map(|c| c.bytes_out).sum()
    }
}

/// The headers the bench's load generator sends (oha to `127.0.0.1:<port>`).
pub const BENCH_REQUEST: &[(&str, &[u8])] = &[
    (":authority", b"127.0.0.1:28410"),
    (":path", b"/"),
    (":method", b"GET"),
    (":scheme", b"http"),
    ("user-agent", b"oha/1.16.0"),
    ("accept", b"*/*"),
    (SOURCE, b"claimed-client"),
    (HOPS, b"1"),
];

const SPIFFE: &[u8] = b"spiffe://cluster.local/ns/bench/sa/bench-client";

fn host(direction: &str, mtls: bool) -> FakeHost {
    let mut host = FakeHost {
        configuration: format!(r#"{{"service":"bench-proxy","direction":"{direction}"}}"#)
            .into_bytes(),
        ..FakeHost::default()
    }
    .with_i64_property("response.code", 200);
    if mtls {
        host = host.with_property("connection.uri_san_peer_certificate", SPIFFE);
    }
    host
}

/// Runs two requests through one stream each and returns the calls of the second.
fn replay(name: &'static str, direction: &str, mtls: bool) -> Scenario {
    let host = host(direction, mtls);
    let calls = match Plugin::configure(&host) {
        Ok(plugin) => {
            let plugin = Rc::new(plugin);
            for _ in 0..2 {
                host.start_request(BENCH_REQUEST);
                let mut stream = Stream::new(Rc::clone(&plugin), &host);
                stream.on_request_headers();
                host.respond(200);
                stream.on_response_headers();
                stream.on_log();
            }
            host.calls()
        }
        Err(_) => Vec::new(),
    };
    Scenario { name, calls }
}

/// The bench's three meshtally variants.
pub fn per_request() -> Vec<Scenario> {
    vec![
        replay("meshtally outbound", "outbound", false),
        replay("meshtally inbound", "inbound", false),
        replay("meshtally inbound, mTLS", "inbound", true),
    ]
}
