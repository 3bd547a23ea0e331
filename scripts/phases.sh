#!/usr/bin/env bash
# Runs make targets one after another and times each, so every run of `make test` (and CI's log)
# says where the time went: one line per phase as it ends, then a table, slowest first.
#   scripts/phases.sh TARGET…
# Stops at the first failing target, naming it, with the times so far.
set -uo pipefail
cd "$(dirname "$0")/.."
begun=$SECONDS
declare -a names=() secs=()

summary() {
  local total=$((SECONDS - begun)) i
  echo "---- phases (slowest first), total $((total / 60)) min $((total % 60)) s"
  for i in "${!names[@]}"; do printf '%6d s  %s\n' "${secs[i]}" "${names[i]}"; done | sort -rn
}

for target in "$@"; do
  started=$SECONDS
  echo "==== phase $target"
  make --no-print-directory "$target"
  status=$?
  names+=("$target") secs+=($((SECONDS - started)))
  if [ "$status" != 0 ]; then
    echo "==== phase $target FAILED after $((SECONDS - started)) s"
    summary
    exit "$status"
  fi
  echo "==== phase $target: $((SECONDS - started)) s"
done
summary
