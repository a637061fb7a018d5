#!/usr/bin/env bash
# Builds the 3D test guest into the guest-asset cache and prints the cache folder:
#
#   gl-rootfs.ext4   Debian 12 (debootstrap, minbase) with Mesa (its virgl driver and its
#                    Vulkan drivers), kmscube, glmark2-es2-drm, vulkaninfo and our GLES check
#                    (tests/guest/gles-check.c), whose /sbin/phyllome-gl-test runs the
#                    checks and powers off
#   gl-initrd.cpio   busybox: loads virtio-pci, virtio-blk, ext4 and virtio-gpu, mounts
#                    /dev/vda and switches to it
#
# About 500 MB and a minute or two the first time (packages from the machine's Debian
# mirror); rebuilt when this script or the check program changes. Building needs root
# (debootstrap), or password-less sudo; a cached guest does not.
#
# Standard output carries the cache folder alone, as its last line: everything else the
# script and the tools it runs print goes to standard error.
set -euo pipefail
exec 3>&1 1>&2
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$SCRIPTS")
CACHE=$("$SCRIPTS/guest-assets.sh" | tail -n 1)
[ -d "$CACHE" ] || { echo "gl-guest: guest-assets.sh answered '$CACHE', which is not a folder" >&2; exit 1; }
cd "$CACHE"
log() { echo "gl-guest: $*" >&2; }
for tool in debootstrap mke2fs gcc; do
  command -v "$tool" >/dev/null || { log "missing $tool: run scripts/install-deps.sh"; exit 1; }
done
BUSYBOX=$(command -v busybox || echo /bin/busybox)

stamp=$(cat "$SCRIPTS/gl-guest.sh" "$ROOT/tests/guest/gles-check.c" | sha256sum | cut -d' ' -f1)
if [ "$(cat gl.stamp 2>/dev/null)" != "$stamp" ]; then
  rm -f gl-rootfs.ext4 gl-initrd.cpio
fi

if [ ! -f gl-rootfs.ext4 ]; then
  # debootstrap unpacks packages as root and runs their scripts in a chroot: as another user,
  # only through sudo that asks no password (a test cannot type one).
  as_root=()
  if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then
      as_root=(sudo -n)
    else
      log "building the 3D test guest needs root, because debootstrap installs Debian into a folder with chroot: run scripts/gl-guest.sh once as root or with sudo, then the cached guest serves every user"
      exit 1
    fi
  fi
  mirror=$(grep -rhs '^URIs:.*debian$' /etc/apt/sources.list.d/ | head -n1 | awk '{print $2}')
  [ -n "$mirror" ] || mirror=$(grep -hs '^deb .*debian ' /etc/apt/sources.list | head -n1 | awk '{print $2}')
  [ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
  dir=$(mktemp -d)
  trap '"${as_root[@]}" rm -rf "$dir"' EXIT
  log "debootstrap from $mirror (a minute or two)"
  "${as_root[@]}" debootstrap --variant=minbase \
    --include=libgl1-mesa-dri,libegl1,libegl-mesa0,libgles2,libgbm1,mesa-utils,kmscube,glmark2-es2-drm,kmod,mesa-vulkan-drivers,vulkan-tools \
    bookworm "$dir" "$mirror"
  "${as_root[@]}" rm -rf "$dir"/usr/share/{doc,man,locale,info} "$dir"/var/cache/apt/archives/*.deb
  build=$(mktemp -d)
  trap '"${as_root[@]}" rm -rf "$dir" "$build"' EXIT
  gcc -O2 -Wall -o "$build/gles-check" "$ROOT/tests/guest/gles-check.c" -lEGL -lGLESv2 -lgbm
  "${as_root[@]}" install -m 755 "$build/gles-check" "$dir/usr/local/bin/gles-check"
  cat > "$build/phyllome-gl-test" <<'TEST'
#!/bin/sh
# The 3D test, run as the guest's first process: our GLES check on the render node, then
# kmscube on the card (its frames reach the scanout), reported on the serial console.
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sys /sys 2>/dev/null
mount -t devtmpfs dev /dev 2>/dev/null
export HOME=/root MESA_LOADER_DRIVER_OVERRIDE=virtio_gpu
echo "PHYLLOME-GL-GUEST $(uname -r) $(ls /dev/dri | tr '\n' ' ')"
# phyllome.vulkan: what the guest's virtio-gpu driver was offered (its debugfs features),
# the Vulkan drivers the guest's Mesa has, and the Vulkan devices it finds.
if grep -q phyllome.vulkan /proc/cmdline; then
  mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
  sed 's/^/PHYLLOME-GPU-FEATURE /' /sys/kernel/debug/dri/0/virtio-gpu-features
  echo "PHYLLOME-VULKAN-ICDS $(ls /usr/share/vulkan/icd.d | tr '\n' ' ')"
  vulkaninfo --summary 2>&1 | grep -E 'deviceName|driverName|ERROR' | sed 's/^/PHYLLOME-VULKAN /'
  echo PHYLLOME-GL-TEST-DONE
  sync
  echo o > /proc/sysrq-trigger
  sleep 30
fi
/usr/local/bin/gles-check 2>&1
frames=$(sed -n 's/.*phyllome.kmscube=\([0-9]*\).*/\1/p' /proc/cmdline)
echo PHYLLOME-KMSCUBE-START
kmscube -D /dev/dri/card0 -c "${frames:-120}" > /tmp/kmscube.log 2>&1
echo "PHYLLOME-KMSCUBE-EXIT=$?"
sed 's/^/PHYLLOME-KMSCUBE /' /tmp/kmscube.log | tail -5
# phyllome.glmark2: a short glmark2 run (six scenes, 5 s each) for the benchmark. On DRM it
# always draws at the display mode's size, but it skips making its surface when the asked
# size (or --fullscreen) equals the mode ("glwindow has never been initialized"), so ask
# for a size no display here has.
if grep -q phyllome.glmark2 /proc/cmdline; then
  glmark2-es2-drm --size 640x360 -b build:duration=5 -b texture:duration=5 \
    -b shading:duration=5 -b bump:duration=5 -b effect2d:duration=5 -b pulsar:duration=5 \
    > /tmp/glmark2.log 2>&1
  echo "PHYLLOME-GLMARK2-EXIT=$?"
  grep -iE 'score|error|surface' /tmp/glmark2.log | tail -5 | sed 's/^/PHYLLOME-GLMARK2 /'
fi
echo PHYLLOME-GL-TEST-DONE
sync
echo o > /proc/sysrq-trigger
TEST
  "${as_root[@]}" install -m 755 "$build/phyllome-gl-test" "$dir/sbin/phyllome-gl-test"
  log "making the ext4 image"
  # As root too: some of the guest's files are readable by root alone.
  "${as_root[@]}" mke2fs -q -t ext4 -d "$dir" gl-rootfs.ext4.tmp 900M
  "${as_root[@]}" chown "$(id -u):$(id -g)" gl-rootfs.ext4.tmp
  mv gl-rootfs.ext4.tmp gl-rootfs.ext4
fi

if [ ! -f gl-initrd.cpio ]; then
  root=$(mktemp -d)
  mkdir -p "$root"/{bin,proc,sys,dev,newroot}
  cp "$BUSYBOX" "$root/bin/busybox"
  for a in sh mount insmod switch_root sleep cat echo poweroff; do ln -s busybox "$root/bin/$a"; done
  mods=kernels/generic/modules
  "$SCRIPTS/module-order.py" "$mods" virtio_pci virtio_blk crc32c_generic ext4 virtio_gpu > "$root/modules.order"
  while read -r m; do mkdir -p "$root/lib/modules/$(dirname "$m")"; cp "$mods/$m" "$root/lib/modules/$m"; done < "$root/modules.order"
  cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m 2>/dev/null; done
sleep 1
mount -t ext4 /dev/vda /newroot || { echo PHYLLOME-GL-NO-ROOT; poweroff -f; }
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/phyllome-gl-test
INIT
  chmod +x "$root/init"
  (cd "$root" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null) > gl-initrd.cpio.tmp
  mv gl-initrd.cpio.tmp gl-initrd.cpio
  rm -rf "$root"
fi
echo "$stamp" > gl.stamp
echo "$CACHE" >&3
