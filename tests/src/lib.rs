//! Shared harness for the end-to-end tests: real Envoy processes, a recording upstream, a raw
//! HTTP/1.1 client and throwaway certificates, all on loopback and all stopped on drop.

pub mod echo;
pub mod load;
pub mod mesh;

pub use meshtally_testkit::{envoy, http, workspace_root};

use std::path::PathBuf;

/// z for a two-sided 99.9 % interval.
const Z999: f64 = 3.2905;

/// The interval a binomial count of `n` trials at probability `p` lies in, 99.9 % of the time
/// (normal approximation: every caller has n·p and n·(1−p) well above 10).
pub fn binomial_bounds(n: usize, p: f64) -> (f64, f64) {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    (mean - Z999 * sd, mean + Z999 * sd)
}

/// The built filter. Tests do not build it themselves (a nested cargo would fight over the build
/// lock); `make test` builds it first.
pub fn filter_wasm() -> PathBuf {
    let path = std::env::var_os("MESHTALLY_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(meshtally_envoy::locate::WORKSPACE_MODULE));
    assert!(
        path.is_file(),
        "{} is missing: build it with `make wasm` (cargo build --release --target wasm32-wasip1 -p meshtally-filter)",
        path.display()
    );
    path
}
