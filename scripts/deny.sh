#!/usr/bin/env bash
# `make deny`: cargo-deny over the whole workspace with deny.toml. Licenses, bans (one version of
# each crate, no nix, no second TLS provider) and sources always; advisories only when RustSec's
# database can be fetched (it lives on GitHub, which some machines cannot reach), and the run
# says which it did.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/versions.env
deny=.tools/cargo-deny-$CARGO_DENY_VERSION/bin/cargo-deny
if ! [ -x "$deny" ]; then
  echo "cargo-deny $CARGO_DENY_VERSION is not installed: run \`make setup\`" >&2
  exit 1
fi
"$deny" --log-level error check bans licenses sources
echo "cargo-deny: bans, licenses and sources ok"
if timeout 60 "$deny" --log-level error fetch db >/dev/null 2>&1; then
  "$deny" --log-level error check --disable-fetch advisories
  echo "cargo-deny: advisories ok"
else
  echo "cargo-deny: advisories not checked (RustSec's advisory database could not be fetched)"
fi
