#!/usr/bin/env bash
# Installs the Debian 12 packages that kiln's demo, tests and CI need, when any is missing.
# Instant when everything is there (one dpkg query, no apt). Needs root to install; otherwise
# it prints the exact command to run and exits 1.
#
#   bash scripts/install-deps.sh [demo|tests|ci]     (default: tests)
#
#   demo   busybox-static (the demo's base image is made from it), python3 (it fetches the page
#          of the container it runs)
#   tests  the README's test command: demo's, plus runc (external runtime), skopeo and umoci
#          (interop), docker.io (`docker load` interop), git (git contexts), e2fsprogs
#          (a full-disk test formats a small ext4 image), passt (pasta: a container's outbound
#          network, kiln-net's tests), chromium (the HTML report rendered headless),
#          docker-registry (distribution 2.8, the registry tests start), apache2-utils
#          (htpasswd for its basic auth), tini (`kiln run --init`'s init, tini-static),
#          qemu-user-static (foreign-platform RUN steps, docs/platforms.md), jq and file
#          (scripts/make-multiplatform-busybox.sh and its test), uidmap (newuidmap/newgidmap:
#          rootless kiln and its tests), fuse-overlayfs (its fallback), libcap2-bin (setcap: kiln's own image,
#          scripts/kiln-image.sh), debootstrap (the tutorial's node and nginx bases,
#          ../shared/fixtures/make-base-images.sh, and the cgroup v2 VM's disk), qemu-system-x86
#          (the cgroup v2 VM, scripts/cgroup2-vm.sh: this host has cgroup v1); wrk (200 concurrent
#          connections through a published port, cli_run_load), curl, iproute2 (ss: listening
#          sockets) and chromium (the tutorial's app served by `kiln run`, scripts/tutorial-e2e.sh);
#          hyperfine, crun and strace (bench/run.sh); nftables (nft: published ports through
#          the kernel, kiln-net's KernelPorts, cli_run_dnat); and the multi-platform setup below
#   ci     tests', plus what the BuildKit conformance suite uses: jq (its base image
#          script), python3 (imgdiff.py), zstd, file, sqlite3, ca-certificates
#
# Multi-platform setup (tests and ci): the foreign dpkg architectures arm64 and armhf; Debian's
# busybox-static .deb of amd64, arm64 and armhf in /var/tmp/kiln-fixtures/debs (the multi-platform
# base image is made from them, scripts/make-multiplatform-busybox.sh); binfmt_misc mounted and
# QEMU's handlers (/usr/lib/binfmt.d/qemu-*.conf) registered. The package registers them through
# systemd-binfmt; where systemd is not running this script does what systemd-binfmt does: it
# writes each missing handler's line to /proc/sys/fs/binfmt_misc/register. Handlers already
# there are left alone. One `apt-get update` at most, and none when nothing is missing.
#
# Concurrent runs (parallel test binaries) wait on one lock; the second finds nothing missing.
set -euo pipefail

profile=${1:-tests}
demo=(busybox-static python3)
tests=("${demo[@]}" runc skopeo umoci docker.io git e2fsprogs passt chromium docker-registry apache2-utils tini
  qemu-user-static jq file uidmap fuse-overlayfs libcap2-bin debootstrap qemu-system-x86
  wrk hyperfine crun curl iproute2 strace nftables)
ci=("${tests[@]}" python3 zstd sqlite3 ca-certificates)
platforms=1
case "$profile" in
  demo) want=("${demo[@]}"); platforms=0 ;;
  tests) want=("${tests[@]}") ;;
  ci) want=("${ci[@]}") ;;
  *) echo "install-deps.sh: unknown profile '$profile' (demo, tests or ci)" >&2; exit 2 ;;
esac
# The multi-platform setup: foreign architectures, the busybox-static .debs, binfmt handlers.
foreign_archs=(arm64 armhf)
debs_dir=${DEBS:-/var/tmp/kiln-fixtures/debs}
deb_archs=(amd64 arm64 armhf)
binfmt=/proc/sys/fs/binfmt_misc

# The command that counts as the package being there when another package provides it
# (docker-ce's dockerd and containerd.io's runc conflict with docker.io and runc).
provides() {
  case "$1" in
    docker.io) echo dockerd ;;
    runc) echo runc ;;
    skopeo) echo skopeo ;;
    umoci) echo umoci ;;
    git) echo git ;;
    jq) echo jq ;;
    python3) echo python3 ;;
    e2fsprogs) echo mkfs.ext4 ;;
    passt) echo pasta ;;
    docker-registry) echo docker-registry ;;
    apache2-utils) echo htpasswd ;;
    tini) echo tini-static ;;
    qemu-user-static) echo qemu-aarch64-static ;;
    qemu-system-x86) echo qemu-system-x86_64 ;;
    file) echo file ;;
    wrk) echo wrk ;;
    hyperfine) echo hyperfine ;;
    crun) echo crun ;;
    curl) echo curl ;;
    iproute2) echo ss ;;
    strace) echo strace ;;
    *) echo "" ;;
  esac
}

missing_packages() {
  local p cmd installed
  # One dpkg-query for all (one per package costs ~15 ms each).
  # dpkg-query exits 1 when one is unknown to dpkg: not a failure here (set -e, pipefail).
  installed=" $({ dpkg-query -W -f='${Package}=${Status}\n' "${want[@]}" 2>/dev/null || true; } |
    sed -n 's/=install ok installed$//p' | tr '\n' ' ') "
  for p in "${want[@]}"; do
    case "$installed" in *" $p "*) continue ;; esac
    cmd=$(provides "$p")
    # sbin is not always on a non-root PATH; the probe should not depend on it.
    if [ -n "$cmd" ] && PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1; then
      continue
    fi
    printf '%s\n' "$p"
  done
}

missing_archs() {
  [ "$platforms" = 1 ] || return 0
  local have a
  have=" $(dpkg --print-foreign-architectures | tr '\n' ' ') "
  for a in "${foreign_archs[@]}"; do
    case "$have" in *" $a "*) ;; *) printf '%s\n' "$a" ;; esac
  done
}

missing_debs() {
  [ "$platforms" = 1 ] || return 0
  local a
  for a in "${deb_archs[@]}"; do
    [ -n "$(find "$debs_dir" -maxdepth 1 -name "busybox-static_*_$a.deb" -size +0 2>/dev/null)" ] || printf '%s\n' "$a"
  done
}

# The QEMU handlers (names as in /usr/lib/binfmt.d/qemu-NAME.conf) not registered yet; every one
# when binfmt_misc is not mounted.
missing_binfmt() {
  [ "$platforms" = 1 ] || return 0
  local conf name
  for conf in /usr/lib/binfmt.d/qemu-*.conf; do
    [ -f "$conf" ] || continue
    name=${conf##*/}; name=${name%.conf}
    [ -e "$binfmt/$name" ] || printf '%s\n' "$name"
  done
}

# /dev/net/tun and /dev/fuse with the mode Debian's udev rules give them (0666): rootless
# pasta attaches its tap device through the one, rootless fuse-overlayfs (kiln's fallback)
# mounts through the other. A machine without udev (a container, a minimal VM) leaves them 0600.
user_devices=(/dev/net/tun /dev/fuse)
devices_not_0666() {
  [ "$profile" = demo ] && return 0
  local d
  for d in "${user_devices[@]}"; do
    [ -c "$d" ] && [ "$(stat -c %a "$d")" != 666 ] && printf '%s\n' "$d"
  done
  return 0
}
tun_ok() {
  [ -z "$(devices_not_0666)" ]
}

check() {
  mapfile -t missing < <(missing_packages)
  mapfile -t archs < <(missing_archs)
  mapfile -t debs < <(missing_debs)
  mapfile -t handlers < <(missing_binfmt)
  [ "${#missing[@]}" = 0 ] && [ "${#archs[@]}" = 0 ] && [ "${#debs[@]}" = 0 ] && [ "${#handlers[@]}" = 0 ] && tun_ok
}

check && exit 0

if [ "$(id -u)" != 0 ]; then
  {
    [ "${#missing[@]}" = 0 ] || echo "install-deps.sh: missing Debian packages: ${missing[*]}"
    [ "${#archs[@]}" = 0 ] || echo "install-deps.sh: dpkg lacks the foreign architectures: ${archs[*]}"
    [ "${#debs[@]}" = 0 ] || echo "install-deps.sh: no busybox-static .deb in $debs_dir for: ${debs[*]}"
    [ "${#handlers[@]}" = 0 ] || echo "install-deps.sh: binfmt_misc handlers not registered: ${handlers[*]}"
    tun_ok || echo "install-deps.sh: not mode 0666 (udev's default), so rootless pasta or fuse-overlayfs cannot use them: $(devices_not_0666 | tr '\n' ' ')"
    echo "run as root:  sudo bash $(cd "$(dirname "$0")" && pwd)/install-deps.sh $profile"
  } >&2
  exit 1
fi

exec 9>/var/lock/kiln-install-deps.lock
flock 9
# Another run may have done it while we waited.
check && exit 0

export DEBIAN_FRONTEND=noninteractive
updated=0
apt_update() {
  [ "$updated" = 1 ] && return 0
  apt-get update -qq >&2
  updated=1
}
for a in "${archs[@]}"; do
  echo "install-deps.sh: dpkg --add-architecture $a" >&2
  dpkg --add-architecture "$a"
done
# A new architecture needs the package lists of that architecture: the one update below.
[ "${#archs[@]}" = 0 ] || apt_update

if [ "${#missing[@]}" != 0 ]; then
  echo "install-deps.sh: installing ${missing[*]}" >&2
  apt_update
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  mapfile -t missing < <(missing_packages)
  if [ "${#missing[@]}" != 0 ]; then
    echo "install-deps.sh: still missing after apt-get install: ${missing[*]}" >&2
    exit 1
  fi
fi

if [ "${#debs[@]}" != 0 ]; then
  mkdir -p "$debs_dir"
  # apt downloads as the _apt user: into a directory it may write, then into the cache.
  dl=$(mktemp -d /var/tmp/kiln-install-deps-dl.XXXXXX)
  if id _apt >/dev/null 2>&1; then chown _apt "$dl"; fi
  names=()
  for a in "${debs[@]}"; do names+=("busybox-static:$a"); done
  # Lists of a foreign architecture added earlier without an update: update once, then retry.
  if ! (cd "$dl" && apt-get download -qq "${names[@]}" >&2); then
    apt_update
    (cd "$dl" && apt-get download -qq "${names[@]}" >&2) || {
      rm -rf "$dl"
      echo "install-deps.sh: apt-get download ${names[*]} failed" >&2
      exit 1
    }
  fi
  mv "$dl"/*.deb "$debs_dir"/
  rm -rf "$dl"
  echo "install-deps.sh: busybox-static for ${debs[*]} in $debs_dir" >&2
fi

# Computed again: before qemu-user-static was installed there were no .conf files to name.
mapfile -t handlers < <(missing_binfmt)
if [ "${#handlers[@]}" != 0 ]; then
  if [ ! -e "$binfmt/register" ]; then
    echo "install-deps.sh: mount -t binfmt_misc binfmt_misc $binfmt" >&2
    mount -t binfmt_misc binfmt_misc "$binfmt"
  fi
  # The package's postinst may have registered them through systemd-binfmt meanwhile.
  mapfile -t handlers < <(missing_binfmt)
  for name in "${handlers[@]}"; do
    # What systemd-binfmt does: each line that is not a comment, written to register.
    grep -v -e '^[#;]' -e '^[[:space:]]*$' "/usr/lib/binfmt.d/$name.conf" | while IFS= read -r line; do
      printf '%s' "$line" >"$binfmt/register"
    done
  done
  [ "${#handlers[@]}" = 0 ] || echo "install-deps.sh: registered binfmt_misc handlers: ${handlers[*]}" >&2
fi

for d in $(devices_not_0666); do
  echo "install-deps.sh: chmod 0666 $d (as Debian's udev rules set it)" >&2
  chmod 0666 "$d"
done

if ! check; then
  echo "install-deps.sh: still missing: packages (${missing[*]}) architectures (${archs[*]}) debs (${debs[*]}) handlers (${handlers[*]})" >&2
  exit 1
fi
