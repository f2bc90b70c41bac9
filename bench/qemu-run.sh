#!/usr/bin/env bash
# What an emulated RUN costs, without kiln: the same busybox shell work run natively and under
# QEMU user emulation (binfmt_misc), in a chroot of Debian's busybox-static of each architecture.
# docs/platforms.md quotes its output.
#
#   bash bench/qemu-run.sh [RUNS]      (default 10 runs a cell, at least 5)
#
# Cells: `loop` (a 100000-iteration shell arithmetic loop: interpretation, no exec), `exec`
# (200 execs of /bin/busybox true: process start-up, where QEMU pays its translation again
# for every process) and `start` (one /bin/busybox true). The host's architecture is native,
# the others run through their qemu-*-static handler. Medians with min-max, ratios to native.
# Needs root (chroot), hyperfine, jq and the handlers (bash scripts/install-deps.sh tests).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10}
[ "$runs" -ge 5 ] || { echo "qemu-run.sh: at least 5 runs a cell" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "qemu-run.sh: needs root (chroot)" >&2; exit 1; }
for c in hyperfine jq dpkg-deb; do
  command -v "$c" >/dev/null || { echo "qemu-run.sh: needs $c" >&2; exit 1; }
done
debs=${DEBS:-/var/tmp/kiln-fixtures/debs}
case "$(uname -m)" in
  x86_64) host=amd64 ;;
  aarch64) host=arm64 ;;
  *) echo "qemu-run.sh: host $(uname -m): only x86_64 and aarch64 hosts are set up here" >&2; exit 1 ;;
esac
archs=(amd64 arm64 armhf)
declare -A handler=([amd64]=qemu-x86_64 [arm64]=qemu-aarch64 [armhf]=qemu-arm)
for a in "${archs[@]}"; do
  [ -n "$(find "$debs" -maxdepth 1 -name "busybox-static_*_$a.deb" 2>/dev/null)" ] ||
    { echo "qemu-run.sh: no busybox-static .deb for $a in $debs (bash scripts/install-deps.sh tests)" >&2; exit 1; }
  [ "$a" = "$host" ] && continue
  [ "$(head -n 1 "/proc/sys/fs/binfmt_misc/${handler[$a]}" 2>/dev/null)" = enabled ] ||
    { echo "qemu-run.sh: binfmt_misc handler ${handler[$a]} missing (bash $here/scripts/install-deps.sh tests)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/kiln-qemu-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
for a in "${archs[@]}"; do
  mkdir "$work/$a"
  dpkg-deb -x "$(find "$debs" -maxdepth 1 -name "busybox-static_*_$a.deb" | head -n 1)" "$work/$a"
done

loop='i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done'
execs='i=0; while [ $i -lt 200 ]; do /bin/busybox true; i=$((i+1)); done'
echo "host $(uname -m), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $runs runs a cell"
printf '%-6s %-8s %-26s %s\n' cell arch 'median (min-max)' 'x native'
for cell in loop exec start; do
  args=()
  for a in "${archs[@]}"; do
    case $cell in
      loop) cmd="chroot $work/$a /bin/busybox sh -c '$loop'" ;;
      exec) cmd="chroot $work/$a /bin/busybox sh -c '$execs'" ;;
      start) cmd="chroot $work/$a /bin/busybox true" ;;
    esac
    args+=(-n "$a" "$cmd")
  done
  hyperfine -N -w 1 -r "$runs" --style none --export-json "$work/$cell.json" "${args[@]}" >/dev/null 2>&1
  native=$(jq -r --arg h "$host" '.results[] | select(.command == $h) | .median' "$work/$cell.json")
  jq -r --arg cell "$cell" --argjson n "$native" '.results[] |
      [$cell, .command, "\(.median * 1000 | floor) ms (\(.min * 1000 | floor)-\(.max * 1000 | floor))",
       "\(.median / $n * 10 | round / 10)"] | @tsv' "$work/$cell.json" |
    while IFS=$'\t' read -r c a m r; do printf '%-6s %-8s %-26s %s\n' "$c" "$a" "$m" "$r"; done
done
