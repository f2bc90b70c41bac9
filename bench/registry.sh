#!/usr/bin/env bash
# Push and pull of a ~470 MB image to and from a local registry: kiln against `skopeo copy`
# of the same image, to and from the same registry, in the same run, interleaved.
#
#   bench/registry.sh [RUNS]        RUNS=5 by default; KILN=path/to/kiln overrides the binary
#                                   Each cell: median wall time (min-max) and median CPU time
#                                   (user + system, of the client only; the registry's is not counted)
#                                   SRC=DIR: what the layer holds (default /usr/bin, ~470 MB;
#                                   needs about 6x that in free space under /var/tmp)
#                                   OPS="pull": the pull cells only (default "push pull")
#
# The image is one layer (a tar of $SRC, uncompressed in kiln's store as kiln keeps
# layers) in a docker-archive; skopeo's source is the same image in an OCI layout. The
# registry is Debian's docker-registry (distribution 2.8) on 127.0.0.1, plain HTTP, its
# storage emptied before every push so that each push uploads everything. Compared:
#   push, gzip and upload:
#               kiln push (a fresh store: gzips the uncompressed layer, then uploads)
#               skopeo copy docker-archive:FILE docker://... (gzips, then uploads)
#   push, upload only:
#               kiln push (the store has the gzipped layer from an earlier push)
#               skopeo copy oci:LAYOUT docker://... (the layout holds the gzipped layer)
#   pull:       kiln pull (into an empty store: download, verify digest and diff ID, and
#                 unpack the layer into the store's snapshots while it downloads)
#               skopeo copy docker://... oci:DIR (into an empty layout: checks the
#                 compressed digest only, decompresses nothing)
#               skopeo copy docker://... docker-archive:FILE (decompresses the layer and
#                 names it by its diff ID: the same work as kiln's check)
#               kiln pull, then kiln run --rm --user 0:0 IMAGE /bin/busybox true (the pull has
#                 unpacked the layer, so the first run unpacks nothing; before kiln pulled
#                 unpacking, that run unpacked it: either way containers-storage's work; only
#                 when SRC is a bin/ directory with busybox, as the default /usr/bin)
#               skopeo copy docker://... containers-storage:[overlay@ROOT+RUNROOT]NAME
#                 (what `podman pull` does: download, verify the digest, decompress and
#                 unpack the layer into overlay storage, check the diff ID; a private
#                 storage root, unmounted and emptied before every run)
# Both pull the image skopeo pushed.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
kiln=${KILN:-}
if [ -z "$kiln" ]; then
  cargo build --release -q -p kiln
  kiln=${CARGO_TARGET_DIR:-target}/release/kiln
fi
kiln=$(readlink -f "$kiln")
ops=${OPS:-push pull}
for c in skopeo docker-registry python3 /usr/bin/time curl; do
  command -v "$c" >/dev/null || { echo "bench/registry.sh: needs $c (bash scripts/install-deps.sh)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/kiln-bench-registry.XXXXXX)
reg_pid=
# containers-storage's overlay driver bind-mounts its overlay directory on itself.
unmount_cs() { while mountpoint -q "$work/cs/storage/overlay" 2>/dev/null; do umount "$work/cs/storage/overlay"; done; rm -rf "$work/cs"; }
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; wait 2>/dev/null; unmount_cs; rm -rf "$work"; }
trap cleanup EXIT
echo "making the image in $work ..." >&2
mkdir -p "$work/a/blobs/sha256"
src=${SRC:-/usr/bin}
(cd "$(dirname "$src")" && tar --sort=name --mtime=@0 --numeric-owner --format=gnu -cf "$work/layer.tar" "$(basename "$src")")
lhex=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
mv "$work/layer.tar" "$work/a/blobs/sha256/$lhex"
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$lhex" >"$work/config.json"
chex=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/a/blobs/sha256/$chex"
printf '[{"Config":"blobs/sha256/%s","RepoTags":["localhost/big:latest"],"Layers":["blobs/sha256/%s"]}]' "$chex" "$lhex" >"$work/a/manifest.json"
(cd "$work/a" && tar -cf "$work/big.tar" manifest.json blobs)
rm -rf "$work/a"
ls -l "$work/big.tar" >&2
skopeo copy -q docker-archive:"$work/big.tar" oci:"$work/layout:big" >/dev/null

. bench/lib/registry.sh
start_registry "$work" delete

# A store with the image loaded and tagged for the registry.
fresh_store() { rm -rf "$1"; KILN_ROOT=$1 "$kiln" load -q -i "$work/big.tar" >/dev/null; KILN_ROOT=$1 "$kiln" tag localhost/big "$reg/big:k"; }
empty_registry() { rm -rf "$work/reg/docker"; }
# Runs a command quietly; prints its wall time and its CPU time (user + system), in seconds.
t() {
  /usr/bin/time -f '%e %U %S' -o "$work/last.time" "$@" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; exit 1; }
  python3 -c 'import sys; e, u, s = map(float, open(sys.argv[1]).read().split()[-3:]); print(f"{e:.3f}\t{u + s:.3f}")' "$work/last.time"
}

results=$work/results.tsv
if [[ " $ops " == *" push "* ]]; then
  fresh_store "$work/warm"
  KILN_ROOT=$work/warm "$kiln" push -q "$reg/big:k" >/dev/null   # remembers the gzipped layer
fi
if [[ " $ops " != *" push "* ]]; then   # the pulls' image, pushed once
  skopeo copy -q --dest-tls-verify=false oci:"$work/layout:big" docker://"$reg/big:s"
fi
for i in $(seq "$runs"); do
 if [[ " $ops " == *" push "* ]]; then
  fresh_store "$work/cold"
  empty_registry
  echo -e "push (gzip + upload)\tkiln push (fresh store)\t$(KILN_ROOT=$work/cold t "$kiln" push "$reg/big:k")" >>"$results"
  empty_registry
  echo -e "push (upload)\tkiln push (gzipped layer remembered)\t$(KILN_ROOT=$work/warm t "$kiln" push "$reg/big:k")" >>"$results"
  empty_registry
  echo -e "push (gzip + upload)\tskopeo copy docker-archive: -> docker://\t$(t skopeo copy -q --dest-tls-verify=false docker-archive:"$work/big.tar" docker://"$reg/big:s")" >>"$results"
  empty_registry
  echo -e "push (upload)\tskopeo copy oci: -> docker://\t$(t skopeo copy -q --dest-tls-verify=false oci:"$work/layout:big" docker://"$reg/big:s")" >>"$results"
 fi
 if [[ " $ops " == *" pull "* ]]; then
  rm -rf "$work/pulled" "$work/pulled-oci"
  echo -e "pull\tkiln pull\t$(KILN_ROOT=$work/pulled t "$kiln" pull "$reg/big:s")" >>"$results"
  echo -e "pull\tskopeo copy docker:// -> oci:\t$(t skopeo copy -q --src-tls-verify=false docker://"$reg/big:s" oci:"$work/pulled-oci:big")" >>"$results"
  rm -f "$work/pulled.tar"
  echo -e "pull\tskopeo copy docker:// -> docker-archive: (decompresses)\t$(t skopeo copy -q --src-tls-verify=false docker://"$reg/big:s" docker-archive:"$work/pulled.tar":x/big:s)" >>"$results"
  # The run needs /bin/busybox in the image: SRC=.../bin holding busybox (the default /usr/bin).
  if [ "$(basename "$src")" = bin ] && [ -x "$src/busybox" ]; then
  rm -rf "$work/unpacked"
  echo -e "pull\tkiln pull + kiln run --rm (first run)\t$(KILN_ROOT=$work/unpacked t sh -c "'$kiln' pull '$reg/big:s' && '$kiln' run --rm --network none --user 0:0 '$reg/big:s' /bin/busybox true")" >>"$results"
  elif [ "$i" = 1 ]; then
    echo "bench/registry.sh: no bin/busybox in SRC=$src: the kiln pull + kiln run cell is left out" >&2
  fi
  unmount_cs
  echo -e "pull\tskopeo copy docker:// -> containers-storage: (overlay, unpacks)\t$(t skopeo copy -q --src-tls-verify=false docker://"$reg/big:s" "containers-storage:[overlay@$work/cs/storage+$work/cs/runroot]x/big:s")" >>"$results"
  [ -d "$work/cs/storage/overlay-layers" ] || { echo "bench/registry.sh: containers-storage has no overlay layers" >&2; exit 1; }
 fi
  echo "run $i done" >&2
done
cp "$results" "${RESULTS_COPY:-/dev/null}" 2>/dev/null || true
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$results" <<'PY'
import sys, statistics, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    op, tool, wall, cpu = line.rstrip("\n").split("\t")
    rows.setdefault((op, tool), []).append((float(wall), float(cpu)))
print("| op | command | median s | min-max | CPU s (median) | n |")
print("|---|---|---|---|---|---|")
med = {}
for (op, tool), v in rows.items():
    w = [x[0] for x in v]
    c = [x[1] for x in v]
    med[(op, tool)] = (statistics.median(w), statistics.median(c))
    print(f"| {op} | {tool} | **{statistics.median(w):.2f}** | {min(w):.2f}-{max(w):.2f} | {statistics.median(c):.2f} | {len(v)} |")
print()
for (op, tool), (w, c) in med.items():
    if tool.startswith("skopeo"):
        continue
    for (op2, tool2), (w2, c2) in med.items():
        if op2 == op and tool2.startswith("skopeo"):
            print(f"- {op}: {tool} / {tool2} = {w / w2:.2f} (wall), {c / c2:.2f} (CPU)")
PY
