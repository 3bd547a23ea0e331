#!/usr/bin/env bash
# Installs what deployer's registry test (deployer/tests/push_registry.rs) needs on a fresh
# machine: a real OCI registry (Debian's `docker-registry`, the CNCF distribution server) and
# an independent client to read pushed images back (`skopeo`). Idempotent: a second run finds
# both and does nothing. Debian and Ubuntu (apt); elsewhere it names what to install.
set -euo pipefail

need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
if [ ${#need[@]} -eq 0 ]; then
    echo "registry test tools present: $(command -v docker-registry) $(command -v skopeo)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-registry.sh: install ${need[*]} (the distribution registry and skopeo) with your package manager" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

echo "installing ${need[*]} (apt)…"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"

# The package also starts a system registry on :5000 of every interface (by systemd, or by
# /etc/init.d where no systemd runs). The test runs its own on loopback, so a registry installed
# just now for it is stopped and kept from starting.
case " ${need[*]} " in
*" docker-registry "*)
    "$(dirname "$0")/../../scripts/stop-packaged-daemon.sh" docker-registry
    ;;
esac
echo "registry test tools installed: $(command -v docker-registry) $(command -v skopeo)"
