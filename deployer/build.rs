//! Bakes the Istio and Envoy versions that the project pins (scripts/versions.env, the one place
//! they are written) into `deployer --version`.

use std::path::Path;

fn main() {
    let pins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/versions.env");
    println!("cargo:rerun-if-changed={}", pins.display());
    let text = std::fs::read_to_string(&pins).unwrap_or_default();
    let pin = |key: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned())
    };
    println!(
        "cargo:rustc-env=MESHTALLY_LONG_VERSION={} (checked against Istio {} and Envoy {})",
        env!("CARGO_PKG_VERSION"),
        pin("ISTIO_VERSION"),
        pin("ENVOY_VERSION")
    );
}
