#!/usr/bin/env bash
# Runs every test: unit tests, tiny guests on /dev/kvm, the binary's error handling, and
# Debian's kernels booting on phyllome-vmm (nested under QEMU where KVM cannot run Linux).
# Guest assets are built once and cached under ~/.cache/phyllome.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p phyllome-vmm
cargo build -p phyllome -p phyllome-tests --bins
scripts/guest-assets.sh >/dev/null
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --lib --bins --tests --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' "$log"
exit "$status"
