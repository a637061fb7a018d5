#!/usr/bin/env bash
# Sets up everything on a fresh Debian 12 machine and runs the demo VM: Debian's kernel
# with a busybox shell. On a desktop with hardware virtualization it opens Phyllome, whose
# library holds the demo VM (its display in Phyllome's window); without a desktop, the
# shell is on the serial console, in this terminal. On a computer without
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
assets=$(scripts/guest-assets.sh | tail -n 1)
[ -d "$assets" ] || { echo "scripts/guest-assets.sh did not name its asset folder (it said '$assets')" >&2; exit 1; }
kernel=$assets/kernels/generic/vmlinuz
initrd=$assets/demo-initrd.cpio
if grep -qE '^flags.* (vmx|svm)( |$)' /proc/cpuinfo; then
  # With a desktop, the demo is a VM in Phyllome's library (added once, its kernel and
  # initrd copied beside its definition), started from the app: its screen (virtio-gpu,
  # keyboard and tablet) opens in Phyllome's display window, with a shell on it.
  if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    demo="${XDG_DATA_HOME:-$HOME/.local/share}/phyllome/vms/phyllome-demo"
    if [ ! -e "$demo/vm.toml" ]; then
      mkdir -p "$demo"
      cp "$kernel" "$demo/kernel"
      cp "$initrd" "$demo/initrd"
      cat >"$demo/vm.toml.tmp" <<TOML
version = 1
name = "Phyllome demo"

[machine]
cpus = 2
memory_mib = 512

[boot]
kernel = "$demo/kernel"
initrd = "$demo/initrd"
cmdline = "console=tty0 console=ttyS0 reboot=k panic=-1 quiet"

[devices]
rng = true
input = true

[devices.gpu]
width = 1280
height = 800

[about]
os = "Linux demo (busybox)"
TOML
      mv "$demo/vm.toml.tmp" "$demo/vm.toml"
    fi
    echo "Phyllome opens with the demo VM in its library: press its Start button." >&2
    exec target/release/phyllome
  fi
  exec target/release/phyllome-vmm run --kernel "$kernel" --initrd "$initrd" --cpus 2 --memory 512
fi
echo "No hardware virtualization here: running the demo VM nested under QEMU (about 20 s to a shell)." >&2
PHYLLOME_NESTED_INTERACTIVE=1 exec scripts/nested-kvm.sh target/release/phyllome-vmm "$kernel" "$initrd" \
  --cpus 2 --memory 256 --cmdline "console=ttyS0 reboot=k panic=-1 quiet"
