//! Per-stream work: tag the request on the way in or out, and count the stream once at its end
//! (`on_log`), so local replies, upstream failures and resets are all counted.

use std::rc::Rc;

use meshtally_core::headers::{DESTINATION, HOPS, PEER_VERIFIED, SERVED_BY, SOURCE};
use meshtally_core::metrics::CodeClass;
use meshtally_core::tagging::{self, HopDecision};
use meshtally_core::Direction;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::{host, Plugin};

pub(crate) struct Stream {
    plugin: Rc<Plugin>,
    direction: Option<Direction>,
    /// The peer on the other side of this sidecar; the local service is the other end.
    /// Outbound: the destination. Inbound: the caller.
    peer: Option<String>,
}

impl Stream {
    pub fn new(plugin: Rc<Plugin>) -> Stream {
        Stream {
            plugin,
            direction: None,
            peer: None,
        }
    }

    fn outbound(&mut self) -> Action {
        let service = self.plugin.config.service.as_str();
        let authority = host::request_header(":authority");
        self.peer = Some(tagging::destination_from_authority(authority.as_deref()).to_owned());

        let incoming = tagging::parse_hops(host::request_header(HOPS).as_deref());
        let mut buf = [0; 10];
        match tagging::outbound_hops(incoming, self.plugin.config.max_hops) {
            HopDecision::Forward(hops) => {
                // Set, not add: whatever the app sent as x-mesh-source is replaced.
                host::set_request_header(SOURCE, service);
                host::set_request_header(HOPS, tagging::format_u32(hops, &mut buf));
                Action::Continue
            }
            HopDecision::Loop(hops) => {
                let hops = tagging::format_u32(hops, &mut buf);
                host::send_local_response(
                    508,
                    vec![
                        (SOURCE, service),
                        (HOPS, hops),
                        ("content-type", "text/plain"),
                    ],
                    b"meshtally: loop detected: x-mesh-hops exceeds max_hops\n",
                );
                Action::Pause
            }
        }
    }

    fn inbound(&mut self) -> Action {
        let service = self.plugin.config.service.as_str();
        let san = host::property(&["connection", "uri_san_peer_certificate"]);
        let claimed = host::request_header(SOURCE);
        let caller = tagging::resolve_caller(san.as_deref(), claimed.as_deref());
        host::set_request_header(SOURCE, caller.name);
        host::set_request_header(DESTINATION, service);
        host::set_request_header(
            PEER_VERIFIED,
            if caller.verified { "true" } else { "false" },
        );
        self.peer = Some(caller.name.to_owned());

        // Hops pass through inbound, but only as a number we parsed ourselves.
        if let Some(raw) = host::request_header(HOPS) {
            let mut buf = [0; 10];
            host::set_request_header(
                HOPS,
                tagging::format_u32(tagging::parse_hops(Some(&raw)), &mut buf),
            );
        }
        Action::Continue
    }

    fn count(&self, direction: Direction) {
        let Some(peer) = self.peer.as_deref() else {
            return;
        };
        let service = self.plugin.config.service.as_str();
        let (source, destination) = match direction {
            Direction::Outbound => (service, peer),
            Direction::Inbound => (peer, service),
        };
        let code = host::property_i64(&["response", "code"]).and_then(|c| u64::try_from(c).ok());
        let class = CodeClass::from_code(code);

        let Ok(mut cache) = self.plugin.metrics(direction).try_borrow_mut() else {
            return;
        };
        let Some(ids) = cache.ids(source, destination, class, host::define_metric) else {
            return;
        };
        host::increment(ids.requests);
        if let Some(nanos) = host::property_i64(&["request", "duration"]) {
            host::record(ids.duration, u64::try_from(nanos / 1_000_000).unwrap_or(0));
        }
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.direction = self.plugin.direction();
        match self.direction {
            Some(Direction::Outbound) => self.outbound(),
            Some(Direction::Inbound) => self.inbound(),
            None => {
                log::warn!(
                    "meshtally: listener direction unknown; set `direction` in the plugin config"
                );
                Action::Continue
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.direction == Some(Direction::Inbound) {
            host::set_response_header(SERVED_BY, &self.plugin.config.service);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if let Some(direction) = self.direction {
            self.count(direction);
        }
    }
}
