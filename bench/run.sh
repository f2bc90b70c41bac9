#!/usr/bin/env bash
# Container start-to-exit time: `kiln run --rm IMAGE true` against `docker run --rm --network none
# IMAGE true` (dockerd), `runc run` and `crun run` of the same OCI bundle (the busybox image's
# root file system, exported by `kiln save` + tar, and `runc spec`'s config.json running `true`).
# hyperfine, one invocation per round with every command (ROUNDS rounds of RUNS runs each, after
# WARMUP warm-ups), so the tools are interleaved round by round. Medians, min-max and ratios of
# all runs go to OUT (markdown); hyperfine's JSON per round next to it.
#
#   bash bench/run.sh
#
# Env: KILN (default: target/release/kiln of this repo), ROUNDS (5), RUNS (10), WARMUP (3),
#      OUT (bench/results/<UTC date-time>-run.md), DOCKER (docker), SKIP_DOCKER=1 (leave docker
#      out), PROFILE=1 (also `strace -c -f` of one kiln run, appended to OUT).
# dockerd: the running one (`docker info`), else this script starts
# `dockerd --bridge=none --iptables=false` and stops that PID at the end.
# Needs root, hyperfine, runc, crun, busybox-static (bash scripts/install-deps.sh tests).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
KILN=${KILN:-$repo/target/release/kiln}
ROUNDS=${ROUNDS:-5} RUNS=${RUNS:-10} WARMUP=${WARMUP:-3}
DOCKER=${DOCKER:-docker}
stamp=$(date -u +%F-%H%M)
OUT=${OUT:-$here/results/$stamp-run.md}
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: needs root" >&2; exit 2; }
[ -x "$KILN" ] || { echo "bench/run.sh: no kiln at $KILN (cargo build --release -p kiln)" >&2; exit 2; }
for c in hyperfine runc crun jq python3; do
  command -v "$c" >/dev/null || { echo "bench/run.sh: $c missing: bash scripts/install-deps.sh tests" >&2; exit 2; }
done

# crun 1.8 refuses a hybrid cgroup host whose cgroup2 mount has controllers ("cgroups in hybrid
# mode not supported, drop all controllers from cgroupv2"), as this one has (hugetlb, at
# /sys/fs/cgroup/unified), even with --cgroup-manager=disabled. The host is left alone: the whole
# benchmark re-runs itself in a private mount namespace without that cgroup2 mount, so every tool
# (kiln, the docker client, runc, crun) runs in the same place and uses the v1 controllers.
if [ -z "${KILN_BENCH_NS:-}" ] && [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
  exec unshare -m --propagation private env KILN_BENCH_NS=1 bash "$0" "$@"
fi
if [ -n "${KILN_BENCH_NS:-}" ]; then
  umount /sys/fs/cgroup/unified
fi
CRUN=crun
work=$(mktemp -d /var/tmp/kiln-bench-run.XXXXXX)
export KILN_ROOT=$work/root
dockerd_pid=''
cleanup() {
  local id
  for id in $("$KILN" ps -aq --no-trunc 2>/dev/null); do "$KILN" rm -f "$id" >/dev/null 2>&1 || true; done
  runc delete -f kiln-bench-runc >/dev/null 2>&1 || true
  $CRUN delete -f kiln-bench-crun >/dev/null 2>&1 || true
  if [ -n "$dockerd_pid" ]; then kill "$dockerd_pid" 2>/dev/null || true; wait "$dockerd_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The image: busybox (scripts/make-busybox-image.sh), in kiln's store and in docker's.
IMG=localhost/busybox:latest
bash "$repo/scripts/make-busybox-image.sh" "$work/busybox.tar" >/dev/null
"$KILN" load -q -i "$work/busybox.tar" >/dev/null

# The OCI bundle: the image's layers unpacked (kiln save), runc spec's config.json, `true`.
bundle=$work/bundle
mkdir -p "$bundle/rootfs" "$work/save"
"$KILN" save -o "$work/save.tar" "$IMG"
tar -C "$work/save" -xf "$work/save.tar"
for l in $(jq -r '.[0].Layers[]' "$work/save/manifest.json"); do tar -C "$bundle/rootfs" -xf "$work/save/$l"; done
(cd "$bundle" && runc spec)
jq '.process.args = ["true"] | .process.terminal = false' "$bundle/config.json" >"$bundle/config.json.new"
mv "$bundle/config.json.new" "$bundle/config.json"
runc run --bundle "$bundle" kiln-bench-runc || { echo "bench/run.sh: runc run of the bundle failed" >&2; exit 1; }
$CRUN run --bundle "$bundle" kiln-bench-crun || { echo "bench/run.sh: crun run of the bundle failed" >&2; exit 1; }
"$KILN" run --rm "$IMG" true || { echo "bench/run.sh: kiln run failed" >&2; exit 1; }

names=() cmds=()
if [ "${SKIP_DOCKER:-0}" != 1 ]; then
  if ! "$DOCKER" info >/dev/null 2>&1; then
    /usr/sbin/dockerd --bridge=none --iptables=false >/tmp/h3-dockerd.log 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 1 100); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 0.3; done
    "$DOCKER" info >/dev/null 2>&1 || { echo "bench/run.sh: dockerd did not start (/tmp/h3-dockerd.log)" >&2; exit 1; }
  fi
  "$DOCKER" load -i "$work/busybox.tar" >/dev/null
  "$DOCKER" run --rm --network none "$IMG" true
  names+=(docker); cmds+=("$DOCKER run --rm --network none $IMG true")
fi
names+=(kiln kiln-net-none runc crun)
cmds+=("$KILN run --rm $IMG true" "$KILN run --rm --network none $IMG true"
  "runc run --bundle $bundle kiln-bench-runc" "$CRUN run --bundle $bundle kiln-bench-crun")

{
  echo "# kiln run vs docker run, runc run, crun run ($(date -u +%FT%TZ))"
  echo
  echo "kiln: $("$KILN" --version 2>/dev/null | head -n1) ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null)); $( [ "${SKIP_DOCKER:-0}" = 1 ] || "$DOCKER" version -f 'dockerd {{.Server.Version}}' 2>/dev/null); $(runc --version | head -n1); $(crun --version | head -n1) (as \`$CRUN\`); $(hyperfine --version)"
  echo "kernel $(uname -r), $(nproc) cores; ROUNDS=$ROUNDS RUNS=$RUNS WARMUP=$WARMUP"
  echo
  for i in "${!names[@]}"; do echo "- ${names[$i]}: \`${cmds[$i]}\`"; done
  echo
} >"$OUT"

loads=()
for r in $(seq 1 "$ROUNDS"); do
  loads+=("$(cut -d' ' -f1 /proc/loadavg)")
  hyperfine -N --style basic -w "$WARMUP" -r "$RUNS" --export-json "$OUT.round$r.json" "${cmds[@]}" >&2
done
loads+=("$(cut -d' ' -f1 /proc/loadavg)")

python3 - "$OUT" "$ROUNDS" "${names[*]}" "${loads[*]}" >>"$OUT" <<'PY'
import json, statistics, sys
out, rounds, names, loads = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4]
times = {n: [] for n in names}
per_round = {n: [] for n in names}
for r in range(1, rounds + 1):
    res = json.load(open(f"{out}.round{r}.json"))["results"]
    for n, x in zip(names, res):
        times[n] += [t * 1000 for t in x["times"]]
        per_round[n].append(statistics.median(x["times"]) * 1000)
med = {n: statistics.median(v) for n, v in times.items()}
print(f"load average (1 min) at the start of each round and at the end: {loads}")
print()
print("| tool | runs | median ms | min-max ms | round medians ms |")
print("|---|---|---|---|---|")
for n in names:
    v = times[n]
    print(f"| {n} | {len(v)} | {med[n]:.1f} | {min(v):.1f}-{max(v):.1f} | "
          + ", ".join(f"{x:.1f}" for x in per_round[n]) + " |")
print()
print("| ratio (medians) | value | goal |")
print("|---|---|---|")
if "docker" in med:
    print(f"| kiln / docker | {med['kiln'] / med['docker']:.3f} | <= 0.1 |")
    print(f"| kiln --network none / docker | {med['kiln-net-none'] / med['docker']:.3f} | |")
print(f"| kiln / crun | {med['kiln'] / med['crun']:.2f} | <= 2 |")
print(f"| kiln --network none / crun | {med['kiln-net-none'] / med['crun']:.2f} | |")
print(f"| kiln / runc | {med['kiln'] / med['runc']:.2f} | |")
print(f"| runc / crun | {med['runc'] / med['crun']:.2f} | |")
PY

if [ "${PROFILE:-0}" = 1 ] && command -v strace >/dev/null; then
  {
    echo
    echo "## strace -c -f of one \`kiln run --rm $IMG true\`"
    echo
    echo '```'
    strace -c -f -o /dev/stdout "$KILN" run --rm "$IMG" true 2>&1 | head -n 40
    echo '```'
  } >>"$OUT"
fi
cat "$OUT"
