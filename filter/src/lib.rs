//! proxy-wasm entry point: the root context parses the plugin config once and owns the metric
//! id cache; every HTTP stream gets a small context from `http.rs`. All decisions live in
//! `meshtally-core` (written against its `Host` trait); this crate is Envoy's side of that trait.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod host;
mod http;

use std::rc::Rc;

use meshtally_core::{Plugin, Stream};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use crate::host::Envoy;

// `main!` expands to the `_initialize` export, which needs `#[no_mangle]`.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(super::Root::default())
        });
    }}
}

#[derive(Default)]
struct Root {
    plugin: Option<Rc<Plugin>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        match Plugin::configure(&Envoy) {
            Ok(plugin) => {
                let config = &plugin.config;
                host::log(
                    LogLevel::Info,
                    &format!(
                        "meshtally: configured service={} direction={} max_hops={}",
                        config.service,
                        config.direction.as_str(),
                        config.max_hops
                    ),
                );
                self.plugin = Some(Rc::new(plugin));
                true
            }
            Err(err) => {
                host::log(
                    LogLevel::Error,
                    &format!("meshtally: rejecting config: {err}"),
                );
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let plugin = self.plugin.clone()?;
        Some(Box::new(http::Http(Stream::new(plugin, Envoy))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
