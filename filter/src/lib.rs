//! proxy-wasm entry point: the root context parses the plugin config once and owns the metric
//! id cache; every HTTP stream gets a small context from `http.rs`. All decisions live in
//! `meshtally-core`; this crate only moves bytes between Envoy and that logic.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod host;
mod http;

use std::cell::RefCell;
use std::rc::Rc;

use meshtally_core::{Config, Direction, MetricCache, NodeMetadata};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

// `main!` expands to the `_initialize` export, which needs `#[no_mangle]`.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(super::Root::default())
        });
    }}
}

/// What every stream of a root context shares: the config and the metric ids.
///
/// Envoy shares one root context between listeners whose plugin config is identical — an Istio
/// sidecar's inbound and outbound listeners both get the WasmPlugin's one `pluginConfig` — so
/// nothing here may assume a single listener: the direction is a per-stream fact.
pub(crate) struct Plugin {
    pub config: Config,
    inbound: RefCell<MetricCache>,
    outbound: RefCell<MetricCache>,
}

impl Plugin {
    /// The stream's direction: configured, or the listener's (`listener_direction`).
    pub fn direction(&self) -> Option<Direction> {
        self.config
            .direction
            .or_else(|| host::listener_direction().and_then(Direction::from_listener_direction))
    }

    pub fn metrics(&self, direction: Direction) -> &RefCell<MetricCache> {
        match direction {
            Direction::Inbound => &self.inbound,
            Direction::Outbound => &self.outbound,
        }
    }
}

#[derive(Default)]
struct Root {
    plugin: Option<Rc<Plugin>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = host::plugin_configuration();
        let node = NodeMetadata {
            workload_name: host::node_metadata(&["WORKLOAD_NAME"]),
            app_label: host::node_metadata(&["LABELS", "app"]),
        };
        match Config::parse(&raw, &node) {
            Ok(config) => {
                log::info!(
                    "meshtally: configured service={} direction={} max_hops={}",
                    config.service,
                    config
                        .direction
                        .map_or("listener_direction", Direction::as_str),
                    config.max_hops
                );
                self.plugin = Some(Rc::new(Plugin {
                    config,
                    inbound: RefCell::new(MetricCache::new(Direction::Inbound)),
                    outbound: RefCell::new(MetricCache::new(Direction::Outbound)),
                }));
                true
            }
            Err(err) => {
                log::error!("meshtally: rejecting config: {err}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let plugin = self.plugin.clone()?;
        Some(Box::new(http::Stream::new(plugin)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
