#!/usr/bin/env bash
# Installs the Debian 12 packages Phyllome needs to build, run and test.
# Idempotent: safe to run again. Needs root (or sudo).
set -euo pipefail
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

# QEMU 10 (a test peer and the nested-KVM harness) comes from bookworm-backports.
if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  mirror=$(grep -rhs '^URIs:.*debian$' /etc/apt/sources.list.d/ | head -n1 | awk '{print $2}')
  [ -n "$mirror" ] || mirror=$(grep -hs '^deb .*debian ' /etc/apt/sources.list | head -n1 | awk '{print $2}')
  [ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
  cat <<SRC | $SUDO tee /etc/apt/sources.list.d/phyllome-backports.sources >/dev/null
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  build-essential pkg-config binutils kmod busybox-static acpica-tools edid-decode \
  libgtk-4-dev libadwaita-1-dev desktop-file-utils appstream librsvg2-common libgdk-pixbuf2.0-bin \
  xvfb xauth x11-utils xdotool imagemagick dbus dbus-x11 libgl1-mesa-dri xorriso \
  libdbus-1-dev libvirglrenderer-dev libdrm-dev libegl1 libegl-mesa0 libgles-dev libgbm-dev debootstrap at-spi2-core python3-pyatspi python3-dbus python3-gi \
  fio ovmf grub-efi-amd64-bin grub-common mtools dosfstools fdisk efibootmgr \
  passt iperf3 iproute2 alsa-utils clang libclang-dev
$SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports \
  qemu-system-x86 qemu-system-data qemu-system-gui qemu-utils \
  pipewire pipewire-bin wireplumber libpipewire-0.3-dev libspa-0.2-dev
