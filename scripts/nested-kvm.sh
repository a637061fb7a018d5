#!/usr/bin/env bash
# Runs phyllome-vmm on real KVM, nested: QEMU's software emulation (TCG, -cpu max, which
# emulates AMD SVM) boots Debian's generic kernel as L1, loads kvm-amd there, and runs
# phyllome-vmm inside L1 to boot an L2 Linux. QEMU's console (L1's serial, which carries
# phyllome-vmm's output and so L2's serial) goes to stdout.
#
#   nested-kvm.sh VMM_BINARY L2_KERNEL L2_INITRD [VMM ARGS...]
#
# The VMM arguments follow `phyllome-vmm run --kernel /l2/kernel --initrd /l2/initrd`.
# PHYLLOME_NESTED_SETUP and PHYLLOME_NESTED_CHECK are shell lines L1 runs before and after
# the VMM (to make disk images, and to look at them afterwards).
# PHYLLOME_NESTED_FILES lists more host files to copy into L1's /l2/ (by their names), and
# PHYLLOME_NESTED_BOOT replaces `--kernel /l2/kernel --initrd /l2/initrd` (firmware boots:
# give "-" as L2_KERNEL and L2_INITRD). PHYLLOME_NESTED_ICOUNT=N (1 or 2) runs L1 on N vCPUs
# under QEMU's -icount, round-robin on one host thread: QEMU 10.0's multi-threaded TCG aborts ("tcg_handle_interrupt: assertion
# failed: (bql_locked())") when an L2 writes CR8 while L1's KVM has a virtual interrupt
# pending, which OVMF's interrupt return path does.
# L1 prints PHYLLOME-L1-KVM-READY once /dev/kvm exists, and PHYLLOME-VMM-EXIT=<status>.
# PHYLLOME_NESTED_MODULES names more of L1's kernel modules to load after kvm-amd (the
# network test's dummy interface, which passt needs as its way out).
# PHYLLOME_NESTED_BINS lists more host programs to copy into L1's /bin/ with the shared
# libraries they link, and PHYLLOME_NESTED_RUN, when set, is the shell text L1 runs in
# place of the VMM line (the firmware benchmark runs QEMU and phyllome-vmm in turn there).
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 VMM_BINARY L2_KERNEL L2_INITRD [VMM ARGS...]" >&2; exit 2; }
vmm=$1 l2_kernel=$2 l2_initrd=$3; shift 3
assets=$("$(dirname "$0")/guest-assets.sh" | tail -n 1)
[ -d "$assets" ] || { echo "guest-assets.sh did not name its asset folder (it said '$assets')" >&2; exit 1; }
l1=$assets/kernels/generic
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,proc,sys,dev,tmp,l2,lib/modules,lib64}
cp /bin/busybox "$root/bin/busybox"
for a in sh mount insmod poweroff echo cat dd grep printf sleep base64 cmp wc; do ln -s busybox "$root/bin/$a"; done

# kvm-amd and what it needs, in dependency order (and any more modules asked for).
"$(dirname "$0")/module-order.py" "$l1/modules" irqbypass kvm ccp kvm_amd ${PHYLLOME_NESTED_MODULES:-} > "$root/modules.order"
while read -r m; do
  mkdir -p "$root/lib/modules/$(dirname "$m")"
  cp "$l1/modules/$m" "$root/lib/modules/$m"
done < "$root/modules.order"

# The VMM (and any other programs asked for) with the shared libraries they link.
with_libs() {
  ldd "$1" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}
cp "$vmm" "$root/phyllome-vmm"
with_libs "$vmm"
for b in ${PHYLLOME_NESTED_BINS:-}; do
  cp "$b" "$root/bin/"
  with_libs "$b"
done
[ "$l2_kernel" = - ] || cp "$l2_kernel" "$root/l2/kernel"
[ "$l2_initrd" = - ] || cp "$l2_initrd" "$root/l2/initrd"
for f in ${PHYLLOME_NESTED_FILES:-}; do cp "$f" "$root/l2/"; done
boot=${PHYLLOME_NESTED_BOOT:---kernel /l2/kernel --initrd /l2/initrd}

# PHYLLOME_NESTED_INTERACTIVE=1 lets what is typed reach the L2 guest (the demo).
stdin="</dev/null"
[ "${PHYLLOME_NESTED_INTERACTIVE:-0}" = 1 ] && stdin=""
args=""
for a in "$@"; do args="$args '${a//\'/}'"; done
run="/phyllome-vmm run $boot $args $stdin
echo PHYLLOME-VMM-EXIT=\$?"
[ -n "${PHYLLOME_NESTED_RUN:-}" ] && run=$PHYLLOME_NESTED_RUN
cat > "$root/init" <<INIT
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in \$(cat /modules.order); do insmod /lib/modules/\$m || echo "PHYLLOME-L1-INSMOD-FAILED \$m"; done
if [ ! -e /dev/kvm ]; then echo PHYLLOME-L1-NO-KVM; poweroff -f; fi
echo PHYLLOME-L1-KVM-READY
${PHYLLOME_NESTED_SETUP:-}
$run
${PHYLLOME_NESTED_CHECK:-}
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | LC_ALL=C sort | /bin/busybox cpio -o -H newc 2>/dev/null) > "$work/l1.cpio"

cpus=(-accel tcg,thread=multi -smp 2)
case "${PHYLLOME_NESTED_ICOUNT:-0}" in
  1|2) cpus=(-accel tcg -smp "$PHYLLOME_NESTED_ICOUNT" -icount shift=0,sleep=off) ;;
esac
# QEMU takes the place of this shell (so that whoever stops the script stops QEMU), which
# would leave the work folder behind: keep the initramfs open, remove the folder, and let
# QEMU read the initramfs through the open descriptor.
exec 3<"$work/l1.cpio"
rm -rf "$work"
trap - EXIT
exec qemu-system-x86_64 "${cpus[@]}" -cpu max -m 2048 \
  -nodefaults -display none -serial stdio -no-reboot \
  -kernel "$l1/vmlinuz" -initrd /dev/fd/3 \
  -append "console=ttyS0 panic=-1 loglevel=3"
