#!/usr/bin/env bash
# The cold CI rehearsal: what CI does on a brand-new machine, repeatable on a warm one. A clean
# clone of HEAD (committed work only) in a new folder, run with a fresh HOME and empty Go module
# and build caches, cargo registry and target dir, npm cache and pip cache; then `bash .ci/run`.
# Every line is stamped with the minutes since the start; the phase times and the total close
# the log.
#   scripts/ci-cold.sh [DIR]    DIR (default: a new folder under /tmp) holds the clone, the
#                               caches and cold.log. Only cold.log is kept afterwards (the rest
#                               is about 17 GB); CI_COLD_KEEP=1 keeps everything for a look.
# What it cannot empty: apt packages already installed (binaryen, prometheus, chromium,
# docker-registry, skopeo) and the rustup toolchains (RUSTUP_HOME is kept); a new machine
# installs those too (the first from apt in scripts/setup.sh, the toolchain on cargo's first use).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && git rev-parse --show-toplevel)
dir=${1:-$(mktemp -d /tmp/meshtally-cold.XXXXXX)}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ -z "$(ls -A "$dir")" ] || { echo "ci-cold: $dir is not empty" >&2; exit 2; }
# A run fills about 17 GB (the target dir, the Go build cache of Kubernetes and Istio, the
# caches); running out half-way fails it late and confusingly, so refuse at once.
need_gb=20
free_gb=$(df -Pk "$dir" | awk 'NR == 2 { print int($4 / 1048576) }')
if [ "$free_gb" -lt "$need_gb" ]; then
  rmdir "$dir" 2>/dev/null || true
  echo "ci-cold: only $free_gb GB free under $dir; a run needs about $need_gb GB (old runs: /tmp/meshtally-cold.*)" >&2
  exit 2
fi
rev=$(git -C "$root" rev-parse HEAD)
git clone --quiet --no-local "$root" "$dir/src"
git -C "$dir/src" checkout --quiet "$rev"

# The clients' own settings (not their caches) come along, as a new machine's image has them.
home=$dir/home
mkdir -p "$home/.config"
for f in .npmrc .gitconfig .config/go/env .config/pip; do
  [ -e "$HOME/$f" ] && mkdir -p "$(dirname "$home/$f")" && cp -r "$HOME/$f" "$home/$f"
done

log=$dir/cold.log
# Each line as it comes, behind the minutes since the start (a line-by-line loop: awk would
# read its input in blocks and stamp late).
stamp() {
  local line
  while IFS= read -r line; do
    printf '[%5s min] %s\n' "$(((SECONDS - begun) / 60)).$(((SECONDS - begun) % 60 / 6))" "$line"
  done
}
begun=$SECONDS
echo "ci-cold: $rev in $dir/src (log: $log)"
started=$(date +%s)
status=0
(
  cd "$dir/src"
  exec env HOME="$home" \
    RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" \
    PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}" \
    CARGO_HOME="$dir/cargo" \
    GOPATH="$dir/go" GOMODCACHE="$dir/go/pkg/mod" GOCACHE="$dir/go-build" \
    npm_config_cache="$dir/npm" PIP_CACHE_DIR="$dir/pip" \
    CI=true bash .ci/run </dev/null
) 2>&1 | stamp >"$log" || status=$?
total=$(($(date +%s) - started))
{
  echo "---- ci-cold: $([ "$status" = 0 ] && echo passed || echo "FAILED (exit $status)") in $((total / 60)) min $((total % 60)) s"
  grep -E 'CI: make setup|setup done in|control plane built in|building istioctl|^\[[ 0-9.]+ min\] +\(|phase .*: [0-9]+ s|FAILED after' "$log" | sed 's/^/  /' || true
  sed -n '/---- phases/,$p' "$log" | head -n 14
} | tee -a "$log"
if [ "${CI_COLD_KEEP:-}" != 1 ]; then
  # The Go module cache is read-only by design: make it writable to remove it.
  chmod -R u+w "$dir"
  find "$dir" -mindepth 1 -maxdepth 1 ! -name cold.log -exec rm -rf {} +
  echo "ci-cold: kept $log only (CI_COLD_KEEP=1 keeps the clone and caches)"
fi
exit "$status"
