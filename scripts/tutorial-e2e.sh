#!/usr/bin/env bash
# tutorial-e2e.sh — the multi-stage tutorial end to end with kiln: load the locally made node and
# nginx base images into a temporary KILN_ROOT, build the React app's Dockerfiles, and check the
# results. Prints one line per check (PASS/FAIL/INFO) and exits 1 if any check failed.
#
# Usage: scripts/tutorial-e2e.sh [--keep]
#
#   --keep   keep the work directory (logs, KILN_ROOT, exported files) instead of removing it
#
# Env:
#   KILN       kiln binary (default: `kiln` on PATH, else target/release/kiln of this repo)
#   APP        the React app (default: examples/tutorial-react of this repo)
#   FIXTURES   base image archives node-18.docker.tar, nginx-bookworm.docker.tar
#              (default /var/tmp/kiln-fixtures/images). When missing, they are made with
#              MAKE_BASES (default ../shared/fixtures/make-base-images.sh next to the repo;
#              debootstrap + umoci + skopeo, as root, ~3 min the first time).
#   TMPDIR     where the work directory kiln-tutorial.XXXXXX is made (default /var/tmp)
#   BUILD_ARGS extra `kiln build` arguments for every build (e.g. --build-arg NPM_CONFIG_REGISTRY=URL)
#   LOG_DIR    where the logs, the served pages and Chromium's screenshot go, kept after the run
#              (default: WORK/logs, removed with the work directory unless --keep)
#
# Checks: bases load; the multi-stage image builds and its /usr/share/nginx/html holds the built
# app (read back with `kiln save` + tar) while node stays out of it; a no-op rebuild runs nothing
# and keeps the image ID; the single-stage build reuses the installer's cache; the tested variant
# runs vitest; a failing test fails the build; `--target installer` skips the nginx stage; a tester
# stage nothing copies from never runs; an edit of src/App.jsx keeps `COPY package*.json` and
# `RUN npm install` cached, `--explain` says why `COPY . .` missed, and the edit reaches the
# exported files (`-o type=local`); `kiln images` sizes single- vs multi-stage. Then the image
# runs as the tutorial runs it, `kiln run -d -p 3000:80 --name app-container multistage` (the
# next free port when 3000 is taken): curl gets index.html and the JS bundle, `exec ls`, `logs`
# (the requests), `stats --no-stream` (memory), `port`; headless Chromium renders the page (React's
# text in the DOM, a screenshot LOGS/app-container.png); after `stop` + `rm` no process, mount,
# cgroup or listening socket is left.
# `npm install` runs on the host network and needs the npm registry.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,34p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done

if [ -z "${KILN:-}" ]; then
  if command -v kiln >/dev/null; then KILN=$(command -v kiln)
  else KILN=$REPO/target/release/kiln; fi
fi
APP=${APP:-$REPO/examples/tutorial-react}
FIXTURES=${FIXTURES:-/var/tmp/kiln-fixtures/images}
MAKE_BASES=${MAKE_BASES:-$REPO/../shared/fixtures/make-base-images.sh}
read -r -a EXTRA <<<"${BUILD_ARGS:-}"

[ -x "$KILN" ] || { echo "kiln binary not found at $KILN (build it: cargo build --release -p kiln, or set KILN)" >&2; exit 2; }
[ -f "$APP/Dockerfile" ] || { echo "React app not found at $APP (set APP)" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/kiln-tutorial.XXXXXX") || exit 2
export KILN_ROOT=$WORK/root
CTX=$WORK/app LOGS=${LOG_DIR:-$WORK/logs}
mkdir -p "$KILN_ROOT" "$LOGS" "$CTX"
FAILS=0 PASSES=0
cleanup() {
  # containers a failed check left running: removed (with their mounts) before the store goes
  local id
  for id in $("$KILN" ps -aq --no-trunc 2>/dev/null); do "$KILN" rm -f "$id" >/dev/null 2>&1; done
  if [ "$KEEP" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
  [ -z "${LOG_DIR:-}" ] || echo "logs in $LOGS"
}
trap cleanup EXIT

pass() { PASSES=$((PASSES + 1)); printf 'PASS  %s\n' "$*"; }
fail() { FAILS=$((FAILS + 1)); printf 'FAIL  %s\n' "$*"; }
info() { printf 'INFO  %s\n' "$*"; }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
not() { ! "$@" >/dev/null 2>&1; }
absent() { local p; for p; do [ ! -e "$p" ] || return 1; done; }
grep_all() { local f=$1 re; shift; for re; do grep -qE "$re" "$f" || return 1; done; }
contains_all() { local s=$1 t; shift; for t; do [[ $s == *"$t"* ]] || return 1; done; }
show_tail() { tail -n "${2:-15}" "$1" | sed 's/^/      /'; }

# kb LOG ARGS...: `kiln build --progress=plain ARGS` in the app copy; output in LOG; sets SECS
kb() {
  local log=$1 t0 rc; shift
  t0=$(now)
  (cd "$CTX" && "$KILN" build --progress=plain "${EXTRA[@]}" "$@") >"$log" 2>&1
  rc=$?
  SECS=$(since "$t0")
  return $rc
}

# step_cached LOG TEXT: the plain log shows the step whose name contains TEXT as CACHED
step_cached() {
  awk -v t="$2" '
    index($0, t) && match($0, /^#[0-9]+ /) { id = substr($0, RSTART, RLENGTH) }
    id != "" && $0 == id "CACHED" { found = 1 }
    END { exit !found }' "$1"
}
step_cached_any() { local log=$1 t; shift; for t; do step_cached "$log" "$t" && return 0; done; return 1; }
deps_cached() { step_cached "$1" 'COPY package*.json' && step_cached "$1" 'RUN npm install'; }
# run_secs LOG: seconds spent in RUN steps (their "#N DONE Xs" lines): the tools' own work
run_secs() {
  awk '/^#[0-9]+ \[/ && /\] RUN / { run[$1] = 1 }
       /^#[0-9]+ DONE / && run[$1] { sub(/s$/, "", $3); t += $3 }
       END { printf "%.1f", t }' "$1"
}
# ran_steps LOG: number of Dockerfile steps that executed ("#N [stage i/n] ..." then "#N DONE";
# FROM steps, which BuildKit also reports as DONE on a rebuild, and "exporting to image", which
# is not a step, do not count)
ran_steps() {
  awk '/^#[0-9]+ \[/ && !/ FROM / { step[$1] = 1 }
       /^#[0-9]+ DONE / && step[$1] { n++ }
       END { print n + 0 }' "$1"
}

# rootfs IMAGE DIR: the image's filesystem, read back with `kiln save` (docker-archive) + tar;
# its config goes to DIR.config.json
rootfs() {
  local img=$1 dir=$2 arc=$WORK/save.tar l
  rm -rf "$dir" "$WORK/save"; mkdir -p "$dir" "$WORK/save"
  "$KILN" save -o "$arc" "$img" || return 1
  tar -C "$WORK/save" -xf "$arc" || return 1
  cp "$WORK/save/$(jq -r '.[0].Config' "$WORK/save/manifest.json")" "$dir.config.json" || return 1
  for l in $(jq -r '.[0].Layers[]' "$WORK/save/manifest.json"); do
    tar -C "$dir" -xf "$WORK/save/$l" || return 1
  done
  rm -rf "$arc" "$WORK/save"
}

# served_app DIR HEADING: DIR is the React build: index.html + a JS bundle with HEADING in it
served_app() {
  local dir=$1 want=$2 js
  grep -q '<div id="root"></div>' "$dir/index.html" 2>/dev/null &&
    grep -q '<title>Multi-stage React App</title>' "$dir/index.html" || return 1
  js=$(grep -oE 'assets/index-[A-Za-z0-9_-]+\.js' "$dir/index.html" | head -n1)
  [ -n "$js" ] && grep -qF "$want" "$dir/$js"
}

file_bytes() { find "$1" ! -type d -printf '%i %s\n' | awk '!seen[$1]++ { s += $2 } END { print s + 0 }'; }
image_id() { "$KILN" inspect -f '{{.Id}}' "$1" 2>/dev/null; }
image_size() { "$KILN" inspect -f '{{.Size}}' "$1"; }
image_layers() { "$KILN" inspect -f '{{len .RootFS.Layers}}' "$1"; }

echo "tutorial-e2e: kiln=$KILN app=$APP work=$WORK"
tar -C "$APP" --exclude=./node_modules --exclude=./build -cf - . | tar -C "$CTX" -xf -
chmod -R u+w "$CTX"

# ---- 1. base images ---------------------------------------------------------------------------
if [ ! -s "$FIXTURES/node-18.docker.tar" ] || [ ! -s "$FIXTURES/nginx-bookworm.docker.tar" ]; then
  if [ -x "$MAKE_BASES" ]; then
    info "making base images with $MAKE_BASES (log $LOGS/make-base-images.log)"
    DOCKER='' "$MAKE_BASES" "$(dirname "$FIXTURES")" >"$LOGS/make-base-images.log" 2>&1 ||
      { fail "make-base-images.sh"; show_tail "$LOGS/make-base-images.log"; exit 1; }
  else
    fail "base archives missing in $FIXTURES and no make-base-images.sh at $MAKE_BASES"
    exit 1
  fi
fi
for stem in node-18 nginx-bookworm; do
  if "$KILN" load -i "$FIXTURES/$stem.docker.tar" >"$LOGS/load-$stem.log" 2>&1
  then pass "kiln load -i $stem.docker.tar"
  else fail "kiln load -i $stem.docker.tar"; show_tail "$LOGS/load-$stem.log"; exit 1; fi
done
"$KILN" images >"$LOGS/images-bases.txt" 2>&1
check "kiln images lists localhost/node:18 and localhost/nginx:bookworm" \
  grep_all "$LOGS/images-bases.txt" '^localhost/node +18 ' '^localhost/nginx +bookworm '

# ---- 2. multi-stage: cold build, content, config ----------------------------------------------
HEADING='Hello from a multi-stage build'
if kb "$LOGS/multi-cold.log" -t tutorial-multistage -f Dockerfile .; then
  T_COLD=$SECS; pass "build Dockerfile (multi-stage, cold cache) in ${SECS}s"
else
  fail "build Dockerfile (multi-stage, cold cache)"; show_tail "$LOGS/multi-cold.log" 25; exit 1
fi
T_NPM=$(awk '/RUN npm install/ && match($0, /^#[0-9]+ /) { id = substr($0, RSTART, RLENGTH) }
             id != "" && index($0, id "DONE ") == 1 { print $3; exit }' "$LOGS/multi-cold.log")
T_VITE=$(awk '/RUN npm run build/ && match($0, /^#[0-9]+ /) { id = substr($0, RSTART, RLENGTH) }
              id != "" && index($0, id "DONE ") == 1 { print $3; exit }' "$LOGS/multi-cold.log")
info "cold build: ${T_COLD}s (npm install ${T_NPM:-?}, npm run build ${T_VITE:-?}; includes unpacking the bases; load average $(cut -d' ' -f1-3 /proc/loadavg))"
# BuildKit's "cold" (fixtures/README.md) is `--no-cache` with the bases already in its store
if kb "$LOGS/multi-nocache.log" --no-cache -t tutorial-multistage -f Dockerfile .; then
  T_NOCACHE=$SECS; pass "build Dockerfile --no-cache (bases unpacked) in ${SECS}s"
  R=$(run_secs "$LOGS/multi-nocache.log")
  info "--no-cache build: ${T_NOCACHE}s, of which RUN steps ${R}s (npm install + vite build), kiln's own time $(awk -v a="$T_NOCACHE" -v b="$R" 'BEGIN { printf "%.2f", a - b }')s"
else
  fail "build Dockerfile --no-cache"; show_tail "$LOGS/multi-nocache.log" 25
fi

if rootfs tutorial-multistage "$WORK/multi-rootfs" 2>"$LOGS/save-multi.log"; then
  check "multi-stage image: /usr/share/nginx/html holds the built React app (index.html + JS bundle with the heading)" \
    served_app "$WORK/multi-rootfs/usr/share/nginx/html" "$HEADING"
  check "multi-stage image ships no node, node_modules or sources (build fat, ship thin)" \
    absent "$WORK/multi-rootfs/usr/bin/node" "$WORK/multi-rootfs/app"
  # BuildKit gives metadata-only steps (EXPOSE) the time of the step before them
  NOTIME=$(jq -r '[.history[] | select(.created == null) | .created_by] | join(", ")' "$WORK/multi-rootfs.config.json")
  check "multi-stage history: every entry has a created time, as BuildKit's do${NOTIME:+ (missing: $NOTIME)}" \
    test -z "$NOTIME"
else
  fail "kiln save tutorial-multistage"; show_tail "$LOGS/save-multi.log"
fi
CFG=$("$KILN" inspect -f '{{json .Config.ExposedPorts}} {{json .Config.Cmd}}' tutorial-multistage 2>&1)
check "multi-stage config: EXPOSE 80 and nginx's CMD inherited ($CFG)" \
  contains_all "$CFG" '"80/tcp"' '["nginx","-g","daemon off;"]'

# ---- 3. no-op rebuild -------------------------------------------------------------------------
ID_COLD=$(image_id tutorial-multistage) NOOPS=()
for i in 1 2 3 4 5; do
  kb "$LOGS/multi-noop.log" -t tutorial-multistage -f Dockerfile . && NOOPS+=("$SECS")
done
T_NOOP=$(printf '%s\n' "${NOOPS[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
RAN=$(ran_steps "$LOGS/multi-noop.log") ID_NOOP=$(image_id tutorial-multistage)
check "no-op rebuild in ${T_NOOP}s (median of ${#NOOPS[@]}: ${NOOPS[*]}): no step ran ($RAN ran), image ID unchanged" \
  test "${#NOOPS[@]}" = 5 -a "$RAN" = 0 -a -n "$ID_COLD" -a "$ID_NOOP" = "$ID_COLD"

# ---- 4. single-stage --------------------------------------------------------------------------
if kb "$LOGS/single.log" -t tutorial-single -f Dockerfile.single .; then
  pass "build Dockerfile.single in ${SECS}s"
  check "single-stage build reuses the installer's cached COPY package*.json + RUN npm install" \
    deps_cached "$LOGS/single.log"
else
  fail "build Dockerfile.single"; show_tail "$LOGS/single.log" 25
fi

# ---- 5. tested variant and a failing test -----------------------------------------------------
if kb "$LOGS/tested.log" -t tutorial-tested -f Dockerfile.tested .; then
  pass "build Dockerfile.tested in ${SECS}s"
  check "Dockerfile.tested ran vitest in the tester stage (Tests 4 passed)" grep -qE 'Tests +4 passed' "$LOGS/tested.log"
else
  fail "build Dockerfile.tested"; show_tail "$LOGS/tested.log" 25
fi
BROKEN=$WORK/broken
cp -a "$CTX" "$BROKEN"
sed -i "s/toBe('clicked 1 time')/toBe('clicked one time')/" "$BROKEN/src/App.test.jsx"
if (cd "$BROKEN" && "$KILN" build --progress=plain "${EXTRA[@]}" -t tutorial-broken -f Dockerfile.tested .) >"$LOGS/broken.log" 2>&1; then
  fail "Dockerfile.tested with a failing test built anyway (tester stage skipped?)"
elif grep -qE 'Tests +1 failed' "$LOGS/broken.log"; then
  pass "Dockerfile.tested with a failing test fails the build (vitest: Tests 1 failed)"
else
  fail "Dockerfile.tested with a failing test failed, but not in vitest:"; show_tail "$LOGS/broken.log"
fi
check "the failed build tagged nothing" not "$KILN" inspect tutorial-broken

# ---- 6. --target installer, and a tester stage nothing needs ----------------------------------
if kb "$LOGS/target.log" --target installer -t tutorial-installer -f Dockerfile .; then
  pass "build --target installer in ${SECS}s"
  check "--target installer skips the nginx stage" not grep -q 'localhost/nginx' "$LOGS/target.log"
  if rootfs tutorial-installer "$WORK/installer-rootfs" 2>"$LOGS/save-installer.log"; then
    check "installer image holds /app/build and /app/node_modules" \
      test -f "$WORK/installer-rootfs/app/build/index.html" -a -d "$WORK/installer-rootfs/app/node_modules/vite"
    rm -rf "$WORK/installer-rootfs"
  else
    fail "kiln save tutorial-installer"; show_tail "$LOGS/save-installer.log"
  fi
else
  fail "build --target installer"; show_tail "$LOGS/target.log" 25
fi
sed -e 's/COPY --from=tester/COPY --from=installer/' -e 's/RUN npm test/RUN npm test \&\& echo TESTER-RAN/' \
  "$CTX/Dockerfile.tested" >"$WORK/Dockerfile.unref"
if kb "$LOGS/unref.log" -t tutorial-unref -f "$WORK/Dockerfile.unref" .; then
  check "a tester stage the target does not need never runs (as BuildKit skips it)" \
    not grep -q 'TESTER-RAN' "$LOGS/unref.log"
else
  fail "build with an unreferenced tester stage"; show_tail "$LOGS/unref.log"
fi

# ---- 7. edit src/App.jsx, rebuild -------------------------------------------------------------
NEW="Edited at $(date +%s%N)"
sed -i "s/$HEADING/$NEW/" "$CTX/src/App.jsx"
if kb "$LOGS/multi-edit.log" --explain -t tutorial-multistage -f Dockerfile .; then
  T_EDIT=$SECS; pass "rebuild after editing src/App.jsx in ${SECS}s (RUN npm run build $(run_secs "$LOGS/multi-edit.log")s of it)"
else
  fail "rebuild after editing src/App.jsx"; show_tail "$LOGS/multi-edit.log" 25
fi
check "after the edit, COPY package*.json and RUN npm install stay CACHED" deps_cached "$LOGS/multi-edit.log"
check "after the edit, COPY . . and RUN npm run build ran again" \
  not step_cached_any "$LOGS/multi-edit.log" 'COPY . .' 'RUN npm run build'
MISS=$(grep -m1 'cache miss:' "$LOGS/multi-edit.log" | sed 's/^#[0-9]* cache miss: //')
info "--explain for COPY . .: ${MISS:-<nothing>}"
check "--explain names the changed file src/App.jsx" grep -q 'cache miss:.*App\.jsx' "$LOGS/multi-edit.log"
if kb "$LOGS/multi-local.log" -o "type=local,dest=$WORK/out" -f Dockerfile .; then
  check "-o type=local export: usr/share/nginx/html serves the edited heading" \
    served_app "$WORK/out/usr/share/nginx/html" "$NEW"
else
  fail "kiln build -o type=local"; show_tail "$LOGS/multi-local.log"
fi
if rootfs tutorial-multistage "$WORK/multi-rootfs" 2>>"$LOGS/save-multi.log"; then
  check "the re-tagged image holds the edited app" served_app "$WORK/multi-rootfs/usr/share/nginx/html" "$NEW"
fi

# ---- 8. sizes -----------------------------------------------------------------------------------
"$KILN" images >"$LOGS/images.txt" 2>&1
grep -E '^(REPOSITORY|tutorial-(multistage|single)) ' "$LOGS/images.txt" | sed 's/^/      /'
S_MULTI=$(image_size tutorial-multistage) S_SINGLE=$(image_size tutorial-single)
if [ -n "$S_MULTI" ] && [ -n "$S_SINGLE" ] && [ "$S_MULTI" -lt "$S_SINGLE" ]; then
  pass "multi-stage image is smaller: $S_MULTI vs $S_SINGLE bytes ($(awk -v m="$S_MULTI" -v s="$S_SINGLE" 'BEGIN { printf "%.0f", 100 * (1 - m / s) }')% smaller), layers $(image_layers tutorial-multistage) vs $(image_layers tutorial-single)"
else
  fail "image sizes: multi-stage ${S_MULTI:-?} vs single-stage ${S_SINGLE:-?} bytes"
fi
# docker's SIZE sums file sizes (hard links once); kiln's sums layer tar bytes (headers included)
rootfs tutorial-single "$WORK/single-rootfs" 2>>"$LOGS/save-single.log"
info "file bytes (what docker's SIZE counts) of the same filesystems: multi-stage $(file_bytes "$WORK/multi-rootfs"), single-stage $(file_bytes "$WORK/single-rootfs")"
rm -rf "$WORK/single-rootfs"
info "times: first build ${T_COLD:-?}s, --no-cache ${T_NOCACHE:-?}s, no-op ${T_NOOP:-?}s, one edit ${T_EDIT:-?}s (load average $(cut -d' ' -f1-3 /proc/loadavg))"

# ---- 9. kiln run: the app served by nginx in a container ---------------------------------------
# As the tutorial runs it: `run -d -p 3000:80 --name app-container multistage` (3000, or the first
# free port above it when something listens there), then curl, exec, logs, stats, port, headless
# Chromium (DOM text + screenshot), stop, rm: and nothing may be left of the container.
"$KILN" tag tutorial-multistage multistage >"$LOGS/tag.log" 2>&1 || { fail "kiln tag tutorial-multistage multistage"; show_tail "$LOGS/tag.log"; }
listening() { [ -n "$(ss -ltnH "sport = :$1" 2>/dev/null)" ]; }
PORT=3000
while listening "$PORT" && [ "$PORT" -lt 3100 ]; do PORT=$((PORT + 1)); done
[ "$PORT" = 3000 ] || info "port 3000 is taken on this host (ss -ltn): publishing on $PORT instead"
URL=http://127.0.0.1:$PORT
if "$KILN" run -d -p "$PORT:80" --name app-container multistage >"$LOGS/run.out" 2>"$LOGS/run.log"; then
  CID=$(tail -n1 "$LOGS/run.out")
  pass "kiln run -d -p $PORT:80 --name app-container multistage (ID ${CID:0:12})"
else
  CID=''; fail "kiln run -d -p $PORT:80 --name app-container multistage"; show_tail "$LOGS/run.log"
fi
if [ -n "$CID" ]; then
  up=0
  for _ in $(seq 1 100); do
    curl -fsS -o "$LOGS/index.html" "$URL/" 2>"$LOGS/curl.log" && { up=1; break; }
    sleep 0.1
  done
  if [ "$up" = 1 ]; then
    check "curl -f $URL/ returns the app's index.html" \
      grep_all "$LOGS/index.html" '<div id="root"></div>' '<title>Multi-stage React App</title>'
    JS=$(grep -oE '/?assets/index-[A-Za-z0-9_-]+\.js' "$LOGS/index.html" | head -n1)
    if [ -n "$JS" ] && curl -fsS -o "$LOGS/bundle.js" "$URL/${JS#/}" 2>>"$LOGS/curl.log"; then
      check "curl -f $URL/${JS#/} serves the JS bundle (the edited heading in it)" grep -qF "$NEW" "$LOGS/bundle.js"
    else
      fail "the JS bundle (${JS:-none named in index.html}) is not served"; show_tail "$LOGS/curl.log"
    fi
  else
    fail "curl -f $URL/ never answered (10 s)"; show_tail "$LOGS/curl.log"
  fi
  "$KILN" exec app-container ls -la /usr/share/nginx/html >"$LOGS/exec-ls.txt" 2>&1
  check "kiln exec app-container ls -la /usr/share/nginx/html lists index.html and assets/" \
    grep_all "$LOGS/exec-ls.txt" ' index\.html$' ' assets$'
  "$KILN" logs app-container >"$LOGS/container.log" 2>&1
  check "kiln logs app-container shows the requests (GET / and GET ${JS:-/assets/...}, 200)" \
    grep_all "$LOGS/container.log" '"GET / HTTP/1\.1" 200' "\"GET /${JS#/} HTTP/1\\.1\" 200"
  "$KILN" stats --no-stream >"$LOGS/stats.txt" 2>&1
  MEM=$("$KILN" stats --no-stream --format '{{.Name}} {{.MemUsage}}' 2>&1 | awk '$1 == "app-container" { print $2 }')
  check "kiln stats --no-stream shows app-container's memory use (${MEM:-none})" \
    eval 'grep -qE "^[0-9a-f]{12} +app-container +[0-9.]+%" "$LOGS/stats.txt" && [[ $MEM =~ ^[0-9.]+[KMG]i?B$ ]] && [[ ! $MEM =~ ^0(\.0+)?[KMG]?i?B$ ]]'
  sed 's/^/      /' "$LOGS/stats.txt"
  PORTS=$("$KILN" port app-container 2>&1)
  check "kiln port app-container prints 80/tcp -> 0.0.0.0:$PORT (got: $PORTS)" test "$PORTS" = "80/tcp -> 0.0.0.0:$PORT"

  # Headless Chromium renders the page: React's text in the DOM, a screenshot kept in $LOGS.
  # Only this host's loopback is reached: host names resolve to nothing, background services off.
  if command -v chromium >/dev/null; then
    chrome() {
      HOME=$WORK timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-default-apps --disable-domain-reliability --no-pings --hide-scrollbars \
        --host-resolver-rules='MAP * ~NOTFOUND, EXCLUDE 127.0.0.1' --no-proxy-server \
        --user-data-dir="$WORK/chromium-profile" --virtual-time-budget=5000 "$@"
    }
    chrome --dump-dom "$URL/" >"$LOGS/dom.html" 2>"$LOGS/chromium-dom.log"
    check "headless Chromium: the rendered DOM holds the React app's text (heading, tagline, button)" \
      grep_all "$LOGS/dom.html" "<h1>$NEW</h1>" 'Built with node in stage 1, served by nginx in stage 2\.' '<button>'
    chrome --window-size=1024,768 --screenshot="$LOGS/app-container.png" "$URL/" >"$LOGS/chromium-shot.log" 2>&1
    check "headless Chromium: a screenshot of the page, kept as $LOGS/app-container.png" \
      eval '[ "$(head -c 8 "$LOGS/app-container.png" 2>/dev/null | od -An -tx1 | tr -d " \n")" = 89504e470d0a1a0a ] && [ "$(stat -c %s "$LOGS/app-container.png")" -gt 5000 ]'
  else
    fail "chromium is not installed (Debian package chromium; bash scripts/install-deps.sh)"
  fi

  # stop + rm: no process, mount, cgroup or listening socket of the container is left
  check "kiln stop app-container" eval '"$KILN" stop app-container >"$LOGS/stop.log" 2>&1'
  check "kiln rm app-container" eval '"$KILN" rm app-container >"$LOGS/rm.log" 2>&1'
  # its_processes: live processes whose command line names the container or the store, or whose
  # cgroup is the container's
  its_processes() {
    local d pid
    for d in /proc/[0-9]*; do
      pid=${d#/proc/}
      [ "$pid" = $$ ] || [ "$pid" = "$BASHPID" ] && continue
      grep -q '^State:.*Z' "$d/status" 2>/dev/null && continue
      if { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null | grep -qF -e "$CID" -e "$KILN_ROOT" ||
        grep -qF "$CID" "$d/cgroup" 2>/dev/null; then
        printf '%s ' "$pid"
      fi
    done
  }
  LEFT=$(its_processes)
  for _ in $(seq 1 50); do [ -z "$LEFT" ] && break; sleep 0.1; LEFT=$(its_processes); done
  check "after stop + rm: no process of the container (/proc)${LEFT:+: $LEFT}" test -z "$LEFT"
  MNT=$(grep -cF -e "$KILN_ROOT" -e "$CID" /proc/self/mountinfo)
  check "after stop + rm: no mount under the store or of the container (/proc/self/mountinfo: $MNT)" test "$MNT" = 0
  CG=$(ls -d /sys/fs/cgroup/*/kiln/"$CID" /sys/fs/cgroup/kiln/"$CID" 2>/dev/null | tr '\n' ' ')
  check "after stop + rm: no cgroup (/sys/fs/cgroup/*/kiln/ID)${CG:+: $CG}" test -z "$CG"
  check "after stop + rm: nothing listens on port $PORT (ss -ltn)" not listening "$PORT"
  check "after stop + rm: kiln ps -a lists nothing" test -z "$("$KILN" ps -aq 2>&1)"
  CID=''
fi

echo "tutorial-e2e: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
