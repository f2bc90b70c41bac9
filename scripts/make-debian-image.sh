#!/usr/bin/env bash
# Makes a Debian bookworm image (debootstrap --variant=minbase) as a docker-archive.
#
#   scripts/make-debian-image.sh OUT.tar [TAG]     (TAG defaults to localhost/debian:bookworm)
#
# The root filesystem is built once and cached in /var/cache/kiln-test (KILN_TEST_CACHE
# overrides); later runs only repack it. The mirror is the one the host's apt uses
# (MIRROR overrides). The layer tar is sorted with numeric owners and no access/change times,
# so the same cached root gives the same image.
set -euo pipefail

out=${1:?usage: make-debian-image.sh OUT.tar [TAG]}
tag=${2:-localhost/debian:bookworm}
cache=${KILN_TEST_CACHE:-/var/cache/kiln-test}
suite=bookworm
epoch=${SOURCE_DATE_EPOCH:-0}

host_mirror() {
  local m=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
    m=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

command -v debootstrap >/dev/null || { echo "make-debian-image.sh: apt-get install debootstrap" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "make-debian-image.sh: debootstrap needs root" >&2; exit 1; }

mkdir -p "$cache"
rootfs_tar=$cache/debian-$suite-minbase-rootfs.tar
if [ ! -s "$rootfs_tar" ]; then
  mirror=${MIRROR:-$(host_mirror)}
  stage=$(mktemp -d "$cache/stage.XXXXXX")
  trap 'rm -rf "$stage"' EXIT
  echo "make-debian-image.sh: debootstrap $suite from $mirror (cached in $cache afterwards)" >&2
  debootstrap --variant=minbase "$suite" "$stage/root" "$mirror" >"$stage/debootstrap.log" 2>&1 || {
    tail -20 "$stage/debootstrap.log" >&2
    exit 1
  }
  rm -rf "$stage/root/var/cache/apt/archives/"*.deb "$stage/root/var/lib/apt/lists/"* \
    "$stage/root/var/log/"*.log "$stage/root/var/cache/ldconfig/aux-cache"
  rm -rf "$stage/root/dev/"* "$stage/root/proc/"* "$stage/root/sys/"* "$stage/root/tmp/"*
  (cd "$stage/root" && tar --sort=name --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    --clamp-mtime --mtime=@"$epoch" -cf "$stage/rootfs.tar" .) 2>/dev/null ||
  (cd "$stage/root" && tar --sort=name --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -cf "$stage/rootfs.tar" .)
  mv "$stage/rootfs.tar" "$rootfs_tar.tmp"
  mv "$rootfs_tar.tmp" "$rootfs_tar"
  rm -rf "$stage"
  trap - EXIT
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/archive/blobs/sha256"
layer_hex=$(sha256sum "$rootfs_tar" | cut -d' ' -f1)
cp "$rootfs_tar" "$work/archive/blobs/sha256/$layer_hex"
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
printf '{"architecture":"%s","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["bash"]},"created":"%s","history":[{"created":"%s","created_by":"kiln scripts/make-debian-image.sh (debootstrap --variant=minbase %s)"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$arch" "$created" "$created" "$suite" "$layer_hex" >"$work/config.json"
config_hex=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/archive/blobs/sha256/$config_hex"
printf '[{"Config":"blobs/sha256/%s","RepoTags":["%s"],"Layers":["blobs/sha256/%s"]}]' \
  "$config_hex" "$tag" "$layer_hex" >"$work/archive/manifest.json"
chmod 0644 "$work/archive/manifest.json" "$work/archive/blobs/sha256/"*
(cd "$work/archive" && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
  -cf "$work/out.tar" manifest.json blobs)
mv "$work/out.tar" "$out"
echo "sha256:$config_hex"
