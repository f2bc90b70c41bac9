#!/usr/bin/env bash
# `kiln report` of the tutorial's single-stage image (~365 MB, ~38,000 files) and
# `kiln report MULTI --compare SINGLE`, with and without the store's layer index
# (`layer_files`, kept by the first report), timed by hyperfine (median of RUNS runs).
# "no index" drops the kept file lists before every run (`--prepare`): each layer blob is read
# and hashed, as every report did before the index (and the lists are written again);
# "index" reads the lists from the store and no blob. Issue 12's goal: well under a second.
#
# The images are built once into their own store (KILN_ROOT, default
# /var/tmp/kiln-bench-report) from ../shared/fixtures/react-app on the fixtures' node and nginx
# bases (make them with ../shared/fixtures/make-base-images.sh), with the two npm steps made
# offline exactly as crates/kiln/tests/tutorial_report.rs does (no network is used).
#
#   bench/report.sh          Env: KILN (default: target/release/kiln), RUNS (default 10)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
KILN=${KILN:-$repo/target/release/kiln}
RUNS=${RUNS:-10}
export KILN_ROOT=${KILN_ROOT:-/var/tmp/kiln-bench-report}
images=/var/tmp/kiln-fixtures/images
react=$repo/../shared/fixtures/react-app
[ -x "$KILN" ] || { echo "no kiln at $KILN: cargo build --release -p kiln, or set KILN" >&2; exit 1; }
for b in node-18 nginx-bookworm; do
  [ -f "$images/$b.docker.tar" ] || { echo "no $images/$b.docker.tar: run ../shared/fixtures/make-base-images.sh" >&2; exit 1; }
done
command -v sqlite3 >/dev/null || { echo "needs sqlite3 (apt-get install sqlite3)" >&2; exit 1; }
ctx=$(mktemp -d)
trap 'rm -rf "$ctx" "$ctx.json"' EXIT
if ! "$KILN" inspect app:single >/dev/null 2>&1 || ! "$KILN" inspect app:multi >/dev/null 2>&1; then
  "$KILN" load -q -i "$images/node-18.docker.tar" >/dev/null
  "$KILN" load -q -i "$images/nginx-bookworm.docker.tar" >/dev/null
  cp -r "$react/." "$ctx/" && chmod -R u+w "$ctx"
  install='RUN mkdir -p node_modules \&\& cp -a /usr/share/nodejs/. node_modules/ \&\& for p in vite @vitejs/plugin-react; do mkdir -p node_modules/$p \&\& echo "{}" > node_modules/$p/package.json; done'
  build='RUN mkdir -p build/assets \&\& cp index.html build/ \&\& cat src/* > build/assets/index.js'
  for f in Dockerfile Dockerfile.single; do
    sed -e "s|^RUN npm install\$|$install|" -e "s|^RUN npm run build\$|$build|" "$ctx/$f" > "$ctx/$f.offline"
  done
  "$KILN" build -q -f "$ctx/Dockerfile.single.offline" -t app:single "$ctx" >/dev/null
  "$KILN" build -q -f "$ctx/Dockerfile.offline" -t app:multi "$ctx" >/dev/null
fi
size=$("$KILN" inspect --format '{{.Size}}' app:single)
drop="sqlite3 $KILN_ROOT/metadata-v1.db 'DELETE FROM layer_files'"
"$KILN" report app:single >/dev/null   # the index, for the runs that use it
hyperfine -N -w 2 -r "$RUNS" --export-json "$ctx.json" \
  --prepare "$drop" --prepare true --prepare "$drop" --prepare true \
  -n "report, no index" -n "report, index" -n "compare, no index" -n "compare, index" \
  "$KILN report app:single" "$KILN report app:single" \
  "$KILN report app:multi --compare app:single" "$KILN report app:multi --compare app:single" >/dev/null
python3 - "$ctx.json" "$size" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
print(f"kiln report of app:single ({int(sys.argv[2])/1e6:.0f} MB), medians of {len(next(iter(res.values()))['times'])} runs:")
for what in ["report", "compare"]:
    a, b = res[f"{what}, no index"]["median"], res[f"{what}, index"]["median"]
    print(f"  {what:8} no index {a*1000:7.1f} ms   index {b*1000:6.1f} ms   {a/b:5.1f}x")
PY
