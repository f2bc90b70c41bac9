#!/usr/bin/env bash
# Makes a multi-platform busybox image as an OCI archive (oci-layout, index.json, blobs/; what
# `skopeo copy oci-archive:OUT` and `kiln load -i OUT` read), from Debian's busybox-static of
# each architecture, with the same bytes on every run.
#
#   scripts/make-multiplatform-busybox.sh OUT.tar [TAG]     (TAG defaults to localhost/busybox:latest)
#
# Platforms: linux/amd64, linux/arm64/v8 and linux/arm/v7 (Debian's amd64, arm64 and armhf
# packages). linux/riscv64 is left out: Debian 12 (bookworm) has no riscv64 in its main archive
# (it is a release architecture from Debian 13 on).
#
# Each platform's tree is scripts/make-busybox-image.sh's (BUSYBOX= the package's binary), so the
# amd64 layer is byte for byte the single-platform image's layer. The applets are listed by
# running that platform's busybox (natively or through a QEMU binfmt_misc handler); when it
# cannot run here, the host's busybox lists them instead, and only when it is the same package
# version (the applet set is then the same: Debian builds busybox-static with one config).
#
# Layout: index.json has one descriptor, the image index (ref name "latest"-style tag and
# io.containerd.image.name TAG), which lists one manifest per platform with its platform
# (os, architecture, variant); each config carries os/architecture/variant too. Layers are
# gzip -n, every tar is sorted with fixed owners and mtimes: the output depends only on the
# three .deb files, TAG and SOURCE_DATE_EPOCH (default 0, the configs' created time).
#
# The .debs are cached in DEBS (default /var/tmp/kiln-fixtures/debs); missing ones are fetched
# with `apt-get download busybox-static:ARCH` (needs the foreign architectures in dpkg and an
# `apt-get update` after adding them: scripts/install-deps.sh does both as root).
set -euo pipefail

out=${1:?usage: make-multiplatform-busybox.sh OUT.tar [TAG]}
tag=${2:-localhost/busybox:latest}
debs=${DEBS:-/var/tmp/kiln-fixtures/debs}
epoch=${SOURCE_DATE_EPOCH:-0}
here=$(cd "$(dirname "$0")" && pwd)

# Debian architecture -> OCI architecture and variant (containerd's normal forms; arm64 carries
# v8 as Docker Hub's official images do).
platforms=("amd64 amd64 -" "arm64 arm64 v8" "armhf arm v7")

for cmd in jq dpkg-deb gzip tar sha256sum; do
  command -v "$cmd" >/dev/null || { echo "make-multiplatform-busybox.sh: needs $cmd (bash scripts/install-deps.sh ci)" >&2; exit 1; }
done
case "$tag" in
  *@*) echo "make-multiplatform-busybox.sh: TAG must be a name:tag, not a digest: $tag" >&2; exit 2 ;;
esac
last=${tag##*/}
case "$last" in *:*) ref_name=${last##*:} ;; *) ref_name=latest; tag=$tag:latest ;; esac

mkdir -p "$debs"
deb_of() { # the cached .deb of busybox-static for a Debian architecture (newest version if several)
  local f
  f=$(find "$debs" -maxdepth 1 -name "busybox-static_*_$1.deb" | LC_ALL=C sort -V | tail -n 1)
  [ -n "$f" ] && printf '%s\n' "$f"
}
for p in "${platforms[@]}"; do
  read -r darch _ _ <<<"$p"
  [ -n "$(deb_of "$darch")" ] && continue
  echo "make-multiplatform-busybox.sh: fetching busybox-static:$darch into $debs" >&2
  # apt downloads as the _apt user: into a directory it may write, then moved into the cache.
  dl=$(mktemp -d /var/tmp/kiln-mpbb-dl.XXXXXX)
  if id _apt >/dev/null 2>&1; then chown _apt "$dl" 2>/dev/null || true; fi
  if ! (cd "$dl" && apt-get download -q "busybox-static:$darch" >&2); then
    rm -rf "$dl"
    {
      echo "make-multiplatform-busybox.sh: could not download busybox-static:$darch."
      echo "  The architecture must be known to dpkg and apt (as root):"
      echo "  bash $here/install-deps.sh ci     (dpkg --add-architecture arm64 armhf; apt-get update)"
    } >&2
    exit 1
  fi
  mv "$dl"/busybox-static_*_"$darch".deb "$debs"/ 2>/dev/null || true
  rm -rf "$dl"
  [ -n "$(deb_of "$darch")" ] || { echo "make-multiplatform-busybox.sh: apt-get download left no busybox-static_*_$darch.deb in $debs" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/kiln-mpbb.XXXXXX)
trap 'rm -rf "$work"' EXIT
oci=$work/oci
mkdir -p "$oci/blobs/sha256"

# put FILE: moves FILE into the blob store, prints "sha256:HEX SIZE"
put() {
  local hex size
  hex=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  mv "$1" "$oci/blobs/sha256/$hex"
  echo "sha256:$hex $size"
}

version=""
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
host_bb=/bin/busybox
entries=()
for p in "${platforms[@]}"; do
  read -r darch arch variant <<<"$p"
  [ "$variant" = - ] && variant=""
  deb=$(deb_of "$darch")
  v=$(dpkg-deb -f "$deb" Version)
  [ -z "$version" ] && version=$v
  if [ "$v" != "$version" ]; then
    echo "make-multiplatform-busybox.sh: $deb is version $v, the others $version; one version for every platform (delete the old .deb in $debs)" >&2
    exit 1
  fi
  x=$work/deb-$darch
  dpkg-deb -x "$deb" "$x"
  bb=$x/bin/busybox
  lister=$bb
  if ! "$bb" --list >/dev/null 2>&1; then
    # Not runnable here (foreign, no binfmt handler): the host's busybox of the same version.
    hv=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || true)
    if [ "$hv" != "$version" ] || ! "$host_bb" --list >/dev/null 2>&1; then
      {
        echo "make-multiplatform-busybox.sh: cannot run the $darch busybox to list its applets."
        echo "  Either register QEMU's binfmt handlers (bash $here/install-deps.sh ci) or install"
        echo "  busybox-static $version for this machine (installed: ${hv:-none})."
      } >&2
      exit 1
    fi
    lister=$host_bb
  fi
  BUSYBOX=$bb BUSYBOX_LIST=$lister SOURCE_DATE_EPOCH=$epoch \
    bash "$here/make-busybox-image.sh" "$work/$darch.docker.tar" "$tag" >/dev/null
  mkdir -p "$work/da-$darch"
  tar -xf "$work/$darch.docker.tar" -C "$work/da-$darch"
  layer_rel=$(jq -r '.[0].Layers[0]' "$work/da-$darch/manifest.json")
  layer=$work/da-$darch/$layer_rel
  diff_id=sha256:$(sha256sum "$layer" | cut -d' ' -f1)
  gzip -n -9 -c "$layer" >"$work/layer.tar.gz"
  read -r ldig lsize < <(put "$work/layer.tar.gz")

  jq -jcnS --arg arch "$arch" --arg variant "$variant" --arg created "$created" --arg d "$diff_id" \
    --arg by "kiln scripts/make-multiplatform-busybox.sh (busybox-static $version $darch)" '{
      architecture: $arch, os: "linux", created: $created,
      config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["sh"] },
      rootfs: { type: "layers", diff_ids: [$d] },
      history: [ { created: $created, created_by: $by } ]
    } + (if $variant == "" then {} else {variant: $variant} end)' >"$work/config.json"
  read -r cdig csize < <(put "$work/config.json")

  jq -jcn --arg c "$cdig" --argjson cs "$csize" --arg l "$ldig" --argjson ls "$lsize" '{
    schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
    layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls}]
  }' >"$work/manifest.json"
  read -r mdig msize < <(put "$work/manifest.json")
  entries+=("$(jq -cn --arg m "$mdig" --argjson s "$msize" --arg arch "$arch" --arg variant "$variant" '{
    mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $s,
    platform: ({architecture: $arch, os: "linux"} + (if $variant == "" then {} else {variant: $variant} end))
  }')")
done

printf '%s\n' "${entries[@]}" | jq -jcs '{
  schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: .
}' >"$work/index-blob.json"
read -r idig isize < <(put "$work/index-blob.json")
jq -cn --arg i "$idig" --argjson s "$isize" --arg t "$tag" --arg r "$ref_name" '{
  schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
  manifests: [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $i, size: $s,
               annotations: {"io.containerd.image.name": $t, "org.opencontainers.image.ref.name": $r}}]
}' >"$oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
chmod 0644 "$oci/index.json" "$oci/oci-layout" "$oci/blobs/sha256/"*
chmod 0755 "$oci" "$oci/blobs" "$oci/blobs/sha256"

(cd "$oci" && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
  --no-acls --no-xattrs --no-selinux -cf "$work/out.tar" oci-layout index.json blobs)
mv "$work/out.tar" "$out"
echo "$idig"
