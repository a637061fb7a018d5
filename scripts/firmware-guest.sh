#!/usr/bin/env bash
# Builds the firmware-boot test media into the guest-asset cache and prints the cache
# folder (its last and only line on standard output; everything else goes to standard
# error):
#
#   fw-installer.iso   a grub-mkrescue image (GPT + EFI system partition, as installer
#                      ISOs are): GRUB on the serial port prints PHYLLOME-GRUB-MENU, shows a
#                      menu whose default entry prints PHYLLOME-GRUB-BOOTED and powers off
#                      through the firmware (GRUB's `halt`, UEFI ResetSystem). As
#                      distributions' GRUBs, it draws its menu with its graphical terminal
#                      where the firmware offers a framebuffer (ramfb, in VMs with a
#                      display), else through the firmware's console
#   fw-linux-installer.iso
#                      an installer, as a distribution's is: GRUB boots Debian's kernel
#                      with an initramfs that partitions the VM's empty writable disk (GPT,
#                      one EFI system partition), installs a GRUB, a kernel and a small
#                      "installed system" there (at the removable path EFI/BOOT/BOOTX64.EFI
#                      and at EFI/phyllome/grubx64.efi with an NVRAM boot entry made by
#                      efibootmgr), prints PHYLLOME-INSTALLER-DONE and reboots. The installed
#                      system prints PHYLLOME-INSTALLED-SYSTEM-UP with the installer's token
#                      and the firmware's boot entries (efibootmgr), and powers off.
#
# Debian packages only (grub-efi-amd64-bin, grub-common, xorriso, mtools, dosfstools, fdisk,
# efibootmgr, busybox-static, the kernel from guest-assets.sh: install-deps.sh); rebuilt when
# this script or the kernel changes. No root needed.
set -euo pipefail
exec 3>&1 1>&2
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
CACHE="${PHYLLOME_ASSETS:-${XDG_CACHE_HOME:-$HOME/.cache}/phyllome/assets}"
mkdir -p "$CACHE"
cd "$CACHE"
log() { echo "firmware-guest: $*" >&2; }
for tool in grub-mkrescue grub-mkimage xorriso mformat mkfs.vfat sfdisk efibootmgr; do
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
terminal_output console
# As distributions' GRUBs do: the graphical terminal where the firmware has a display with
# a framebuffer (ramfb), else the firmware's console; the serial port either way.
insmod efi_gop
insmod gfxterm
if loadfont $prefix/fonts/unicode.pf2; then
  set gfxmode=auto
  if terminal_output serial gfxterm; then true; else terminal_output console; fi
fi
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
  rm -rf "$dir"
fi
# The Linux installer: Debian's generic kernel (guest-assets.sh fetches it into this cache).
assets=$(PHYLLOME_ASSETS="$CACHE" "$SCRIPTS/guest-assets.sh" | tail -n 1)
[ -d "$assets" ] || { log "guest-assets.sh did not name its asset folder (it said '$assets')"; exit 1; }
kernel=$assets/kernels/generic
lstamp="$stamp $(cat "$kernel/version")"
if [ "$(cat fw-linux.stamp 2>/dev/null)" != "$lstamp" ] || [ ! -f fw-linux-installer.iso ]; then
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  BUSYBOX=/bin/busybox
  # root DIR TOOL...: busybox, the disk, FAT and EFI variable modules, and TOOLs with the
  # shared libraries they link.
  root() {
    local r=$1; shift
    mkdir -p "$r"/{bin,proc,sys,dev,tmp,mnt,lib/modules}
    cp "$BUSYBOX" "$r/bin/busybox"
    "$BUSYBOX" --list | while read -r a; do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
    "$SCRIPTS/module-order.py" "$kernel/modules" virtio_pci virtio_blk vfat nls_cp437 nls_ascii nls_utf8 efivarfs > "$r/modules.order"
    while read -r m; do mkdir -p "$r/lib/modules/$(dirname "$m")"; cp "$kernel/modules/$m" "$r/lib/modules/$m"; done < "$r/modules.order"
    for tool in "$@"; do
      cp "$(command -v "$tool")" "$r/bin/"
      ldd "$(command -v "$tool")" | grep -o '/[^ ]*' | while read -r lib; do
        mkdir -p "$r$(dirname "$lib")"; cp -L "$lib" "$r$lib"
      done
    done
    cat > "$r/prelude" <<'PRELUDE'
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m || echo "PHYLLOME-INSMOD-FAILED $m"; done
mount -t efivarfs efivarfs /sys/firmware/efi/efivars || echo PHYLLOME-NO-EFIVARS
PRELUDE
  }
  cpio_of() { (cd "$1" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null) > "$2"; }

  # The installed system: finds its disk by the label, shows the token the installer wrote
  # and the firmware's boot entries (BootCurrent names the one it came up from).
  root "$dir/installed" efibootmgr
  cat > "$dir/installed/init" <<'INIT'
#!/bin/sh
. /prelude
sleep 1
mkdir -p /esp
mount -t vfat "$(findfs LABEL=PHYLLOMEESP)" /esp || echo PHYLLOME-NO-ESP
echo "PHYLLOME-INSTALLED-SYSTEM-UP token=$(cat /esp/phyllome-installed)"
efibootmgr | sed 's/^/PHYLLOME-EFI /'
poweroff -f
INIT
  chmod +x "$dir/installed/init"
  cpio_of "$dir/installed" "$dir/installed.cpio"

  # The installed disk's GRUB: its configuration built in, on the serial port only (with
  # the firmware's console too, which OVMF may also send to the serial port, GRUB writes
  # each character twice there, interleaved).
  cat > "$dir/installed-grub.cfg" <<'CFG'
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial
search --no-floppy --file --set=root /phyllome-installed
echo PHYLLOME-INSTALLED-GRUB
linux /vmlinuz console=ttyS0 loglevel=3 phyllome.role=installed
initrd /installed.cpio
boot
CFG
  grub-mkimage -O x86_64-efi -o "$dir/grubx64.efi" -p /EFI/phyllome -c "$dir/installed-grub.cfg" \
    part_gpt fat search search_fs_file linux serial terminal echo boot halt

  # The installer: partitions the empty disk, installs, adds the boot entry, reboots.
  root "$dir/installer" sfdisk mkfs.vfat efibootmgr
  mkdir -p "$dir/installer/payload"
  cp "$kernel/vmlinuz" "$dir/installed.cpio" "$dir/grubx64.efi" "$dir/installer/payload/"
  cat > "$dir/installer/init" <<'INIT'
#!/bin/sh
. /prelude
sleep 1
echo PHYLLOME-INSTALLER-STARTED
fail() { echo "PHYLLOME-INSTALLER-FAILED: $*"; poweroff -f; }
disk=""
for d in /sys/block/vd*; do [ "$(cat $d/ro)" = 0 ] && disk=/dev/${d##*/} && break; done
[ -n "$disk" ] || fail "no writable disk"
echo "PHYLLOME-INSTALLER-TARGET=$disk"
echo 'label: gpt
size=48MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system partition"' | sfdisk -q "$disk" || fail sfdisk
for i in $(seq 50); do [ -b "${disk}1" ] && break; sleep 0.1; done
mkfs.vfat -n PHYLLOMEESP "${disk}1" >/dev/null || fail mkfs.vfat
mount -t vfat "${disk}1" /mnt || fail mount
mkdir -p /mnt/EFI/BOOT /mnt/EFI/phyllome
cp /payload/grubx64.efi /mnt/EFI/BOOT/BOOTX64.EFI
cp /payload/grubx64.efi /mnt/EFI/phyllome/grubx64.efi
cp /payload/vmlinuz /payload/installed.cpio /mnt/
token=$(cat /proc/sys/kernel/random/uuid)
echo "$token" > /mnt/phyllome-installed
umount /mnt || fail umount
sync
efibootmgr -q -c -d "$disk" -p 1 -L "Phyllome test system" -l '\EFI\phyllome\grubx64.efi' || fail efibootmgr
efibootmgr | sed 's/^/PHYLLOME-EFI /'
echo "PHYLLOME-INSTALLER-DONE token=$token"
reboot -f
INIT
  chmod +x "$dir/installer/init"
  cpio_of "$dir/installer" "$dir/installer.cpio"

  mkdir -p "$dir/iso/boot/grub"
  cp "$kernel/vmlinuz" "$dir/iso/vmlinuz"
  cp "$dir/installer.cpio" "$dir/iso/installer.cpio"
  cat > "$dir/iso/boot/grub/grub.cfg" <<'CFG'
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
echo PHYLLOME-INSTALLER-GRUB
set timeout=1
set default=0
menuentry "Install the Phyllome test system" {
  linux /vmlinuz console=ttyS0 loglevel=3 phyllome.role=install
  initrd /installer.cpio
}
CFG
  log "making fw-linux-installer.iso"
  grub-mkrescue -o fw-linux-installer.iso.tmp "$dir/iso" >&2
  mv fw-linux-installer.iso.tmp fw-linux-installer.iso
  echo "$lstamp" > fw-linux.stamp
  rm -rf "$dir"
fi
echo "$CACHE" >&3
