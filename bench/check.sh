#!/usr/bin/env bash
# `kiln check` of every conformance Dockerfile (../shared/conformance/cases and
# tests/conformance) in one run (`kiln check PATH...`: parse, every rule, each context's
# .dockerignore and listing), timed by hyperfine (median of RUNS runs after 3 warm-ups).
# Issue 12's goal: well under 100 ms in total. For reference it also times one `kiln check`
# process per Dockerfile (then the process start-up, ~5 ms here, dominates).
#
#   bench/check.sh          Env: KILN (default: target/release/kiln), RUNS (default 10)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
KILN=${KILN:-$repo/target/release/kiln}
RUNS=${RUNS:-10}
[ -x "$KILN" ] || { echo "no kiln at $KILN: cargo build --release -p kiln, or set KILN" >&2; exit 1; }
list=$(mktemp)
trap 'rm -f "$list" "$list.json"' EXIT
find "$repo/../shared/conformance/cases" "$repo/tests/conformance" -name Dockerfile | sort > "$list"
n=$(wc -l < "$list")
[ "$n" -gt 0 ] || { echo "no conformance Dockerfiles found" >&2; exit 1; }
dirs=$(xargs -n1 dirname < "$list" | tr '\n' ' ')
single="$KILN check --format json $dirs"
loop="bash -c 'for d in $dirs; do $KILN check --format json \$d; done'"
hyperfine -N -w 3 -r "$RUNS" -i --export-json "$list.json" "$single" "$loop" >/dev/null
python3 - "$list.json" "$n" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
n = int(sys.argv[2])
for r, what in zip(res, ["one run", "one process per Dockerfile"]):
    print(f"kiln check of {n} conformance Dockerfiles, {what}: median {r['median']*1000:.1f} ms "
          f"({r['median']*1000/n:.2f} ms per Dockerfile; {len(r['times'])} runs, min {r['min']*1000:.1f} ms)")
PY
