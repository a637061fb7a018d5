#!/usr/bin/env bash
# Runs every test: unit tests, tiny guests on /dev/kvm, the binary's error handling, and
# Debian's kernels booting on phyllome-vmm (nested under QEMU where KVM cannot run Linux).
# Guest assets are built once and cached under ~/.cache/phyllome.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p phyllome-vmm
scripts/guest-assets.sh >/dev/null
cargo test --workspace --no-fail-fast "$@"
