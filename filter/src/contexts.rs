//! The proxy's contexts, by id: one root context per plugin (a sidecar's outbound and inbound
//! plugins share this VM, each with its own root and config) and one stream per HTTP request.
//! Envoy's callbacks arrive here from `abi.rs` and are passed to meshtally-core's [`Stream`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use meshtally_core::{Flow, Plugin, Stream};

use crate::abi;
use crate::host::Envoy;

/// Context ids are the host's own counter, unique within the VM: they need no seeded hash (and
/// none of the code that seeds one).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u32(&mut self, n: u32) {
        // Fibonacci hashing spreads consecutive ids over the table's top bits, which
        // hashbrown's control bytes read.
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Ids<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct Contexts {
    /// Root contexts; `None` until `on_configure` accepted the plugin's config.
    roots: Ids<Option<Rc<Plugin>>>,
    streams: Ids<Stream<Envoy>>,
}

thread_local! {
    // A Wasm VM is single-threaded: each Envoy worker has its own VM, so its own table.
    static CONTEXTS: RefCell<Contexts> = RefCell::new(Contexts::default());
}

/// Runs `f` on the table. Host calls made inside never call back into the module except to
/// allocate (Envoy defers a local reply until the callback returns), so the borrow cannot clash.
fn with<R>(f: impl FnOnce(&mut Contexts) -> R) -> Option<R> {
    CONTEXTS.with(|c| c.try_borrow_mut().ok().map(|mut c| f(&mut c)))
}

pub(crate) fn create(context_id: u32, root_context_id: u32) {
    let _ = with(|c| {
        if root_context_id == 0 {
            c.roots.insert(context_id, None);
            return;
        }
        // A stream of a plugin whose config was refused gets no context: its callbacks pass
        // the request on untouched (Envoy's fail-open or fail-closed decides the rest).
        if let Some(Some(plugin)) = c.roots.get(&root_context_id) {
            let stream = Stream::new(Rc::clone(plugin), Envoy);
            c.streams.insert(context_id, stream);
        }
    });
}

pub(crate) fn configure(root_context_id: u32) -> bool {
    match Plugin::configure(&Envoy) {
        Ok(plugin) => {
            let config = &plugin.config;
            abi::log(
                abi::LOG_INFO,
                &format!(
                    "meshtally: configured service={} direction={} max_hops={}",
                    config.service,
                    config.direction.as_str(),
                    config.max_hops
                ),
            );
            let plugin = Rc::new(plugin);
            with(|c| c.roots.insert(root_context_id, Some(plugin))).is_some()
        }
        Err(err) => {
            abi::log(
                abi::LOG_ERROR,
                &format!("meshtally: rejecting config: {err}"),
            );
            false
        }
    }
}

fn action(flow: Option<Flow>) -> u32 {
    match flow {
        Some(Flow::Pause) => 1,
        Some(Flow::Continue) | None => 0,
    }
}

pub(crate) fn request_headers(context_id: u32) -> u32 {
    action(
        with(|c| {
            c.streams
                .get_mut(&context_id)
                .map(Stream::on_request_headers)
        })
        .flatten(),
    )
}

pub(crate) fn response_headers(context_id: u32) -> u32 {
    action(
        with(|c| {
            c.streams
                .get_mut(&context_id)
                .map(Stream::on_response_headers)
        })
        .flatten(),
    )
}

pub(crate) fn log(context_id: u32) {
    let _ = with(|c| c.streams.get_mut(&context_id).map(Stream::on_log));
}

pub(crate) fn delete(context_id: u32) {
    let _ = with(|c| {
        if c.streams.remove(&context_id).is_none() {
            c.roots.remove(&context_id);
        }
    });
}
