//! Where the filter module is, by build and by install: one name written once, read by
//! `deployer` (to find it), the mesh model (its default `wasm_file`), `make install`'s layout and
//! the tests.

// The module's build-output path, written once: every constant below is made from these.
macro_rules! module_file {
    () => {
        "meshtally_filter.wasm"
    };
}
macro_rules! module_in_target {
    () => {
        concat!("wasm32-wasip1/release/", module_file!())
    };
}

/// The filter module's file name, wherever it is.
pub const MODULE_FILE: &str = module_file!();
/// The release module below a cargo target dir (what `make wasm` builds).
pub const MODULE_IN_TARGET: &str = module_in_target!();
/// The release module below the workspace root: where `render`, `push`, the tests and the
/// bench find it in a checkout.
pub const WORKSPACE_MODULE: &str = concat!("target/", module_in_target!());
/// Below an install prefix: the module `make install` copies.
pub const INSTALLED_MODULE: &str = concat!("share/meshtally/", module_file!());
