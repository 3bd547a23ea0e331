#!/usr/bin/env bash
# The loopback Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok (which plays one node, so pods are scheduled and become Ready without
# a kubelet), every one bound to 127.0.0.1 on ports the OS hands out. `make cluster-up` and the
# deployer tests use it; users try `deployer apply` against it without a cluster of their own.
#
#   scripts/cluster.sh up [DIR] [--no-istio-crds]   start (DIR defaults to .cluster); prints the export line
#   scripts/cluster.sh down [DIR]                   stop everything DIR's cluster runs; no process is left
#   scripts/cluster.sh restart COMPONENT [DIR]      start one component again with the arguments it
#                                                   first had (the fault tests SIGKILL kube-apiserver)
#
# DIR holds the state: pki/, etcd/, logs/, pids/ and kubeconfig. The Istio CRDs installed are
# the pinned release's own (manifests/charts/base/files/crd-all.gen.yaml of istio.io/istio), beside
# the Gateway API's (experimental channel) at GATEWAY_API_VERSION; --no-istio-crds leaves out both.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
. scripts/versions.env

# Everything a start or stop may take; a slow, shared machine needs the room.
wait_secs=${CLUSTER_WAIT_SECS:-120}
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

usage() {
  echo "usage: scripts/cluster.sh up [DIR] [--no-istio-crds] | down [DIR] | restart COMPONENT [DIR]" >&2
  exit 2
}

die() {
  echo "cluster: $*" >&2
  exit 1
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Stops DIR's components, newest first: SIGTERM, then SIGKILL after 15 s.
down() {
  local dir=$1 pidfile pid i
  [ -d "$dir/pids" ] || return 0
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do
    pidfile=$dir/pids/${components[i]}.pid
    alive "$pidfile" || { rm -f "$pidfile"; continue; }
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
    rm -f "$pidfile"
  done
}

# Free loopback ports, from the OS.
free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# start NAME ARGS…: runs bin/NAME in its own session (so a terminal's signals do not reach it),
# logging to logs/NAME.log; its arguments are kept in cmd/NAME for `restart`.
start() {
  local name=$1
  shift
  mkdir -p "$dir/cmd"
  printf '%s\0' "$@" >"$dir/cmd/$name"
  setsid "$bin/$name" "$@" </dev/null >>"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/pids/$name.pid"
}

# One component again, with the arguments it started with; for kube-apiserver, until it is ready.
restart() {
  local name=$1 pid args=()
  dir=$(cd "$dir" && pwd)
  [ -f "$dir/cmd/$name" ] || die "no $name was started in $dir"
  if alive "$dir/pids/$name.pid"; then
    pid=$(cat "$dir/pids/$name.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  mapfile -d '' args <"$dir/cmd/$name"
  bin=$root/.tools/kube-$KUBERNETES_VERSION/bin
  start "$name" "${args[@]}"
  if [ "$name" = kube-apiserver ]; then
    until_ok "$wait_secs" kube-apiserver "$dir/logs/kube-apiserver.log" \
      "$bin/kubectl" --kubeconfig="$dir/kubeconfig" get --raw=/readyz
  fi
  echo "cluster: $name restarted in $dir" >&2
}

# until SECONDS WHAT COMMAND…: retries COMMAND until it succeeds; on timeout, says what did not
# come up and shows the end of its log.
until_ok() {
  local secs=$1 what=$2 log=$3
  shift 3
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "cluster: $what did not come up within ${secs}s; the end of $log:" >&2
      tail -n 15 "$log" >&2 || true
      exit 1
    fi
    sleep 0.3
  done
}

up() {
  local istio_crds=$1 started=$SECONDS
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if alive "$dir/pids/kube-apiserver.pid"; then
    echo "cluster: already running in $dir" >&2
    echo "export KUBECONFIG=$dir/kubeconfig"
    return 0
  fi
  down "$dir" # whatever a crashed run left
  # A start that fails (or is interrupted) at any step stops what it started: only the last
  # line of up() clears this trap.
  trap 'status=$?; trap - EXIT; echo "cluster: start failed; stopping what it started in $dir" >&2; down "$dir"; exit "$status"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  scripts/controlplane-build.sh >&2
  # Found before anything starts, so a missing module fails fast.
  local crds= gateway_crds=()
  [ "$istio_crds" = no ] || crds=$(istio_crds)
  [ "$istio_crds" = no ] || mapfile -t gateway_crds < <(gateway_api_crds)
  bin=$root/.tools/kube-$KUBERNETES_VERSION/bin
  kubectl=$bin/kubectl
  rm -rf "$dir/etcd" "$dir/logs" "$dir/cmd" "$dir/kubeconfig"
  mkdir -p "$dir/logs" "$dir/pids"
  "$bin/pki" "$dir/pki"
  local pki=$dir/pki kubeconfig=$dir/kubeconfig
  read -r etcd_port peer_port api_port <<<"$(free_ports 3)"

  start etcd --name=loopback --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="loopback=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync --log-level=warn
  start kube-apiserver --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --endpoint-reconciler-type=none \
    --allow-privileged=true --profiling=false

  # The kubeconfig every component and the user share: the admin (system:masters) certificate.
  "$kubectl" --kubeconfig="$kubeconfig" config set-cluster loopback --server="https://127.0.0.1:$api_port" \
    --certificate-authority="$pki/ca.crt" --embed-certs >/dev/null
  "$kubectl" --kubeconfig="$kubeconfig" config set-credentials loopback-admin \
    --client-certificate="$pki/admin.crt" --client-key="$pki/admin.key" --embed-certs >/dev/null
  "$kubectl" --kubeconfig="$kubeconfig" config set-context loopback --cluster=loopback --user=loopback-admin >/dev/null
  "$kubectl" --kubeconfig="$kubeconfig" config use-context loopback >/dev/null
  until_ok "$wait_secs" kube-apiserver "$dir/logs/kube-apiserver.log" \
    "$kubectl" --kubeconfig="$kubeconfig" get --raw=/readyz

  local auth=(--kubeconfig="$kubeconfig" --authentication-kubeconfig="$kubeconfig"
    --authorization-kubeconfig="$kubeconfig" --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false)
  start kube-controller-manager "${auth[@]}" --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" --use-service-account-credentials=false
  start kube-scheduler "${auth[@]}"
  # No --server-address and --node-port=0: kwok serves nothing (its kubelet API is not needed).
  start kwok --kubeconfig="$kubeconfig" --manage-all-nodes=true --node-port=0 \
    --config="$root/.tools/kube-$KUBERNETES_VERSION/kwok-stages.yaml"

  # The one node kwok plays: no taint, so every pod lands on it.
  "$kubectl" --kubeconfig="$kubeconfig" apply --server-side --field-manager=cluster-up -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "1000"}
  capacity: {cpu: "32", memory: 256Gi, pods: "1000"}
EOF
  until_ok "$wait_secs" "the kwok node" "$dir/logs/kwok.log" \
    "$kubectl" --kubeconfig="$kubeconfig" wait --for=condition=Ready node/kwok-node-0 --timeout=2s
  # Pods need the namespace's default ServiceAccount, which the controller manager creates.
  until_ok "$wait_secs" kube-controller-manager "$dir/logs/kube-controller-manager.log" \
    "$kubectl" --kubeconfig="$kubeconfig" get serviceaccount default -n default

  if [ -n "$crds" ]; then
    "$kubectl" --kubeconfig="$kubeconfig" apply --server-side --field-manager=cluster-up -f "$crds" >/dev/null
    local f
    for f in "${gateway_crds[@]}"; do
      "$kubectl" --kubeconfig="$kubeconfig" apply --server-side --field-manager=cluster-up -f "$f" >/dev/null
    done
    # Retried: a CRD created a moment ago has no status.conditions yet, and `kubectl wait`
    # fails on that instead of waiting.
    until_ok "$wait_secs" "the Istio and Gateway API CRDs" "$dir/logs/kube-apiserver.log" \
      "$kubectl" --kubeconfig="$kubeconfig" wait --for=condition=Established crd --all --timeout=5s
  fi
  echo "cluster: up in $((SECONDS - started))s: kube-apiserver https://127.0.0.1:$api_port (Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION$([ "$istio_crds" = yes ] && echo ", Istio $ISTIO_VERSION and Gateway API $GATEWAY_API_VERSION (experimental) CRDs")), state in $dir" >&2
  trap - EXIT INT TERM
  echo "export KUBECONFIG=$kubeconfig"
}

# The pinned Istio release's CRDs, read from where the Go module cache extracts the module.
# Never `go mod download` or `go list -m`: both ask the proxy for the pseudo-version's .info,
# which it refuses (403) on a machine whose cache never held it. When the module is not extracted
# yet, listing tests/istio's packages fetches what they import (.mod and .zip only, as
# scripts/setup-istio.sh does).
istio_crds() {
  local mod crds
  mod=$(go env GOMODCACHE)/istio.io/istio@$ISTIO_PSEUDO_VERSION
  crds=$mod/manifests/charts/base/files/crd-all.gen.yaml
  if ! [ -f "$crds" ]; then
    echo "cluster: fetching istio.io/istio@$ISTIO_PSEUDO_VERSION (Istio $ISTIO_VERSION) for its CRDs" >&2
    (cd tests/istio && go list -deps ./... >/dev/null) || true
  fi
  [ -f "$crds" ] || die "cannot find Istio $ISTIO_VERSION's CRDs in $mod (run scripts/setup-istio.sh, or make setup)"
  echo "$crds"
}

# The pinned Gateway API release's CRDs, experimental channel (a superset of standard: HTTPRoute
# `retry` is only there), from the Go module sigs.k8s.io/gateway-api that tests/istio/go.mod
# requires at the same version; a tagged version, so the module proxy serves it to `go mod
# download` on a machine whose cache lacks it.
gateway_api_crds() {
  local mod
  mod=$(go env GOMODCACHE)/sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION
  if ! [ -d "$mod/config/crd/experimental" ]; then
    echo "cluster: fetching sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION for its CRDs" >&2
    (cd tests/istio && go mod download sigs.k8s.io/gateway-api) || true
  fi
  [ -d "$mod/config/crd/experimental" ] || die "cannot find the Gateway API $GATEWAY_API_VERSION CRDs in $mod"
  ls "$mod"/config/crd/experimental/gateway.networking.k8s.io_*.yaml | grep -v _vap_
}

command=${1:-}
[ $# -gt 0 ] && shift
component=
if [ "$command" = restart ]; then
  [ $# -gt 0 ] || usage
  component=$1
  shift
fi
dir=.cluster
istio=yes
for arg in "$@"; do
  case "$arg" in
  --no-istio-crds) istio=no ;;
  -*) usage ;;
  *) dir=$arg ;;
  esac
done
case "$command" in
up) up "$istio" ;;
down)
  down "$dir"
  echo "cluster: stopped ($dir)" >&2
  ;;
restart) restart "$component" ;;
*) usage ;;
esac
