#!/usr/bin/env bash
# `make bench` in one script: installs oha if missing, builds meshtally's module and the empty
# filter with the same profile and the same wasm-opt step, then runs the harness. Arguments go
# to the harness: --out BENCHMARKS.md, --quick, --variants a,b, --rounds N, --help.
set -euo pipefail
cd "$(dirname "$0")/.."
bench/setup.sh
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$PWD/$target ;; esac
built=$target/wasm32-wasip1/release
cargo build --release --target wasm32-wasip1 -p meshtally-filter
cargo build --release --target wasm32-wasip1 -p meshtally-empty-filter
cargo build --release --target wasm32-wasip1 -p meshtally-probe-filter
# The size goal compares the modules as cargo leaves them too: copies before any wasm-opt
# (cargo has just put its own output back, see scripts/wasm-opt.sh).
mkdir -p "$target/bench/plain"
for module in meshtally_filter meshtally_empty_filter; do
  cp "$built/$module.wasm" "$target/bench/plain/$module.wasm"
done
export MESHTALLY_PLAIN_WASM=${MESHTALLY_PLAIN_WASM:-$target/bench/plain/meshtally_filter.wasm}
export MESHTALLY_EMPTY_PLAIN_WASM=${MESHTALLY_EMPTY_PLAIN_WASM:-$target/bench/plain/meshtally_empty_filter.wasm}
# For the render and local-mesh figures.
cargo build --release -p meshtally-deployer -p demo-service
scripts/wasm-opt.sh "$built/meshtally_filter.wasm"
# The variants load private copies, so nothing a concurrent build does to target/ can swap a
# module under a running benchmark.
mkdir -p "$target/bench"
for module in meshtally_filter meshtally_empty_filter meshtally_probe_filter; do
  cp "$built/$module.wasm" "$target/bench/$module.wasm"
  scripts/wasm-opt.sh "$target/bench/$module.wasm"
done
export MESHTALLY_WASM=${MESHTALLY_WASM:-$target/bench/meshtally_filter.wasm}
export MESHTALLY_EMPTY_WASM=${MESHTALLY_EMPTY_WASM:-$target/bench/meshtally_empty_filter.wasm}
export MESHTALLY_PROBE_WASM=${MESHTALLY_PROBE_WASM:-$target/bench/meshtally_probe_filter.wasm}
exec cargo run --quiet -p meshtally-bench -- "$@"
