//! proxy-wasm's HTTP callbacks, forwarded to meshtally-core's [`Stream`] with Envoy as the host.
//! Nothing is decided here; `meshtally_core::stream` holds the behaviour and its tests.

use meshtally_core::{Flow, Stream};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::host::Envoy;

pub(crate) struct Http(pub Stream<Envoy>);

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
    }
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        action(self.0.on_request_headers())
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        action(self.0.on_response_headers())
    }

    fn on_log(&mut self) {
        self.0.on_log();
    }
}
