#!/usr/bin/env bash
# Installs the benchmark's load generator (oha, from crates.io, into the project's .tools/) and
# valgrind for the instruction counts.
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
# valgrind's callgrind counts the proxy's instructions per request: the figure that does not
# move with the machine's load (Debian package; taskset comes with util-linux).
if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
  echo "==> apt-get install valgrind"
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  $sudo apt-get install -y -q valgrind >/dev/null 2>&1 || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q valgrind >/dev/null; }
fi
