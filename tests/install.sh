#!/usr/bin/env bash
# The install path as a user meets it: `make install` into a throwaway prefix, then the installed
# `deployer` from a folder outside the checkout, with a minimal PATH and an empty HOME:
# --version, up --detach, verify, curl, down; a missing piece is named in one line; nothing is
# written outside the state dir. Prints "N passed, M failed"; exits non-zero on any failure.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
prefix=$tmp/prefix work=$tmp/work home=$tmp/home scratch=$tmp/tmpdir
mkdir -p "$work" "$home" "$scratch"
passed=0 failed=0

deployer() {
  (cd "$work" && env -i HOME="$home" TMPDIR="$scratch" PATH="$prefix/bin:/usr/bin:/bin" deployer "$@")
}
cleanup() {
  deployer down --state-dir state >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
check() {
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"
  else failed=$((failed + 1)); echo "FAIL $name"; fi
}

make -C "$root" --no-print-directory install PREFIX="$prefix" PROFILE="${PROFILE:-debug}" >"$tmp/install.log" 2>&1 \
  || { cat "$tmp/install.log"; echo "0 passed, 1 failed"; exit 1; }
pins() { grep "^$1=" "$root/scripts/versions.env" | cut -d= -f2; }
version=$(deployer --version)
check "--version names Istio $(pins ISTIO_VERSION) and Envoy $(pins ENVOY_VERSION): $version" \
  grep -q "Istio $(pins ISTIO_VERSION) and Envoy $(pins ENVOY_VERSION)" <<<"$version"

# A missing piece says in one line how to get it (the installed Envoy moved away).
mv "$prefix/lib/meshtally/envoy" "$tmp/envoy"
err=$(deployer up --detach --state-dir state --base-port 28960 --gateway-port 28969 2>&1 >/dev/null)
check "without Envoy, one line says how to get it: $err" \
  bash -c '[ "$(wc -l <<<"$1")" = 1 ] && grep -q "make install" <<<"$1" && grep -q ENVOY_BIN <<<"$1"' _ "$err"
mv "$tmp/envoy" "$prefix/lib/meshtally/envoy"

touch "$tmp/before"
sleep 1 # mtime granularity: anything written from here on is newer than the marker


out=$(deployer up --detach --services 3 --state-dir state --base-port 28960 --gateway-port 28969 2>&1)
check "up --detach from $work (found Envoy, module and demo-service installed)" test $? = 0
[ -f "$work/state/supervisor.pid" ] || echo "$out"
check "verify passes" deployer verify --state-dir state
headers=$(curl -s localhost:28969/service-c/call/service-a)
check "curl through the gateway shows the x-mesh headers" \
  bash -c 'grep -q "\"x-mesh-source\":\"service-c\"" <<<"$1" && grep -q "\"x-mesh-peer-verified\":\"true\"" <<<"$1"' _ "$headers"
# Every hint up printed, exactly as printed, with the install prefix on PATH: the `try:` lines
# now, the background line's `down` at the end.
mapfile -t hints < <(sed -n '/^try:$/,/^$/p' <<<"$out" | sed '1d;/^$/d;s/^  //')
stop=$(sed -n 's/^Running in the background; `\(.*\)` stops it\.$/\1/p' <<<"$out")
check "up printed three try: hints and a down line (${#hints[@]}: ${hints[*]}; $stop)" \
  test "${#hints[@]}" = 3 -a -n "$stop"
for hint in "${hints[@]}"; do
  check "the printed hint runs as printed: $hint" \
    bash -c 'cd "$1" && env -i HOME="$2" TMPDIR="$3" PATH="$4/bin:/usr/bin:/bin" sh -c "$5" >/dev/null 2>&1' \
    _ "$work" "$home" "$scratch" "$prefix" "$hint"
done
# shift's hints on a mesh without a mesh file (a new version needs new processes): they name
# the installed example and run as printed; then the same shift works.
shift_err=$(deployer shift service-a v1=50,v2=50 --state-dir state 2>&1)
mapfile -t restart < <(grep -o '`[^`]*`' <<<"$shift_err" | tr -d '`' | tail -n 2)
check "shift names the installed example in its hints: $shift_err" \
  bash -c 'grep -q "share/meshtally/examples/canary.yaml" <<<"$1" && [ "$2" = 2 ]' _ "$shift_err" "${#restart[@]}"
for hint in "${restart[@]}"; do
  check "shift's hint runs as printed: $hint" \
    bash -c 'cd "$1" && env -i HOME="$2" TMPDIR="$3" PATH="$4/bin:/usr/bin:/bin" sh -c "$5" >/dev/null 2>&1' \
    _ "$work" "$home" "$scratch" "$prefix" "$hint"
done
check "then the shift works" deployer shift service-a v1=50,v2=50 --state-dir state
check "up's printed down line runs as printed: $stop" \
  bash -c 'cd "$1" && env -i HOME="$2" TMPDIR="$3" PATH="$4/bin:/usr/bin:/bin" sh -c "$5" >/dev/null 2>&1' \
  _ "$work" "$home" "$scratch" "$prefix" "$stop"
check "down stops it" deployer down --state-dir state
left=$(pgrep -f "$work/state" || true)
check "no process left" test -z "$left"
written=$(find "$work" "$home" "$scratch" "$prefix" -mindepth 1 -newer "$tmp/before" \
  ! -path "$work/state" ! -path "$work/state/*" -print)
check "nothing written outside the state dir${written:+: $written}" test -z "$written"

echo "install: $passed passed, $failed failed"
[ "$failed" = 0 ]
