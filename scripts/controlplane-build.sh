#!/usr/bin/env bash
# Builds the loopback Kubernetes control plane from the Go module proxy: kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, etcd and kwok at the versions pinned in
# scripts/versions.env, and scripts/controlplane/pki (its certificates). One `go build` compiles
# them all, so client-go, apimachinery and the rest are compiled once. Cached under
# .tools/kube-<version>/ (a stamp names every pin); a second run only checks the stamp.
# .tools/bin/kubectl is the project's kubectl.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
. scripts/versions.env

dest=$root/.tools/kube-$KUBERNETES_VERSION
stamp="kubernetes=$KUBERNETES_VERSION etcd=$ETCD_VERSION kwok=$KWOK_VERSION +pki +stages"
bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok pki)

link_kubectl() {
  mkdir -p "$root/.tools/bin"
  ln -sfn "../kube-$KUBERNETES_VERSION/bin/kubectl" "$root/.tools/bin/kubectl"
}

if [ "$(cat "$dest/stamp" 2>/dev/null)" = "$stamp" ]; then
  link_kubectl
  exit 0
fi

started=$(date +%s)
echo "==> building the control plane ($stamp) into .tools/kube-$KUBERNETES_VERSION (about 15 CPU-minutes, once)"

# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging
# paths, which a dependent module cannot see. The wrapper replaces each with its published
# release, k8s.io/X v0.<minor>.<patch>, read from the very go.mod of the pinned release.
staging_version=v0.${KUBERNETES_VERSION#v1.}
kube_mod=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[ -f "$kube_mod" ] || { echo "controlplane-build: cannot read go.mod of k8s.io/kubernetes@$KUBERNETES_VERSION" >&2; exit 1; }
staging=$(awk '/=> \.\/staging\// {print $1}' "$kube_mod")

src=$dest/src
rm -rf "$src"
mkdir -p "$src/cmd" "$dest/bin"
cp -r scripts/controlplane/etcd scripts/controlplane/pki "$src/cmd/"
{
  echo "module meshtally.local/controlplane"
  echo
  echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
  echo
  echo "require ("
  echo "	k8s.io/kubernetes $KUBERNETES_VERSION"
  echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  echo "	sigs.k8s.io/kwok $KWOK_VERSION"
  echo ")"
  echo
  echo "replace ("
  for m in $staging; do echo "	$m => $m $staging_version"; done
  echo ")"
} >"$src/go.mod"

# The version the binaries report (kubectl version, /version): what hack/lib/version.sh sets.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitTreeState=clean"
  ldflags+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(cut -d. -f2 <<<"$KUBERNETES_VERSION")"
done
ldflags+=" -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"

(
  cd "$src"
  # -mod=mod: go resolves and checks (via the proxy's checksum database) what the wrapper needs.
  GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$dest/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl \
    ./cmd/etcd \
    ./cmd/pki \
    sigs.k8s.io/kwok/cmd/kwok
  # kwok's own "fast" stages: nodes initialise and keep their lease, pods become Ready at once
  # and go when deleted. kwokctl composes the same set; kwok alone starts with none.
  kwok_dir=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    echo "---"
    cat "$kwok_dir/kustomize/stage/$f.yaml"
  done >"$dest/kwok-stages.yaml"
)
for b in "${bins[@]}"; do [ -x "$dest/bin/$b" ] || { echo "controlplane-build: $b was not built" >&2; exit 1; }; done
echo "$stamp" >"$dest/stamp"
link_kubectl
echo "==> control plane built in $(($(date +%s) - started))s: $("$dest/bin/kubectl" version --client 2>/dev/null | head -n1)"
