#!/usr/bin/env bash
# Runs binaryen's size optimiser over the built module, in place. Skipped (with a note) when the
# module is already optimised or wasm-opt is missing, so a plain `cargo build` stays usable.
set -euo pipefail
wasm=$1
if ! command -v wasm-opt >/dev/null; then
  echo "note: wasm-opt not found (make setup installs binaryen); module left as cargo built it" >&2
  exit 0
fi
stamp=$wasm.opt-stamp
if [ -f "$stamp" ] && [ "$stamp" -nt "$wasm" ]; then exit 0; fi
before=$(stat -c %s "$wasm")
wasm-opt -Oz --strip-debug --strip-producers \
  --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int \
  "$wasm" -o "$wasm.tmp"
mv "$wasm.tmp" "$wasm"
touch "$stamp"
echo "wasm-opt: $before -> $(stat -c %s "$wasm") bytes"
