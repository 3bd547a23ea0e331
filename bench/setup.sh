#!/usr/bin/env bash
# Installs the benchmark's load generator: oha, from crates.io, into the project's .tools/.
# oha does closed-loop saturation runs, fixed-rate runs (-q, with coordinated-omission
# correction) and TLS with a client certificate, which is everything bench/harness needs.
# Idempotent: a second run only checks the installed version and returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
oha_version=1.16.0
have=$(.tools/bin/oha --version 2>/dev/null || true)
if [ "$have" != "oha $oha_version" ]; then
  echo "==> cargo install oha@$oha_version into .tools (a few minutes, once)"
  # --locked: the versions oha was released with, so every machine runs the same generator.
  cargo install --quiet --locked --root .tools oha --version "$oha_version"
fi
