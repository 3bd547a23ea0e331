#!/usr/bin/env bash
# Istio's own code, at the release scripts/versions.env pins, for `make istio-check`: istioctl
# built from the Go module proxy through tests/istio/go.mod (so istioctl and the Go tests share
# one module graph), the demo profile's install manifest (the injector template, its values and
# the mesh config that `kube-inject` needs), and every module the Go tests compile against.
# Cached under .tools/istio-$ISTIO_VERSION; a second run only checks, in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/versions.env

step() { printf '==> %s\n' "$*"; }
took() { printf '    (%ss)\n' "$((SECONDS - $1))"; }

dir=.tools/istio-$ISTIO_VERSION
istioctl=$dir/bin/istioctl
demo=$dir/demo-profile.yaml

# The Go module and the pin must agree, or the tests would judge with a different Istio.
if ! grep -Eq "^\s*istio.io/istio $ISTIO_PSEUDO_VERSION( |$)" tests/istio/go.mod; then
  echo "tests/istio/go.mod does not require istio.io/istio $ISTIO_PSEUDO_VERSION (scripts/versions.env): update it with" >&2
  echo "  cd tests/istio && go get istio.io/istio@$ISTIO_PSEUDO_VERSION && go mod tidy" >&2
  exit 1
fi

# The version stamped into istioctl is also what `manifest generate` writes as the proxy's image
# tag, so it must be the release's, not "unknown".
pkg=istio.io/istio/pkg/version
ldflags="-X $pkg.buildVersion=$ISTIO_VERSION -X $pkg.buildTag=$ISTIO_VERSION -X $pkg.buildHub=docker.io/istio"
ldflags+=" -X $pkg.buildGitRevision=${ISTIO_PSEUDO_VERSION##*-} -X $pkg.buildStatus=Clean"
if ! [ -x "$istioctl" ] || [ "$("$istioctl" version --remote=false --short 2>/dev/null)" != "client version: $ISTIO_VERSION" ]; then
  step "building istioctl $ISTIO_VERSION (istio.io/istio@$ISTIO_PSEUDO_VERSION) into $dir/bin (once; 5-15 min cold)"
  start=$SECONDS
  mkdir -p "$dir/bin"
  (cd tests/istio && go build -ldflags "$ldflags" -o "../../$istioctl.tmp" istio.io/istio/istioctl/cmd/istioctl)
  mv "$istioctl.tmp" "$istioctl"
  took "$start"
fi

if ! [ -s "$demo" ]; then
  step "istioctl manifest generate --set profile=demo > $demo"
  start=$SECONDS
  "$istioctl" manifest generate --set profile=demo >"$demo.tmp"
  mv "$demo.tmp" "$demo"
  took "$start"
fi

# Every module the Go tests import, so `make istio-check` works offline from here on.
stamp=$dir/modules.sum
if ! cmp -s tests/istio/go.sum "$stamp"; then
  step "go test -run NONE (tests/istio: fetches and compiles Istio's test oracle)"
  start=$SECONDS
  # Not `go mod download`: with an empty module cache the proxy refuses the .info of Istio's
  # pseudo-version (403), which that command asks for; compiling the tests fetches only what
  # they import (.mod and .zip, which it serves).
  (cd tests/istio && go test -count=1 -run NONE ./... >/dev/null)
  cp tests/istio/go.sum "$stamp"
  took "$start"
fi
