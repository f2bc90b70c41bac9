#!/usr/bin/env bash
# Tests scripts/make-multiplatform-busybox.sh: the same bytes twice; skopeo reads the index with
# the three platforms; each platform's manifest unpacks with umoci, its config says the platform,
# its busybox is that architecture's and runs (natively or through QEMU's binfmt_misc handler,
# `uname -m` as the platform expects); `skopeo copy --all` copies every platform.
#
#   bash scripts/test-multiplatform-busybox.sh      (root: umoci unpack, chroot)
#
# A missing prerequisite (root, skopeo, umoci, jq, a QEMU handler) fails the test and says which.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "test-multiplatform-busybox: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (umoci unpack keeps owners; chroot)"
for cmd in skopeo umoci jq file chroot; do
  command -v "$cmd" >/dev/null || fail "needs $cmd (bash scripts/install-deps.sh ci)"
done
for h in qemu-aarch64 qemu-arm; do
  [ "$(head -n 1 "/proc/sys/fs/binfmt_misc/$h" 2>/dev/null)" = enabled ] ||
    fail "no enabled binfmt_misc handler $h (bash scripts/install-deps.sh ci registers QEMU's)"
done

work=$(mktemp -d /var/tmp/kiln-mpbb-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
checks=0
ok() { checks=$((checks + 1)); echo "ok $*"; }

bash "$here/make-multiplatform-busybox.sh" "$work/a.tar" localhost/mpbb:v1 >"$work/a.digest"
SOURCE_DATE_EPOCH=0 bash "$here/make-multiplatform-busybox.sh" "$work/b.tar" localhost/mpbb:v1 >"$work/b.digest"
cmp "$work/a.tar" "$work/b.tar" || fail "two runs gave different archives"
ok "deterministic: two runs, same bytes ($(cut -c1-19 "$work/a.digest"))"

raw=$(skopeo inspect --raw "oci-archive:$work/a.tar")
[ "sha256:$(printf '%s' "$raw" | sha256sum | cut -d' ' -f1)" = "$(cat "$work/a.digest")" ] ||
  fail "skopeo's index is not the digest the script printed"
got=$(printf '%s' "$raw" | jq -r '.manifests[].platform | [.os, .architecture, .variant // ""] | join("/")' | sed 's#/$##' | tr '\n' ' ')
[ "$got" = "linux/amd64 linux/arm64/v8 linux/arm/v7 " ] || fail "platforms in the index: $got"
ok "skopeo inspect --raw: an index of linux/amd64 linux/arm64/v8 linux/arm/v7"
[ "$(skopeo inspect "oci-archive:$work/a.tar:v1" --override-arch arm64 | jq -r .Architecture)" = arm64 ] ||
  fail "skopeo inspect --override-arch arm64 did not pick the arm64 manifest"
ok "skopeo inspect --override-arch arm64 picks arm64"

# umoci 0.4 cannot pick a platform from an index: a layout whose index.json names each manifest.
mkdir "$work/lay"
tar -xf "$work/a.tar" -C "$work/lay"
idx=$(jq -r '.manifests[0].digest' "$work/lay/index.json")
jq --argjson m "$(jq '[.manifests[] | . + {annotations: {"org.opencontainers.image.ref.name": (.platform.architecture + (.platform.variant // ""))}}]' \
  "$work/lay/blobs/sha256/${idx#sha256:}")" '.manifests = $m' "$work/lay/index.json" >"$work/index.flat"
mv "$work/index.flat" "$work/lay/index.json"
while read -r ref arch variant want_file want_uname; do
  umoci unpack --image "$work/lay:$ref" "$work/u-$ref" >/dev/null 2>"$work/umoci.err" ||
    fail "umoci unpack $ref: $(cat "$work/umoci.err")"
  [ "$variant" = - ] && variant=""
  mdig=$(jq -r --arg r "$ref" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $r) | .digest' "$work/lay/index.json")
  man=$work/lay/blobs/sha256/${mdig#sha256:}
  conf=$work/lay/blobs/sha256/$(jq -r '.config.digest' "$man" | cut -d: -f2)
  [ "$(jq -r '.architecture + "/" + (.variant // "")' "$conf")" = "$arch/$variant" ] ||
    fail "$ref: config says $(jq -c '{architecture, variant, os}' "$conf")"
  [ "$(jq -r .os "$conf")" = linux ] || fail "$ref: config os is not linux"
  bb=$work/u-$ref/rootfs/bin/busybox
  want_file=${want_file//_/ }
  file -b "$bb" | grep -F "$want_file" >/dev/null || fail "$ref: busybox is $(file -b "$bb")"
  u=$(chroot "$work/u-$ref/rootfs" /bin/uname -m) || fail "$ref: chroot uname -m failed"
  [ "$u" = "$want_uname" ] || fail "$ref: uname -m says $u, want $want_uname"
  [ -L "$work/u-$ref/rootfs/bin/sh" ] && [ -f "$work/u-$ref/rootfs/etc/passwd" ] || fail "$ref: tree lacks /bin/sh or /etc/passwd"
  ok "umoci unpack $ref: config $arch${variant:+/$variant}, busybox is $want_file, uname -m = $u"
done <<'EOF'
amd64 amd64 - x86-64 x86_64
arm64v8 arm64 v8 ARM_aarch64 aarch64
armv7 arm v7 ARM,_EABI5 armv7l
EOF

# The amd64 layer is the single-platform image's (scripts/make-busybox-image.sh) layer.
BUSYBOX=$work/u-amd64/rootfs/bin/busybox bash "$here/make-busybox-image.sh" "$work/single.tar" localhost/mpbb:v1 >/dev/null
mkdir "$work/single"
tar -xf "$work/single.tar" -C "$work/single"
single_diff=sha256:$(jq -r '.[0].Layers[0]' "$work/single/manifest.json" | sed 's#^blobs/sha256/##')
amd_conf=$(jq -r '.manifests[] | select(.platform.architecture == "amd64") | .digest' "$work/lay/index.json")
amd_conf=$(jq -r .config.digest "$work/lay/blobs/sha256/${amd_conf#sha256:}")
[ "$(jq -r '.rootfs.diff_ids[0]' "$work/lay/blobs/sha256/${amd_conf#sha256:}")" = "$single_diff" ] ||
  fail "the amd64 layer differs from make-busybox-image.sh's"
ok "amd64 layer = make-busybox-image.sh's layer ($single_diff)"

skopeo copy -q --all "oci-archive:$work/a.tar" "oci:$work/copy:v1" >/dev/null
n=$(jq -r '.manifests[0].digest' "$work/copy/index.json")
[ "$n" = "$(cat "$work/a.digest")" ] || fail "skopeo copy --all changed the index digest ($n)"
[ "$(find "$work/copy/blobs/sha256" -type f | wc -l)" = 10 ] || fail "skopeo copy --all: not 10 blobs (index, 3 x manifest+config+layer)"
ok "skopeo copy --all: same index digest, every blob"
echo "test-multiplatform-busybox: $checks checks passed"
