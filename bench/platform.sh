#!/usr/bin/env bash
# Multi-platform builds: kiln against dockerd's BuildKit, in the same run, interleaved.
#
#   bench/platform.sh [RUNS]        RUNS=5 by default; KILN=path/to/kiln overrides the binary;
#                                   CELLS="a b ..." runs some cells only (names below)
#
# Cells (every build cold: --no-cache, the base image already local):
#   seedlike-bk-2     BuildKit: the seedlike case for linux/amd64, then for linux/arm64. dockerd
#                     20.10's BuildKit builds one platform per `docker build` (a multi-platform
#                     build needs buildx and a docker-container builder), so two builds in a row.
#   seedlike-kiln-2   kiln: the same, `--platform linux/amd64,linux/arm64` in one build
#   cross-kiln-1      kiln: examples/cross-compile for linux/amd64
#   cross-kiln-2      kiln: examples/cross-compile for linux/amd64,linux/arm64
#   cross-bk-1        BuildKit: examples/cross-compile for linux/amd64
#   cross-bk-2        BuildKit: the same for linux/amd64, then linux/arm64
#   emulated-kiln-2   kiln: examples/cross-compile/Dockerfile.emulated for linux/amd64,linux/arm64
#   emulated-bk-2     BuildKit: the same, linux/amd64 then linux/arm64
# The seedlike case is ../shared/bench/cases/seedlike with its base replaced by the multi-platform
# busybox (scripts/make-multiplatform-busybox.sh): BuildKit pulls it from a docker-registry on
# 127.0.0.1 (dockerd 20.10 keeps one platform per tag); kiln pulls it from there too. arm64 RUN
# steps run under QEMU (binfmt_misc) for both tools.
#
# Prints a table of medians (min-max) per cell and the ratios that matter, and writes it with the
# raw times to bench/results/<UTC date-time>-platform.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-5}
shared=${SHARED:-$root/../shared}
DOCKER=${DOCKER:-/usr/bin/docker}
kiln=${KILN:-}
if [ -z "$kiln" ]; then
  cargo build --release -q -p kiln
  kiln=${CARGO_TARGET_DIR:-target}/release/kiln
fi
kiln=$(readlink -f "$kiln")
all_cells="seedlike-bk-2 seedlike-kiln-2 cross-kiln-1 cross-kiln-2 cross-bk-1 cross-bk-2 emulated-kiln-2 emulated-bk-2"
cells=${CELLS:-$all_cells}
for c in $cells; do
  case " $all_cells " in *" $c "*) ;; *) echo "bench/platform.sh: unknown cell $c (cells: $all_cells)" >&2; exit 2 ;; esac
done
for c in skopeo docker-registry python3 jq; do
  command -v "$c" >/dev/null || { echo "bench/platform.sh: needs $c (bash scripts/install-deps.sh ci)" >&2; exit 1; }
done
for h in qemu-aarch64; do
  [ "$(head -n 1 "/proc/sys/fs/binfmt_misc/$h" 2>/dev/null)" = enabled ] ||
    { echo "bench/platform.sh: needs QEMU's binfmt_misc handler $h (bash scripts/install-deps.sh ci)" >&2; exit 1; }
done
"$DOCKER" info >/dev/null 2>&1 || { echo "bench/platform.sh: needs a running dockerd ($DOCKER info fails)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/kiln-bench-platform.XXXXXX)
reg_pid=
base=
cleanup() {
  # The images this run made in dockerd (`docker build -q` logs their IDs), the tag, the base.
  # shellcheck disable=SC2046
  "$DOCKER" rmi -f localhost/bench-platform:bk ${base:+"$base"} \
    $(grep -o 'sha256:[0-9a-f]\{64\}' "$work/log" 2>/dev/null | sort -u) >/dev/null 2>&1
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
export KILN_ROOT=$work/kiln-root

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s/registry\nhttp:\n  addr: 127.0.0.1:%s\n' \
  "$work" "$port" >"$work/registry.yml"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
probe() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "http://127.0.0.1:$port/v2/" 2>/dev/null; }
for _ in $(seq 1 50); do probe && break; sleep 0.1; done
probe || { echo "bench/platform.sh: docker-registry did not start: $(cat "$work/registry.log")" >&2; exit 1; }

base=127.0.0.1:$port/bench/busybox:latest
echo "making the multi-platform base $base ..." >&2
bash scripts/make-multiplatform-busybox.sh "$work/base.tar" "$base" >/dev/null
skopeo copy -q --all --dest-tls-verify=false "oci-archive:$work/base.tar" "docker://$base" >/dev/null
# kiln pulls the base from the registry too (the warm-up round), the platforms each build needs.

mkdir -p "$work/seedlike"
sh "$shared/bench/cases/seedlike/prepare.sh" "$work/seedlike"
{ echo 'ARG BASE'; sed 's#localhost/busybox:latest#$BASE#' "$shared/bench/cases/seedlike/Dockerfile"; } >"$work/seedlike/Dockerfile"
cp -r examples/cross-compile "$work/cross"

bk() { # bk CONTEXT DOCKERFILE PLATFORM...: one `docker build` per platform, in a row
  local ctx=$1 df=$2 p
  shift 2
  for p in "$@"; do
    DOCKER_BUILDKIT=1 "$DOCKER" build -q --no-cache --network=host --platform "$p" --build-arg "BASE=$base" \
      -f "$ctx/$df" -t localhost/bench-platform:bk "$ctx" >>"$work/log" 2>&1 || return 1
  done
}
kb() { # kb CONTEXT DOCKERFILE PLATFORMS: one kiln build
  "$kiln" build -q --no-cache --platform "$3" --build-arg "BASE=$base" \
    -f "$1/$2" -t localhost/bench-platform:kiln "$1" >>"$work/log" 2>&1
}
cell() {
  case "$1" in
    seedlike-bk-2) bk "$work/seedlike" Dockerfile linux/amd64 linux/arm64 ;;
    seedlike-kiln-2) kb "$work/seedlike" Dockerfile linux/amd64,linux/arm64 ;;
    cross-kiln-1) kb "$work/cross" Dockerfile linux/amd64 ;;
    cross-kiln-2) kb "$work/cross" Dockerfile linux/amd64,linux/arm64 ;;
    cross-bk-1) bk "$work/cross" Dockerfile linux/amd64 ;;
    cross-bk-2) bk "$work/cross" Dockerfile linux/amd64 linux/arm64 ;;
    emulated-kiln-2) kb "$work/cross" Dockerfile.emulated linux/amd64,linux/arm64 ;;
    emulated-bk-2) bk "$work/cross" Dockerfile.emulated linux/amd64 linux/arm64 ;;
  esac
}

# One unmeasured round first: BuildKit pulls the base's platforms, both tools warm their caches
# of the base; a failing cell stops the bench here with its log.
for c in $cells; do
  echo "warm-up: $c" >&2
  cell "$c" || { echo "bench/platform.sh: $c failed; the log:" >&2; tail -n 20 "$work/log" >&2; exit 1; }
done

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$work/times.tsv"
for r in $(seq 1 "$runs"); do
  for c in $cells; do
    t0=$(date +%s.%N)
    if cell "$c"; then rc=0; else rc=1; fi
    t1=$(date +%s.%N)
    printf '%s\t%s\t%s\t%s\n' "$r" "$c" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "$rc" >>"$work/times.tsv"
    echo "run $r $c: $(tail -n 1 "$work/times.tsv" | cut -f3)s rc=$rc" >&2
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

out=bench/results/$(date -u +%Y-%m-%d-%H%M)-platform.md
python3 - "$work/times.tsv" "$cells" "$started" "$load_start" "$load_end" "$("$kiln" --version 2>&1 | head -n 1)" \
  "$("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null)" "$runs" >"$out" <<'PY'
import statistics, sys
path, cells, started, l0, l1, kv, dv, runs = sys.argv[1:9]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
cells = cells.split()
t = {c: [float(s) for (_, cc, s, rc) in rows if cc == c and rc == "0"] for c in cells}
fails = {c: sum(1 for (_, cc, _, rc) in rows if cc == c and rc != "0") for c in cells}
med = {c: statistics.median(v) for c, v in t.items() if v}
print(f"# Multi-platform builds ({started})\n")
print(f"kiln: `{kv}`; BuildKit: dockerd {dv}; {runs} runs per cell, interleaved; load average "
      f"{l0} at the start, {l1} at the end. Every build `--no-cache`.\n")
print("| cell | median s | min-max | n | failed |\n|---|---|---|---|---|")
for c in cells:
    v = t[c]
    if v:
        print(f"| {c} | **{med[c]:.2f}** | {min(v):.2f}-{max(v):.2f} | {len(v)} | {fails[c]} |")
    else:
        print(f"| {c} | - | - | 0 | {fails[c]} |")
print()
def ratio(a, b, what):
    if a in med and b in med:
        print(f"- {what}: {med[a]:.2f} / {med[b]:.2f} = **{med[a] / med[b]:.2f}**")
ratio("seedlike-kiln-2", "seedlike-bk-2", "seedlike, two platforms, kiln / BuildKit (two builds in a row)")
ratio("cross-kiln-2", "cross-kiln-1", "cross-compile, kiln, two platforms / one")
ratio("cross-bk-2", "cross-bk-1", "cross-compile, BuildKit, two platforms / one")
ratio("cross-kiln-2", "cross-bk-2", "cross-compile, two platforms, kiln / BuildKit")
ratio("emulated-kiln-2", "cross-kiln-2", "two platforms, kiln, emulated variant / cross-compile")
ratio("emulated-kiln-2", "emulated-bk-2", "emulated variant, two platforms, kiln / BuildKit")
print("\nRaw times (run, cell, seconds, rc):\n\n```")
for r in rows:
    print("\t".join(r))
print("```")
PY
cat "$out"
echo "written to $out" >&2
