#!/usr/bin/env bash
# Builds the guest assets the real-Linux tests and the demo VM need, from Debian packages,
# into a cache folder (default ~/.cache/phyllome/assets). Nothing is installed on the host.
#
#   kernels/cloud/vmlinuz     Debian's cloud kernel (no MP table parsing: needs our MADT)
#   kernels/generic/vmlinuz   Debian's generic kernel (also the nested-KVM L1 kernel)
#   kernels/generic/modules/  its modules, with modules.dep
#   l2-initrd.cpio            busybox /init: reports CPUs and powers off (test guest)
#   demo-initrd.cpio          busybox /init: a shell on the console (demo VM)
#   cdrom-initrd.cpio         busybox /init: mounts, reads and ejects a CD (test guest)
#   net-initrd.cpio           busybox /init: DHCP, HTTP and TCP both ways on virtio-net (test guest)
#   net-bench.cpio            iperf3 and /bench, appended to net-initrd.cpio by the network benchmark
#
# Sets built only when named as arguments (`guest-assets.sh sound`), as they download more:
#
#   sound                     the virtio-snd test guest:
#     kernels/backports/vmlinuz   bookworm-backports' 6.12 kernel (Debian 12's 6.1 has no
#                                 CONFIG_SND_VIRTIO), modules/ with modules.dep, version
#     sound-initrd.cpio           busybox /init: loads virtio_snd and what it needs, then plays
#                                 a 440 Hz tone (phyllome.sound=play), records
#                                 (phyllome.sound=record: the capture goes to the serial
#                                 console in base64) or both at once (phyllome.sound=duplex)
#                                 with alsa-utils' aplay and arecord on hw:0,0
#
# Prints the asset folder on standard output, as its last and only line (everything else
# the script and its tools print goes to standard error). Safe to run again: finished
# parts are kept.
set -euo pipefail
exec 3>&1 1>&2

SOUND=
for set in "$@"; do
  case "$set" in
  sound) SOUND=1 ;;
  *) echo "guest-assets: no asset set named $set (there is: sound)" >&2; exit 2 ;;
  esac
done

SCRIPTS=$(cd "$(dirname "$0")" && pwd)
CACHE="${PHYLLOME_ASSETS:-${XDG_CACHE_HOME:-$HOME/.cache}/phyllome/assets}"
mkdir -p "$CACHE"
cd "$CACHE"
log() { echo "guest-assets: $*" >&2; }

need() { command -v "$1" >/dev/null || { log "missing $1: run scripts/install-deps.sh"; exit 1; }; }
need dpkg-deb; need depmod; need apt-get
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] && file -L "$BUSYBOX" 2>/dev/null | grep -q static || BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || { log "missing busybox-static"; exit 1; }

fetch_kernel() { # flavour, metapackage
  local flavour=$1 meta=$2 dir="kernels/$1"
  [ -f "$dir/vmlinuz" ] && [ -f "$dir/modules/modules.dep" ] && return
  local pkg
  pkg=$(apt-cache depends "$meta" | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -n1)
  [ -n "$pkg" ] || { log "cannot resolve $meta (run apt-get update)"; exit 1; }
  log "fetching $pkg"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/deb"
  (cd "$dir.tmp" && apt-get download -q "$pkg")
  dpkg-deb -x "$dir.tmp"/*.deb "$dir.tmp/deb"
  local kver
  kver=$(ls "$dir.tmp/deb/lib/modules" | head -n1)
  cp "$dir.tmp/deb/boot/vmlinuz-$kver" "$dir.tmp/vmlinuz"
  depmod -b "$dir.tmp/deb" "$kver"
  mv "$dir.tmp/deb/lib/modules/$kver" "$dir.tmp/modules"
  echo "$kver" > "$dir.tmp/version"
  rm -rf "$dir.tmp/deb" "$dir.tmp"/*.deb "$dir"
  mv "$dir.tmp" "$dir"
}

make_cpio() { # rootdir output
  (cd "$1" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null) > "$2.tmp"
  mv "$2.tmp" "$2"
}

busybox_root() { # dir
  mkdir -p "$1"/{bin,sbin,proc,sys,dev,tmp,etc,usr/bin,usr/sbin}
  cp "$BUSYBOX" "$1/bin/busybox"
  for applet in sh mount umount poweroff reboot cat echo grep ls sleep insmod nproc uname mkdir dmesg stty setsid cttyhack; do
    ln -sf busybox "$1/bin/$applet"
  done
}

module_root() { # dir module... : busybox with every applet, and the generic kernel's modules
  # named (with what they need) in /lib/modules, their load order in /modules.order
  kernel_module_root generic "$@"
}

kernel_module_root() { # flavour dir module... : as module_root, with that kernel's modules;
  # xz-compressed ones (.ko.xz) are stored decompressed: busybox's insmod loads a .ko.xz only
  # after the kernel has refused it, with an "Invalid ELF header magic" error on the console
  local mods=kernels/$1/modules root=$2
  shift 2
  busybox_root "$root"
  "$BUSYBOX" --list | while read -r a; do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
  "$SCRIPTS/module-order.py" "$mods" "$@" | while read -r m; do
    mkdir -p "$root/lib/modules/$(dirname "$m")"
    case "$m" in
    *.xz) xz -dc "$mods/$m" > "$root/lib/modules/${m%.xz}"; echo "${m%.xz}" ;;
    *) cp "$mods/$m" "$root/lib/modules/$m"; echo "$m" ;;
    esac
  done > "$root/modules.order"
}

# The initramfs images are rebuilt whenever this script changes.
stamp=$(sha256sum "$SCRIPTS/guest-assets.sh" | cut -d' ' -f1)
if [ "$(cat initrd.stamp 2>/dev/null)" != "$stamp" ]; then
  rm -f ./*.cpio
  echo "$stamp" > initrd.stamp
fi

fetch_kernel cloud linux-image-cloud-amd64
fetch_kernel generic linux-image-amd64

if [ ! -f l2-initrd.cpio ]; then
  root=$(mktemp -d)
  busybox_root "$root"
  cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
echo "PHYLLOME-L2-INIT cpus=$(grep -c ^processor /proc/cpuinfo) kernel=$(uname -r)"
grep -q 'ACPI' /proc/interrupts && echo "PHYLLOME-L2-ACPI-SCI"
poweroff -f
INIT
  chmod +x "$root/init"
  make_cpio "$root" l2-initrd.cpio
  rm -rf "$root"
fi

if [ ! -f demo-initrd.cpio ]; then
  root=$(mktemp -d)
  # The display: virtio-gpu (framebuffer console) and virtio-input (keyboard, tablet).
  module_root "$root" virtio_pci virtio_gpu virtio_input
  cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in $(cat /modules.order); do insmod /lib/modules/$m 2>/dev/null; done
mkdir -p /etc
{
  echo
  echo "Welcome to the Phyllome demo VM: $(grep -c ^processor /proc/cpuinfo) CPU(s), $(uname -r)."
  echo "Type 'poweroff -f' to stop it."
} > /etc/welcome
# With a display, a shell on it too (typed into through the virtio keyboard), started
# again when it exits.
sleep 1
if [ -e /sys/class/graphics/fb0 ] && [ -c /dev/tty1 ]; then
  echo "PHYLLOME-DEMO-DISPLAY-SHELL"
  (while true; do
    setsid sh -c 'exec <>/dev/tty1 >&0 2>&1; cat /etc/welcome; exec sh -l'
    sleep 1
  done) &
fi
cat /etc/welcome
exec setsid cttyhack sh -l
INIT
  chmod +x "$root/init"
  make_cpio "$root" demo-initrd.cpio
  rm -rf "$root"
fi

# Real virtio drivers against our devices (served over vhost-user to QEMU): the generic
# kernel's virtio-pci, virtio-blk and virtio-rng modules, and an /init that exercises them.
if [ ! -f virtio-initrd.cpio ]; then
  root=$(mktemp -d)
  module_root "$root" virtio_pci virtio_blk virtio_rng virtio_console virtio_gpu virtio_input
  cat > "$root/init" <<'INIT'
#!/bin/sh
# Exercises /dev/vda (writable), /dev/vdb (read-only) and /dev/hwrng, reporting markers.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m || echo "PHYLLOME-INSMOD-FAILED $m"; done
sleep 1
echo "PHYLLOME-BLOCK-DEVICES: $(ls /sys/block | tr '\n' ' ')"
for d in /sys/bus/pci/devices/*; do
  [ "$(cat $d/vendor)" = 0x1af4 ] && echo "PHYLLOME-VIRTIO-BAR $(basename $d) $(head -1 $d/resource | cut -d' ' -f1)"
done
[ -d /sys/block/vda/mq ] && echo "PHYLLOME-VDA-QUEUES=$(ls /sys/block/vda/mq | wc -l)"
if [ -b /dev/vda ]; then
  yes PHYLLOME-BLK-PATTERN | head -c 65536 > /tmp/pattern
  if dd if=/tmp/pattern of=/dev/vda bs=4096 seek=16 conv=fsync 2>/dev/null; then echo PHYLLOME-VDA-WRITE-FLUSH-OK; fi
  echo 3 > /proc/sys/vm/drop_caches
  dd if=/dev/vda of=/tmp/back bs=4096 skip=16 count=16 2>/dev/null
  cmp -s /tmp/pattern /tmp/back && echo PHYLLOME-VDA-READBACK-OK
fi
if [ -b /dev/vdb ]; then
  echo "PHYLLOME-VDB-RO=$(cat /sys/block/vdb/ro)"
  dd if=/dev/vdb bs=512 count=1 2>/dev/null | grep -q PHYLLOME-READONLY-MARKER && echo PHYLLOME-VDB-READ-OK
  if dd if=/tmp/pattern of=/dev/vdb bs=512 count=1 conv=fsync 2>/dev/null; then echo PHYLLOME-VDB-WRITE-ACCEPTED; else echo PHYLLOME-VDB-WRITE-REFUSED; fi
fi
if [ -b /dev/vdc ]; then
  yes PHYLLOME-VDC-PATTERN | head -c 65536 > /tmp/pattern-c
  dd if=/tmp/pattern-c of=/dev/vdc bs=4096 seek=8 conv=fsync 2>/dev/null && echo PHYLLOME-VDC-WRITE-FLUSH-OK
  echo 3 > /proc/sys/vm/drop_caches
  dd if=/dev/vdc of=/tmp/back-c bs=4096 skip=8 count=16 2>/dev/null
  cmp -s /tmp/pattern-c /tmp/back-c && echo PHYLLOME-VDC-READBACK-OK
fi
if [ -c /dev/hwrng ]; then
  echo "PHYLLOME-RNG-CURRENT=$(cat /sys/class/misc/hw_random/rng_current)"
  n=$(dd if=/dev/hwrng bs=64 count=4 2>/dev/null | od -An -tx1 | tr -d ' \n' | tr -d 0 | wc -c)
  [ "$n" -gt 64 ] && echo PHYLLOME-RNG-OK
fi
grep -E '^(N: Name|B: (ABS|EV))=' /proc/bus/input/devices | sed 's/^/PHYLLOME-INPUT /'
if [ -e /sys/class/graphics/fb0 ]; then
  echo "PHYLLOME-GPU-FB=$(cat /sys/class/graphics/fb0/name) $(cat /sys/class/graphics/fb0/virtual_size)"
  for i in 1 2 3 4 5 6 7 8; do echo "PHYLLOME GPU CONSOLE LINE $i: the quick brown fox" > /dev/tty0; done
  sleep 2
  # phyllome.watchmode: report the display's preferred mode, then the next one the host
  # asks for (a resize of the app's window).
  if grep -q phyllome.watchmode /proc/cmdline; then
    modes=$(ls /sys/class/drm/card*-Virtual-1/modes | head -1)
    # The first probe can race the EDID read too and leave the list empty: ask again.
    m0=$(head -1 "$modes")
    for i in $(seq 60); do
      [ -n "$m0" ] && break
      echo detect > "${modes%/modes}/status" 2>/dev/null
      sleep 0.5
      m0=$(head -1 "$modes")
    done
    echo "PHYLLOME-GPU-MODE-BEFORE=$m0"
    m=$m0
    # The driver probes the connector when the configuration interrupt's display info
    # arrives, but that probe can race the EDID update and leave the list empty; asking for a
    # probe again ("detect") reads what the driver now knows (without the interrupt it would
    # still know only the old size).
    for i in $(seq 120); do
      m=$(head -1 "$modes"); [ -n "$m" ] && [ "$m" != "$m0" ] && break
      echo detect > "${modes%/modes}/status" 2>/dev/null
      sleep 0.5
    done
    echo "PHYLLOME-GPU-MODE-AFTER=$m"
  fi
fi
if [ -c /dev/hvc0 ]; then
  echo PHYLLOME-HVC-OUTPUT-FROM-GUEST > /dev/hvc0
  read -t 10 line < /dev/hvc0 && echo "PHYLLOME-HVC-INPUT=$line"
fi
echo PHYLLOME-DEVICE-TEST-DONE
# phyllome.shell: stay up with a shell on the display's console (tty1), typed into through
# the keyboard, for the display tests.
if grep -q phyllome.shell /proc/cmdline; then
  echo PHYLLOME-SHELL-READY
  exec setsid sh -c 'exec sh -i </dev/tty1 >/dev/tty1 2>&1'
fi
poweroff -f
INIT
  chmod +x "$root/init"
  make_cpio "$root" virtio-initrd.cpio
  rm -rf "$root"
fi

# A CD-ROM drive on virtio-scsi (vhost-user-scsi-pci on `device scsi`, or QEMU's own
# scsi-cd for reference): Linux's sr mounts the disc and reads it, the guest ejects it (the
# kernel's autoeject), then waits for the host to insert a second disc, to try to eject it
# while mounted (the drive is locked: it stays) and to force it out. Rebuilt when this
# script changes.
cdstamp=$(sha256sum "$SCRIPTS/guest-assets.sh" | cut -d' ' -f1)
if [ ! -f cdrom-initrd.cpio ] || [ "$(cat cdrom.stamp 2>/dev/null)" != "$cdstamp" ]; then
  root=$(mktemp -d)
  module_root "$root" virtio_pci virtio_scsi sr_mod isofs
  cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m || echo "PHYLLOME-INSMOD-FAILED $m"; done
for i in $(seq 50); do [ -b /dev/sr0 ] && break; sleep 0.2; done
echo "PHYLLOME-SR0-TYPE=$(cat /sys/block/sr0/device/type)"
echo "PHYLLOME-SR0-BLOCKS=$(cat /sys/block/sr0/size)"
mkdir -p /mnt
mount -t iso9660 -o ro /dev/sr0 /mnt && echo PHYLLOME-MOUNTED
echo "PHYLLOME-HELLO=$(cat /mnt/hello.txt)"
echo "PHYLLOME-PAYLOAD-SHA256=$(sha256sum /mnt/payload.bin | cut -d' ' -f1)"
echo "PHYLLOME-PVD-SHA256=$(dd if=/dev/sr0 bs=2048 skip=16 count=1 2>/dev/null | sha256sum | cut -d' ' -f1)"
# The guest ejects: with autoeject the kernel opens the tray when the drive's last user
# (the mount) lets go; with autoclose off, opening the drive does not close it again.
echo 0 > /proc/sys/dev/cdrom/autoclose
echo 1 > /proc/sys/dev/cdrom/autoeject
umount /mnt
echo 0 > /proc/sys/dev/cdrom/autoeject
if dd if=/dev/sr0 of=/dev/null bs=2048 count=1 2>/dev/null; then echo PHYLLOME-STILL-READABLE; else echo PHYLLOME-GUEST-EJECT-SEEN; fi
echo PHYLLOME-WAITING-FOR-INSERT
sleep 3
for i in $(seq 60); do mount -t iso9660 -o ro /dev/sr0 /mnt 2>/dev/null && break; sleep 1; done
echo "PHYLLOME-SECOND=$(cat /mnt/second.txt)"
# Mounted, the drive is locked: the host's eject is refused and the disc stays.
echo PHYLLOME-WAITING-FOR-EJECT
sleep 5
echo 3 > /proc/sys/vm/drop_caches
if dd if=/dev/sr0 of=/dev/null bs=2048 count=1 2>/dev/null; then echo PHYLLOME-LOCKED-DISC-STAYED; fi
# Forced, it goes even so.
echo PHYLLOME-WAITING-FOR-FORCED-EJECT
sleep 5
if dd if=/dev/sr0 of=/dev/null bs=2048 count=1 2>/dev/null; then echo PHYLLOME-STILL-READABLE-AFTER-HOST-EJECT; else echo PHYLLOME-HOST-EJECT-SEEN; fi
umount /mnt 2>/dev/null
echo PHYLLOME-CDROM-TEST-DONE
poweroff -f
INIT
  chmod +x "$root/init"
  make_cpio "$root" cdrom-initrd.cpio
  echo "$cdstamp" > cdrom.stamp
  rm -rf "$root"
fi

# virtio-net on passt (QEMU's own virtio-net-pci on `-netdev stream`, or vhost-user on
# `device net --passt`): a DHCP lease (address, default route and MTU from it), a page and
# 4 MiB fetched over HTTP from the host's 127.0.0.1 (through the gateway address), 4 MiB
# posted back (to /cgi-bin/upload, which busybox's httpd can serve too), and a connection
# forwarded in from the host answered with nc. The ports come
# on the kernel command line: phyllome.net=HTTP,LISTEN (the host's HTTP server, the guest
# port forwarded in). Rebuilt when this script changes.
netstamp=$(sha256sum "$SCRIPTS/guest-assets.sh" | cut -d' ' -f1)
if [ ! -f net-initrd.cpio ] || [ "$(cat net.stamp 2>/dev/null)" != "$netstamp" ]; then
  root=$(mktemp -d)
  module_root "$root" virtio_pci virtio_net
  cat > "$root/udhcpc.script" <<'DHCP'
#!/bin/sh
# udhcpc's events: configure the interface from the lease (address, MTU, default route)
# and keep what it said in /tmp/lease.
case "$1" in
deconfig)
  ip link set dev "$interface" up
  ip addr flush dev "$interface"
  ;;
bound|renew)
  ip addr flush dev "$interface"
  ip addr add "$ip/$mask" dev "$interface"
  [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
  set -- $router
  ip route add default via "$1" dev "$interface"
  echo "lease_ip=$ip lease_mask=$mask lease_router=$1 lease_mtu=$mtu" > /tmp/lease
  ;;
esac
exit 0
DHCP
  chmod +x "$root/udhcpc.script"
  cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m || echo "PHYLLOME-INSMOD-FAILED $m"; done
up() { cut -d' ' -f1 /proc/uptime; }
ports=$(sed -n 's/.*phyllome\.net=\([0-9,]*\).*/\1/p' /proc/cmdline)
http=${ports%%,*}; listen=${ports#*,}
for i in $(seq 50); do [ -e /sys/class/net/eth0 ] && break; sleep 0.2; done
echo "PHYLLOME-NET-MAC=$(cat /sys/class/net/eth0/address)"
echo "PHYLLOME-NET-FEATURES=$(cat /sys/class/net/eth0/device/features 2>/dev/null)"
ip link set dev lo up
ip link set dev eth0 up
udhcpc -i eth0 -f -q -n -t 15 -T 1 -O mtu -s /udhcpc.script 2>&1 | sed 's/^/udhcpc: /'
if [ ! -f /tmp/lease ]; then
  echo "PHYLLOME-NET-NO-LEASE at $(up)"
  poweroff -f
fi
. /tmp/lease
gw=$lease_router
echo "PHYLLOME-NET-LEASE-AT=$(up)"
echo "PHYLLOME-NET-ADDRESS=$lease_ip/$lease_mask"
echo "PHYLLOME-NET-GATEWAY=$gw"
echo "PHYLLOME-NET-LEASE-MTU=$lease_mtu"
echo "PHYLLOME-NET-MTU=$(cat /sys/class/net/eth0/mtu)"
echo "PHYLLOME-NET-ROUTE=$(ip route show default)"
# The network benchmark appends net-bench.cpio, whose /bench runs iperf3 instead.
if [ -x /bench ]; then /bench "$gw"; poweroff -f; fi
# busybox wget's own -T crashes: timeout bounds it instead.
timeout 30 wget -q -O /tmp/page "http://$gw:$http/page" || echo "PHYLLOME-PAGE-FAILED"
echo "PHYLLOME-PAGE=$(cat /tmp/page 2>/dev/null)"
echo "PHYLLOME-PAGE-SHA256=$(sha256sum /tmp/page | cut -d' ' -f1)"
t=$(up)
timeout 120 wget -q -O /tmp/blob "http://$gw:$http/blob" || echo "PHYLLOME-DOWNLOAD-FAILED"
echo "PHYLLOME-DOWNLOAD-SHA256=$(sha256sum /tmp/blob | cut -d' ' -f1)"
echo "PHYLLOME-DOWNLOAD-BYTES=$(wc -c < /tmp/blob)"
echo "PHYLLOME-DOWNLOAD-TIME=from $t to $(up)"
# Up: text (busybox wget posts its file as a C string: no NUL bytes), read to its end by
# the host, which answers with what it received. (Not nc: passt 2023-03 never passes the
# host's FIN to a guest that half-closed first, so the guest's nc would wait forever.)
head -c 3145728 /dev/urandom | base64 | head -c 4194304 > /tmp/up
echo "PHYLLOME-UPLOAD-SHA256=$(sha256sum /tmp/up | cut -d' ' -f1)"
t=$(up)
timeout 120 wget -q -O /tmp/ack --post-file /tmp/up "http://$gw:$http/cgi-bin/upload" || echo "PHYLLOME-UPLOAD-FAILED"
echo "PHYLLOME-UPLOAD-ACK=$(cat /tmp/ack 2>/dev/null)"
echo "PHYLLOME-UPLOAD-TIME=from $t to $(up)"
# A connection forwarded in: the host connects to its own port, says a line, reads the
# reply (a line and the first MiB of the download) and closes.
{ echo PHYLLOME-FORWARDED-REPLY; head -c 1048576 /tmp/blob; } > /tmp/reply
timeout 30 nc -l -p "$listen" < /tmp/reply > /tmp/got &
sleep 1
echo "PHYLLOME-LISTENING port=$listen"
wait $! || echo "PHYLLOME-FORWARD-FAILED"
echo "PHYLLOME-FORWARD-GOT=$(cat /tmp/got)"
echo "PHYLLOME-NET-TEST-DONE at $(up)"
poweroff -f
INIT
  chmod +x "$root/init"
  make_cpio "$root" net-initrd.cpio
  echo "$netstamp" > net.stamp
  rm -rf "$root"
fi

# The network benchmark's addition to net-initrd.cpio (the kernel unpacks both archives, the
# second over the first): iperf3 with its libraries, and /bench, which the net /init runs
# once it has a lease. phyllome.iperf=UP,DOWN,SECONDS on the command line: the host's
# iperf3 servers for guest-to-host and host-to-guest (-R), each run for SECONDS.
benchstamp=$(sha256sum "$SCRIPTS/guest-assets.sh" "$(command -v iperf3 || echo /dev/null)" | sha256sum | cut -d' ' -f1)
if command -v iperf3 >/dev/null && { [ ! -f net-bench.cpio ] || [ "$(cat net-bench.stamp 2>/dev/null)" != "$benchstamp" ]; }; then
  root=$(mktemp -d)
  mkdir -p "$root/bin"
  cp "$(command -v iperf3)" "$root/bin/iperf3"
  ldd "$(command -v iperf3)" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  cat > "$root/bench" <<'BENCH'
#!/bin/sh
# iperf3 to the host's servers (through the gateway, GATEWAY being $1): up, then down.
set -- "$1" $(sed -n 's/.*phyllome\.iperf=\([0-9]*\),\([0-9]*\),\([0-9]*\).*/\1 \2 \3/p' /proc/cmdline)
gw=$1 up=$2 down=$3 secs=$4
iperf3 -c "$gw" -p "$up" -t "$secs" > /tmp/up.txt 2>&1 || { echo "PHYLLOME-IPERF-UP-FAILED"; cat /tmp/up.txt; }
echo "PHYLLOME-IPERF-UP-DONE"
iperf3 -c "$gw" -p "$down" -t "$secs" -R > /tmp/down.txt 2>&1 || { echo "PHYLLOME-IPERF-DOWN-FAILED"; cat /tmp/down.txt; }
echo "PHYLLOME-IPERF-DOWN-DONE"
# The guest's TCP and interface counters, for a look at what went wrong where.
cat /proc/net/snmp /proc/net/netstat /proc/net/dev
BENCH
  chmod +x "$root/bench"
  make_cpio "$root" net-bench.cpio
  echo "$benchstamp" > net-bench.stamp
  rm -rf "$root"
fi

# The virtio-snd test guest (only with `sound`): bookworm-backports' kernel, whose virtio_snd
# is a module, and alsa-utils' aplay and arecord with their libraries and /usr/share/alsa.
# phyllome.sound=play plays /tone.wav (440 Hz, S16_LE, 48 kHz, stereo, 4 s, half of full
# scale) on hw:0,0; phyllome.sound=record records 4 s in that format and writes it to the
# console in base64 between PHYLLOME-SOUND-CAPTURE-BEGIN and -END lines (the kernel's own
# messages are silenced first so that none lands in it); phyllome.sound=duplex does both at
# once. Each prints PHYLLOME-SOUND-...-START and -END lines, the latter with aplay's or
# arecord's exit status, and the guest's uptime at each.
if [ -n "$SOUND" ]; then
  fetch_kernel backports linux-image-amd64/bookworm-backports
fi
if [ -n "$SOUND" ] && [ ! -f sound-initrd.cpio ]; then
  need aplay; need arecord
  root=$(mktemp -d)
  kernel_module_root backports "$root" virtio_snd
  for tool in aplay arecord; do
    cp "$(command -v $tool)" "$root/usr/bin/$tool"
    ldd "$(command -v $tool)" | grep -o '/[^ ]*' | while read -r lib; do
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  done
  mkdir -p "$root/usr/share"
  cp -r /usr/share/alsa "$root/usr/share/alsa"
  /usr/bin/python3 - "$root/tone.wav" <<'TONE'
import math, struct, sys, wave
rate, seconds, freq, amplitude = 48000, 4, 440.0, 16384
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(2)
    w.setsampwidth(2)
    w.setframerate(rate)
    frames = bytearray()
    for i in range(rate * seconds):
        v = round(amplitude * math.sin(2 * math.pi * freq * i / rate))
        frames += struct.pack("<hh", v, v)
    w.writeframes(bytes(frames))
TONE
  cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m || echo "PHYLLOME-INSMOD-FAILED $m"; done
up() { cut -d' ' -f1 /proc/uptime; }
for i in $(seq 50); do [ -e /dev/snd/pcmC0D0p ] || [ -e /dev/snd/pcmC0D0c ] && break; sleep 0.1; done
echo "PHYLLOME-SOUND-CARD=$(head -n 1 /proc/asound/cards 2>/dev/null)"
sed 's/^/PHYLLOME-SOUND-PCM=/' /proc/asound/pcm 2>/dev/null
echo "PHYLLOME-SOUND-DEVICES=$(ls /dev/snd 2>/dev/null | tr '\n' ' ')"
play() {
  echo "PHYLLOME-SOUND-PLAY-START at $(up)"
  aplay -q -D hw:0,0 /tone.wav
  echo "PHYLLOME-SOUND-PLAY-END status=$? at $(up)"
}
record() {
  echo "PHYLLOME-SOUND-RECORD-START at $(up)"
  arecord -q -D hw:0,0 -f S16_LE -r 48000 -c 2 -d 4 -t raw /tmp/capture.raw
  echo "PHYLLOME-SOUND-RECORD-END status=$? bytes=$(wc -c < /tmp/capture.raw) at $(up)"
}
send_capture() {
  echo 1 > /proc/sys/kernel/printk
  echo PHYLLOME-SOUND-CAPTURE-BEGIN
  base64 /tmp/capture.raw
  echo PHYLLOME-SOUND-CAPTURE-END
}
case "$(sed -n 's/.*phyllome\.sound=\([a-z]*\).*/\1/p' /proc/cmdline)" in
play) play ;;
record) record; send_capture ;;
duplex) play & record; wait; send_capture ;;
*) echo "PHYLLOME-SOUND-NO-TASK: phyllome.sound= play, record or duplex" ;;
esac
echo "PHYLLOME-SOUND-DONE at $(up)"
poweroff -f
INIT
  chmod +x "$root/init"
  make_cpio "$root" sound-initrd.cpio
  rm -rf "$root"
fi

echo "$CACHE" >&3
