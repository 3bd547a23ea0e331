//! The Wasm floor for the benchmarks: a root context and an HTTP context that do nothing. Envoy
//! still creates a context per stream and calls every callback through the SDK's dispatcher, so
//! the cost measured with this module is what any Rust proxy-wasm filter pays before doing work.
//! It is built with the same profile and the same wasm-opt step as meshtally itself.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

// `main!` expands to the `_initialize` export, which needs `#[no_mangle]`.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(super::Root)
        });
    }}
}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Every callback keeps the SDK's default: continue, touch nothing.
struct Stream;

impl Context for Stream {}

impl HttpContext for Stream {}
