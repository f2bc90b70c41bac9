#!/usr/bin/env bash
# Runs kiln's cgroup v2 checks in a virtual machine: this host (and CI's) boots with cgroup v1,
# so the v2 paths (root's limits, a rootless user's delegated subtree, the v2 freezer and
# stats, the warning without delegation) can only be exercised in a guest whose kernel mounts
# cgroup2 with the memory, cpu and pids controllers.
#
#   scripts/cgroup2-vm.sh [KILN_BINARY]       (default: target/release/kiln)
#
# The guest: Debian bookworm (debootstrap with linux-image-amd64, uidmap, busybox-static), a
# user `kilntest` with a 65536-wide subordinate range. Its disk is made once and cached in
# /var/tmp/kiln-fixtures/cache/cgroup2-vm-HASH (about 2.5 min and 90 MB of downloads from
# the Debian mirror); every run boots it with `-snapshot` (the cached disk is never written)
# and a second, small disk holding this run's kiln, the busybox image and
# scripts/cgroup2-vm-guest.sh, which does the checks as root and as kilntest and prints
# `CHECK <name>: ok|FAIL ...` lines and `KILN-VM-RESULT: PASS|FAIL`. This script prints the
# guest's console and exits 0 only on PASS.
#
# QEMU runs with TCG (software emulation): the KVM this machine offers is nested, and a guest
# kernel hangs on it right after decompression. A run takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=1

die() { echo "cgroup2-vm.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, mkfs.ext4 -d of root-owned files)"
for c in qemu-system-x86_64:qemu-system-x86 debootstrap:debootstrap mkfs.ext4:e2fsprogs; do
  PATH="$PATH:/usr/sbin:/sbin" command -v "${c%%:*}" >/dev/null ||
    die "${c%%:*} is missing: apt-get install ${c##*:} (or bash scripts/install-deps.sh)"
done

kiln=$(realpath "${1:-target/release/kiln}")
[ -x "$kiln" ] || die "no kiln binary at $kiln (cargo build --release)"

# What the cached disk is made of; the cache is keyed by its hash, so a change here makes a
# new disk.
packages=linux-image-amd64,initramfs-tools,kmod,uidmap,busybox-static,util-linux
# PID 1: the basic mounts, then the run's own init from the second disk.
vm_init='#!/bin/sh
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sys /sys 2>/dev/null
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /kiln-test
mount -o ro /dev/vdb /kiln-test || { echo "KILN-VM-RESULT: FAIL no payload disk"; echo o >/proc/sysrq-trigger; }
exec /bin/sh /kiln-test/init.sh
'
key=$(printf '%s\n%s\n%s\n' "$VERSION" "$packages" "$vm_init" | sha256sum | cut -c1-12)
cache=/var/tmp/kiln-fixtures/cache/cgroup2-vm-$key
mkdir -p "$(dirname "$cache")"
exec 9>"$(dirname "$cache")/cgroup2-vm.lock"
flock 9   # one run makes the disk; a concurrent one waits and uses it
if [ ! -f "$cache/disk.img" ]; then
  stage=$(mktemp -d "$cache.XXXXXX")
  trap 'rm -rf --one-file-system "$stage"' EXIT
  echo "cgroup2-vm.sh: making the guest's disk (debootstrap bookworm; cached in $cache)" >&2
  # Signed by Debian's archive key (the host's keyring), never unverified.
  debootstrap --variant=minbase --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    --include="$packages" \
    bookworm "$stage/root" "${MIRROR:-http://deb.debian.org/debian}" >"$stage/debootstrap.log" 2>&1 || {
    tail -20 "$stage/debootstrap.log" >&2
    die "debootstrap failed (log above)"
  }
  chroot "$stage/root" useradd -m -s /bin/sh kilntest
  grep -q '^kilntest:100000:65536$' "$stage/root/etc/subuid" || die "useradd gave kilntest no subuid range"
  printf '%s' "$vm_init" >"$stage/root/sbin/kiln-vm-init"
  chmod 755 "$stage/root/sbin/kiln-vm-init"
  cp "$stage/root"/boot/vmlinuz-* "$stage/vmlinuz"
  cp "$stage/root"/boot/initrd.img-* "$stage/initrd.img"
  rm -rf "$stage/root/var/cache/apt/archives"/*.deb
  mkfs.ext4 -q -F -L kiln-vm -d "$stage/root" "$stage/disk.img" 2G
  rm -rf --one-file-system "$stage/root" "$stage/debootstrap.log"
  rm -rf "$cache"
  mv "$stage" "$cache"
  trap - EXIT
fi
exec 9>&-

run=$(mktemp -d /var/tmp/kiln-cgroup2-vm.XXXXXX)
trap 'rm -rf "$run"' EXIT
mkdir "$run/payload"
cp "$kiln" "$run/payload/kiln"
bash scripts/make-busybox-image.sh "$run/payload/busybox.tar" >/dev/null
cp scripts/cgroup2-vm-guest.sh "$run/payload/init.sh"
mkfs.ext4 -q -F -d "$run/payload" "$run/payload.img" 512M

echo "cgroup2-vm.sh: booting the guest (TCG)" >&2
status=0
TMPDIR=$run timeout "${VM_TIMEOUT:-900}" qemu-system-x86_64 -accel tcg,thread=multi -cpu max \
  -m 2048 -smp 2 -nographic -no-reboot -net none -snapshot \
  -kernel "$cache/vmlinuz" -initrd "$cache/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 quiet loglevel=3 panic=-1 init=/sbin/kiln-vm-init" \
  -drive "file=$cache/disk.img,format=raw,if=virtio" \
  -drive "file=$run/payload.img,format=raw,if=virtio" \
  </dev/null >"$run/console.log" 2>&1 || status=$?
# The console, without the firmware's terminal escapes.
sed -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' -e 's/\r$//' "$run/console.log" >"$run/console.txt"
cat "$run/console.txt"
[ "$status" = 0 ] || die "qemu exited with $status (124: the guest did not power off in time)"
grep -q '^KILN-VM-RESULT: PASS' "$run/console.txt" || die "the guest's checks failed (console above)"
echo "cgroup2-vm.sh: PASS" >&2
