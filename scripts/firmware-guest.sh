#!/usr/bin/env bash
# Builds the firmware-boot test media into the guest-asset cache and prints the cache
# folder (its last and only line on standard output; everything else goes to standard
# error):
#
#   fw-installer.iso   a grub-mkrescue image (GPT + EFI system partition, as installer
#                      ISOs are): GRUB on the serial port prints PHYLLOME-GRUB-MENU, shows a
#                      menu whose default entry prints PHYLLOME-GRUB-BOOTED and powers off
#                      through the firmware (GRUB's `halt`, UEFI ResetSystem)
#
# Debian packages only (grub-efi-amd64-bin, grub-common, xorriso, mtools: install-deps.sh);
# rebuilt when this script changes. No root needed.
set -euo pipefail
exec 3>&1 1>&2
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
CACHE="${PHYLLOME_ASSETS:-${XDG_CACHE_HOME:-$HOME/.cache}/phyllome/assets}"
mkdir -p "$CACHE"
cd "$CACHE"
log() { echo "firmware-guest: $*" >&2; }
for tool in grub-mkrescue xorriso mformat; do
  command -v "$tool" >/dev/null || { log "missing $tool: run scripts/install-deps.sh"; exit 1; }
done
[ -d /usr/lib/grub/x86_64-efi ] || { log "missing GRUB's EFI modules (grub-efi-amd64-bin): run scripts/install-deps.sh"; exit 1; }

stamp=$(sha256sum "$SCRIPTS/firmware-guest.sh" | cut -d' ' -f1)
if [ "$(cat fw.stamp 2>/dev/null)" != "$stamp" ] || [ ! -f fw-installer.iso ]; then
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  mkdir -p "$dir/boot/grub"
  cat > "$dir/boot/grub/grub.cfg" <<'CFG'
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
echo PHYLLOME-GRUB-MENU
set timeout=3
set default=0
menuentry "Phyllome firmware test" {
  echo PHYLLOME-GRUB-BOOTED
  halt
}
menuentry "Phyllome firmware test: second entry" {
  echo PHYLLOME-GRUB-SECOND-ENTRY
  halt
}
CFG
  log "making fw-installer.iso"
  grub-mkrescue -o fw-installer.iso.tmp "$dir" >&2
  mv fw-installer.iso.tmp fw-installer.iso
  echo "$stamp" > fw.stamp
fi
echo "$CACHE" >&3
