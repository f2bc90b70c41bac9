#!/usr/bin/env bash
# Before/after of kiln-net's proxy in the same session: two builds of the proxy bench
# (crates/kiln-net/benches/proxy.rs, the same bench code over two versions of the proxy) run
# alternately, one run each per round, ROUNDS rounds. Every run measures direct, kiln and
# docker-proxy itself, so each binary has its own baseline from the same minutes. The table:
# medians over the rounds, min–max, ratio of medians to that binary's direct median.
#
#   bench/net-proxy-ab.sh BEFORE_BIN AFTER_BIN      needs root and wrk (see net-proxy.sh)
#
# Building the two binaries (the bench binary is target/release/deps/proxy-<hash>):
#   git show REV:crates/kiln-net/src/proxy/tcp.rs > crates/kiln-net/src/proxy/tcp.rs (same for
#   mod.rs), cargo bench -p kiln-net --bench proxy --no-run, copy the binary, git checkout the
#   sources, build again, copy.
# Env: ROUNDS (default 5), MIB (default 1024), OUT (default
#      bench/results/<date>-<HHMM>-net-proxy-ab.md)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# = 2 ] || { echo "usage: $0 BEFORE_BIN AFTER_BIN" >&2; exit 2; }
before=$1 after=$2
ROUNDS=${ROUNDS:-5}
MIB=${MIB:-1024}
OUT=${OUT:-$here/results/$(date -u +%F-%H%M)-net-proxy-ab.md}
[ "$(id -u)" = 0 ] || { echo "net-proxy-ab.sh: needs root (network namespaces)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "net-proxy-ab.sh: needs wrk: apt-get install -y wrk" >&2; exit 1; }
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
{
  echo "# kiln-net proxy before/after, $(date -u '+%F %H:%M') UTC, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "Command: ROUNDS=$ROUNDS MIB=$MIB bench/net-proxy-ab.sh $before $after"
  echo
  for r in $(seq 1 "$ROUNDS"); do
    for which in before after; do
      bin=$before; [ "$which" = after ] && bin=$after
      KILN_BENCH_RUNS=1 KILN_BENCH_MIB=$MIB "$bin" --bench > "$raw/$r-$which.md" 2> /dev/null
      echo "## round $r, $which"
      echo
      cat "$raw/$r-$which.md"
      echo
    done
  done
  echo "## Summary"
  echo
  python3 - "$raw" <<'EOF'
import glob, os, re, statistics, sys
vals = {}  # (test, which, target) -> [values]
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.md"))):
    which = os.path.basename(f).split("-", 1)[1][:-3]
    for line in open(f):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not re.match(r"^[0-9.]+$", cells[2]):
            continue
        test = cells[0]
        # Throughput rows have a ratio column; CPU rows do not.
        vals.setdefault((test, which, cells[1]), []).append(float(cells[2]))
tests = []
for (t, _, _) in vals:
    if t not in tests:
        tests.append(t)
print("| test | proxy build | target | median | min–max | ratio to direct |")
print("|---|---|---|---:|---:|---:|")
for t in tests:
    for which in ("before", "after"):
        d = vals.get((t, which, "direct"))
        for target in ("direct", "kiln", "docker-proxy"):
            xs = vals.get((t, which, target))
            if not xs:
                continue
            m = statistics.median(xs)
            ratio = f"{m / statistics.median(d):.2f}" if d else "–"
            fmt = "{:.0f}" if m >= 100 else "{:.1f}"
            print(f"| {t} | {which} | {target} | {fmt.format(m)} | "
                  f"{fmt.format(min(xs))}–{fmt.format(max(xs))} | {ratio} |")
EOF
  echo
  echo "Load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT"
