//! meshtally-core's integration tests, one binary: the hostile inputs and every failure the
//! fuzzing found, as plain tests (also run compiled to wasm, as the filter runs), and the
//! property-based fuzzing itself.

mod regressions;
// proptest needs threads and a file system; the wasm run covers the unit and regression tests.
#[cfg(not(target_arch = "wasm32"))]
mod fuzz;
