#!/usr/bin/env bash
# `make dashboard-perf`: the dashboard page's update and frame times with 30 services and 870
# edges (tests/dashboard/perf.mjs). The page comes from a real `deployer dashboard` (no mesh
# needed: the browser answers /api/graph itself); the server is stopped however this ends.
set -euo pipefail
cd "$(dirname "$0")/../.."
deployer=${DEPLOYER:-target/debug/deployer}
scratch=$(mktemp -d)
log=$scratch/dashboard.out
"$deployer" dashboard --port 0 --state-dir "$scratch/no-mesh" >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$scratch"' EXIT
for _ in $(seq 100); do grep -q http "$log" && break; sleep 0.1; done
url=$(grep -o 'http://127.0.0.1:[0-9]*/' "$log")
cd tests/dashboard
DASHBOARD_URL=$url node perf.mjs
