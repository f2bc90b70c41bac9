#!/usr/bin/env bash
# No-op rebuilds measured by hyperfine: `kiln build` vs `docker build` (BuildKit) with nothing
# changed, for each case of ../shared/bench, both commands' own wall time, interleaved by
# hyperfine's runs. Why not run.sh: its timing pipes the build through a perl timestamper whose
# start-up alone takes ~11 ms here (`/bin/true` through the same pipeline: 11-12 ms), which is
# more than a kiln no-op takes, so run.sh cannot resolve ratios near 1/10.
#
#   bench/noop.sh [CASE...]     default: all cases; needs a previous bench/compare.sh run (the
#                               contexts under /var/tmp/kiln-bench/ctx and both tools' images)
# Env: KILN (default: kiln), RUNS (default 20), OUT (default bench/results/<date>-noop.md),
#      KILN_B (a second kiln binary, e.g. the one before a change: a third command in the same
#      hyperfine run, on the same store) and KILN_B_LABEL (default: before)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED_BENCH:-$here/../../shared/bench}
. "$shared/common.sh"
KILN=${KILN:-kiln}
RUNS=${RUNS:-20}
OUT=${OUT:-$here/results/$(date -u +%F)-noop.md}
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=($(ls "$CASES_DIR"))
export KILN_ROOT
KILN_B_LABEL=${KILN_B_LABEL:-before}
load0=$(cut -d' ' -f1-3 /proc/loadavg)
if [ -n "${KILN_B:-}" ]; then
  echo "| case | BuildKit (ms) | kiln (ms) | kiln $KILN_B_LABEL (ms) | kiln/BuildKit | $KILN_B_LABEL/BuildKit | kiln/$KILN_B_LABEL |" > "$OUT.tmp"
  echo "|---|---|---|---|---|---|---|" >> "$OUT.tmp"
else
  echo "| case | BuildKit (ms) | kiln (ms) | kiln/BuildKit |" > "$OUT.tmp"
  echo "|---|---|---|---|" >> "$OUT.tmp"
fi
for c in "${cases[@]}"; do
  BUILD_ARGS=
  [ -f "$CASES_DIR/$c/case.env" ] && . "$CASES_DIR/$c/case.env"
  kctx=$CTX_DIR/kiln/$c bctx=$CTX_DIR/buildkit/$c
  [ -d "$kctx" ] && [ -d "$bctx" ] || { echo "skip $c: run bench/compare.sh first" >&2; continue; }
  ktag=$(result_tag kiln "$c") btag=$(result_tag buildkit "$c")
  kcmd="$KILN build -q -t $ktag -f $kctx/Dockerfile $BUILD_ARGS $kctx"
  bcmd="env DOCKER_CONFIG=$BENCH_VAR/state/docker-config-$c DOCKER_BUILDKIT=1 $DOCKER build -q --network=host -t $btag -f $bctx/Dockerfile $BUILD_ARGS $bctx"
  $kcmd >/dev/null 2>&1 && $bcmd >/dev/null 2>&1 || { echo "skip $c: a priming build failed" >&2; continue; }
  cmds=("$bcmd" "$kcmd")
  [ -n "${KILN_B:-}" ] && cmds+=("$KILN_B build -q -t $ktag -f $kctx/Dockerfile $BUILD_ARGS $kctx")
  hyperfine -N -w 3 -r "$RUNS" --export-json "$OUT.$c.json" "${cmds[@]}" >&2
  python3 - "$OUT.$c.json" "$c" >> "$OUT.tmp" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
cell = lambda x: f"{x['median'] * 1000:.1f} ({min(x['times']) * 1000:.1f}-{max(x['times']) * 1000:.1f})"
b, k = r[0]["median"], r[1]["median"]
if len(r) > 2:
    a = r[2]["median"]
    print(f"| {sys.argv[2]} | {cell(r[0])} | {cell(r[1])} | {cell(r[2])} | {k / b:.3f} | {a / b:.3f} | {k / a:.3f} |")
else:
    print(f"| {sys.argv[2]} | {cell(r[0])} | {cell(r[1])} | {k / b:.3f} |")
PY
  rm -f "$OUT.$c.json"
done
{ echo "# No-op rebuilds, medians (min-max) of $RUNS hyperfine runs ($(date -u +%FT%TZ), load before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores)"; echo; cat "$OUT.tmp"; } > "$OUT"
rm -f "$OUT.tmp"
cat "$OUT"
