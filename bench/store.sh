#!/usr/bin/env bash
# Load and save of a ~500 MB image: kiln against `skopeo copy` between the same formats,
# measured in the same run (hyperfine when installed, else a plain timing loop).
#
#   bench/store.sh [RUNS]          KILN=path/to/kiln overrides the binary (default: release build)
#
# The image is one ~470 MB layer (a tar of /usr/bin) in a docker-archive. Compared:
#   load:      kiln load -i docker-archive        vs  skopeo copy docker-archive: -> oci: (a layout dir)
#   save:      kiln save -o docker-archive        vs  skopeo copy oci: -> docker-archive:
#   save oci:  kiln save --format oci -o archive  vs  skopeo copy oci: -> oci-archive:
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
kiln=${KILN:-}
if [ -z "$kiln" ]; then
  cargo build --release -q -p kiln
  kiln=${CARGO_TARGET_DIR:-target}/release/kiln
fi
command -v skopeo >/dev/null || { echo "bench/store.sh: apt-get install skopeo" >&2; exit 1; }

work=$(mktemp -d /var/tmp/kiln-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "making the image in $work ..." >&2
mkdir -p "$work/a/blobs/sha256"
(cd /usr && tar --sort=name --mtime=@0 --numeric-owner --format=gnu -cf "$work/layer.tar" bin)
lhex=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
mv "$work/layer.tar" "$work/a/blobs/sha256/$lhex"
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$lhex" >"$work/config.json"
chex=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/a/blobs/sha256/$chex"
printf '[{"Config":"blobs/sha256/%s","RepoTags":["localhost/big:latest"],"Layers":["blobs/sha256/%s"]}]' "$chex" "$lhex" >"$work/a/manifest.json"
(cd "$work/a" && tar -cf "$work/big.tar" manifest.json blobs)
rm -rf "$work/a"
ls -l "$work/big.tar" >&2

export KILN_ROOT=$work/root
"$kiln" load -i "$work/big.tar" >/dev/null
skopeo copy -q docker-archive:"$work/big.tar" oci:"$work/layout:big" >/dev/null

if command -v hyperfine >/dev/null; then
  hyperfine --runs "$runs" --style basic --export-markdown "$work/result.md" \
    --prepare "rm -rf $work/r2 $work/l2" \
    -n "kiln load (docker-archive)" "KILN_ROOT=$work/r2 $kiln load -i $work/big.tar" \
    -n "skopeo copy docker-archive -> oci" "skopeo copy -q docker-archive:$work/big.tar oci:$work/l2:big" \
    -n "kiln save (docker-archive)" "$kiln save -o $work/out.tar localhost/big" \
    -n "skopeo copy oci -> docker-archive" "rm -f $work/out.tar; skopeo copy -q oci:$work/layout:big docker-archive:$work/out.tar:localhost/big:latest" \
    -n "kiln save --format oci" "$kiln save --format oci -o $work/out-oci.tar localhost/big" \
    -n "skopeo copy oci -> oci-archive" "rm -f $work/out-oci.tar; skopeo copy -q oci:$work/layout:big oci-archive:$work/out-oci.tar:big"
  cat "$work/result.md"
else
  t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
  for i in $(seq "$runs"); do
    rm -rf "$work/r2" "$work/l2"
    echo "kiln load $(KILN_ROOT=$work/r2 t "$kiln" load -i "$work/big.tar")  skopeo load $(t skopeo copy -q docker-archive:"$work/big.tar" oci:"$work/l2:big")"
    rm -f "$work/out.tar"
    echo "kiln save $(t "$kiln" save -o "$work/out.tar" localhost/big)  skopeo save $(rm -f "$work/out.tar"; t skopeo copy -q oci:"$work/layout:big" docker-archive:"$work/out.tar:localhost/big:latest")"
  done
fi
