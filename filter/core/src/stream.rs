//! Per-stream behaviour, written against [`Host`]: tag the request on the way in or out, and
//! count the stream once at its end (`on_log`), so local replies, upstream failures and resets
//! are all counted. `meshtally-filter` forwards proxy-wasm's callbacks here with Envoy as the
//! host; the tests drive the same code with the fake host.

use std::cell::RefCell;
use std::rc::Rc;

use crate::config::UNKNOWN_VERSION;
use crate::config::{Config, ConfigError, Direction, NodeMetadata};
use crate::headers::{DESTINATION, HOPS, PEER_VERIFIED, SERVED_BY, SOURCE};
use crate::host::Host;
use crate::metrics::{CodeClass, MetricCache};
use crate::tagging::{self, HopDecision};

/// What the proxy should do after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop the filter chain (the stream was answered locally).
    Pause,
}

/// The body of the 508 the callee's side answers when a call arrives with `x-mesh-hops` past
/// `max_hops`.
pub const LOOP_BODY: &[u8] = b"meshtally: loop detected: x-mesh-hops exceeds max_hops\n";

/// What every stream of a root context shares: the config and the metric ids.
///
/// Each side of a sidecar has a plugin of its own, its direction in its config (Istio: one
/// WasmPlugin per `match.mode`), so a root context serves one direction and no stream asks the
/// proxy which listener it is on.
#[derive(Debug)]
pub struct Plugin {
    pub config: Config,
    metrics: RefCell<MetricCache>,
}

impl Plugin {
    /// `on_configure`: reads and checks the plugin config (with the node metadata as the
    /// fallback for `service`). The error names the field at fault.
    pub fn configure(host: &impl Host) -> Result<Plugin, ConfigError> {
        let raw = host.plugin_configuration();
        let node = NodeMetadata {
            workload_name: host.node_metadata(&["WORKLOAD_NAME"]),
            app_label: host.node_metadata(&["LABELS", "app"]),
            version_label: host.node_metadata(&["LABELS", "version"]),
            namespace: host.node_metadata(&["NAMESPACE"]),
        };
        let config = Config::parse(&raw, &node)?;
        Ok(Plugin {
            metrics: RefCell::new(MetricCache::new(config.direction)),
            config,
        })
    }
}

/// One HTTP stream through the filter.
pub struct Stream<H> {
    plugin: Rc<Plugin>,
    host: H,
    /// The peer on the other side of this sidecar; the local service is the other end.
    /// Outbound: the destination. Inbound: the caller.
    peer: Option<String>,
    /// The response status, from the response headers (or the local reply we sent); `None`
    /// until then, and for streams reset before any response.
    status: Option<u64>,
    /// The host clock when the request headers arrived, for the duration histogram.
    started: Option<u64>,
    /// Inbound: a verified peer certificate named the caller (`connection_security_policy`).
    verified: bool,
    /// Outbound: the call leaves the mesh (its `destination_version` is then
    /// [`tagging::EXTERNAL`]).
    external: bool,
}

impl<H: Host> Stream<H> {
    pub fn new(plugin: Rc<Plugin>, host: H) -> Stream<H> {
        Stream {
            plugin,
            host,
            peer: None,
            status: None,
            started: None,
            verified: false,
            external: false,
        }
    }

    pub fn host(&self) -> &H {
        &self.host
    }

    pub fn on_request_headers(&mut self) -> Flow {
        // Two clock reads cost less than one `request.duration` property read (make bench).
        self.started = self.host.now_nanos();
        match self.plugin.config.direction {
            Direction::Outbound => self.outbound(),
            Direction::Inbound => self.inbound(),
        }
    }

    pub fn on_response_headers(&mut self) -> Flow {
        // `:status` is a header read, cheaper than reading the `response.code` property at
        // the end (make bench prices both).
        self.status = self
            .host
            .response_header(":status")
            .and_then(|s| tagging::parse_status(&s));
        // Inbound: the callee names itself on the response. Its version is not sent back: the
        // callee counts each call with its own version (known at configure time), per caller,
        // which is what `top`, `stats` and a canary's split read; a caller-side label would
        // cost the caller a header read on every response to say what the callee already
        // counted, and could not name the version of a call that never reached a callee.
        if self.plugin.config.direction == Direction::Inbound {
            self.host
                .set_response_header(SERVED_BY, &self.plugin.config.service);
        }
        Flow::Continue
    }

    /// The stream is over (completed, answered locally, failed or reset): count it once.
    pub fn on_log(&mut self) {
        self.count();
    }

    /// The caller's side names the destination and the caller. The hop count is the callee's
    /// side's to check and raise (see [`Stream::inbound`]): the app passes on the number its
    /// sidecar gave it, so the caller's side neither reads nor writes it.
    fn outbound(&mut self) -> Flow {
        let host = &self.host;
        let authority = host.request_header(":authority");
        let config = &self.plugin.config;
        let (peer, external) = tagging::outbound_destination(
            authority.as_deref(),
            &tagging::Registry {
                external: &config.external,
                registry_only: config.registry_only,
                namespace: &config.namespace,
                service: &config.service,
            },
        );
        self.peer = Some(peer.to_owned());
        self.external = external;
        // Set, not add: whatever the app sent as x-mesh-source is replaced.
        host.set_request_header(SOURCE, &self.plugin.config.service);
        Flow::Continue
    }

    /// The callee's side names the caller (a certificate beats any header) and keeps the loop
    /// guard: a call that arrives past `max_hops` is answered 508 before it reaches the app;
    /// otherwise the app gets the hop count its own calls will carry (this call's + 1).
    fn inbound(&mut self) -> Flow {
        let host = &self.host;
        let service = self.plugin.config.service.as_str();
        let san = host.property(&["connection", "uri_san_peer_certificate"]);
        // A certificate that names the caller beats any header, so the header is read only
        // when none did (plain HTTP, or a certificate that is no Istio identity).
        let verified = san.as_deref().and_then(tagging::spiffe_identity).is_some();
        let claimed = if verified {
            None
        } else {
            host.request_header(SOURCE)
        };
        let caller = tagging::resolve_caller(san.as_deref(), claimed.as_deref());
        self.peer = Some(caller.name.to_owned());
        self.verified = caller.verified;

        let arrived = tagging::parse_hops(host.request_header(HOPS).as_deref());
        let mut buf = [0; 10];
        match tagging::inbound_hops(arrived, self.plugin.config.max_hops) {
            HopDecision::Forward(hops) => {
                host.set_request_header(SOURCE, caller.name);
                host.set_request_header(DESTINATION, service);
                host.set_request_header(
                    PEER_VERIFIED,
                    if caller.verified { "true" } else { "false" },
                );
                host.set_request_header(HOPS, tagging::format_u32(hops, &mut buf));
                Flow::Continue
            }
            HopDecision::Loop(hops) => {
                let hops = tagging::format_u32(hops, &mut buf);
                host.send_local_response(
                    508,
                    &[
                        (SERVED_BY, service),
                        (HOPS, hops),
                        ("content-type", "text/plain"),
                    ],
                    LOOP_BODY,
                );
                self.status = Some(508);
                Flow::Pause
            }
        }
    }

    fn count(&self) {
        let Some(peer) = self.peer.as_deref() else {
            return;
        };
        let host = &self.host;
        let service = self.plugin.config.service.as_str();
        let (source, destination, version) = match self.plugin.config.direction {
            // The caller does not know which version answered; the callee counts it.
            Direction::Outbound if self.external => (service, peer, tagging::EXTERNAL),
            Direction::Outbound => (service, peer, UNKNOWN_VERSION),
            Direction::Inbound => (peer, service, self.plugin.config.version.as_str()),
        };
        // No response headers seen (a reset, or a local reply that skipped this filter's
        // encoder): ask Envoy what it sent, if anything.
        let code = self.status.or_else(|| {
            host.property_i64(&["response", "code"])
                .and_then(|c| u64::try_from(c).ok())
        });
        let class = CodeClass::from_code(code);

        let Ok(mut cache) = self.plugin.metrics.try_borrow_mut() else {
            return;
        };
        let ids = cache.ids(
            source,
            destination,
            version,
            class,
            self.verified,
            |kind, name| host.define_metric(kind, name),
        );
        let Some(ids) = ids else {
            return;
        };
        host.increment(ids.requests);
        let nanos = self
            .started
            .zip(host.now_nanos())
            .map(|(start, end)| end.saturating_sub(start));
        if let Some(nanos) = nanos {
            host.record(ids.duration, nanos / 1_000_000);
        }
    }
}

#[cfg(test)]
mod tests;
