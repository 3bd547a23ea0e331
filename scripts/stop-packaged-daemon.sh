#!/usr/bin/env bash
# Stops, and keeps from starting at boot, the system daemon a Debian package starts when it is
# installed (prometheus on :9090, docker-registry on :5000, both on every interface). The tests
# run their own on loopback; a packaged one would listen beyond it and hold their ports. Works
# with systemd, and without it, where the package's postinst started /etc/init.d/NAME through
# invoke-rc.d. Absent units and scripts are fine: a second run does nothing.
# Usage: scripts/stop-packaged-daemon.sh NAME
set -euo pipefail

name=${1:?usage: stop-packaged-daemon.sh NAME}
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now "$name.service" >/dev/null 2>&1 || true
fi
if [ -x "/etc/init.d/$name" ]; then
    # invoke-rc.d honours the machine's policy-rc.d as the postinst did; the script itself is
    # the fallback where invoke-rc.d is missing.
    if command -v invoke-rc.d >/dev/null 2>&1; then
        $sudo invoke-rc.d "$name" stop >/dev/null 2>&1 || $sudo "/etc/init.d/$name" stop >/dev/null 2>&1 || true
    else
        $sudo "/etc/init.d/$name" stop >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null 2>&1; then
        $sudo update-rc.d "$name" disable >/dev/null 2>&1 || true
    fi
fi
