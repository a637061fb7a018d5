#!/usr/bin/env bash
# Sets up everything on a fresh Debian 12 machine and boots the demo VM: Debian's kernel
# with a busybox shell on the serial console, in this terminal, and (on a desktop with
# hardware virtualization) on its display, in Phyllome's window. On a computer without
# hardware virtualization (vmx/svm), the demo runs nested inside QEMU's emulator: slower,
# but it works anywhere. Type `poweroff -f` in the guest to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "Rust is needed: install it from your distribution or rustup, then run this again." >&2
  exit 1
fi
scripts/install-deps.sh
cargo build --release -p phyllome-vmm -p phyllome
assets=$(scripts/guest-assets.sh)
kernel=$assets/kernels/generic/vmlinuz
initrd=$assets/demo-initrd.cpio
if grep -qE '^flags.* (vmx|svm)( |$)' /proc/cpuinfo; then
  # With a desktop, the demo also gets a display (virtio-gpu, keyboard and tablet) shown
  # in Phyllome's window, with a second shell on it.
  if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    sock="${XDG_RUNTIME_DIR:-/tmp}/phyllome-demo-$$.sock"
    (for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
     exec target/release/phyllome --console "$sock" --name "Phyllome demo") &
    exec target/release/phyllome-vmm run --kernel "$kernel" --initrd "$initrd" --cpus 2 --memory 512 \
      --cmdline "console=tty0 console=ttyS0 reboot=k panic=-1 quiet" \
      --gpu 1280x800 --input --display-socket "$sock"
  fi
  exec target/release/phyllome-vmm run --kernel "$kernel" --initrd "$initrd" --cpus 2 --memory 512
fi
echo "No hardware virtualization here: running the demo VM nested under QEMU (about 20 s to a shell)." >&2
PHYLLOME_NESTED_INTERACTIVE=1 exec scripts/nested-kvm.sh target/release/phyllome-vmm "$kernel" "$initrd" \
  --cpus 2 --memory 256 --cmdline "console=ttyS0 reboot=k panic=-1 quiet"
