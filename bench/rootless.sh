#!/usr/bin/env bash
# bench/rootless.sh [CASE...] -- kiln rootless (an ordinary user) against kiln as root, and
# `buildah bud` as the same user, on the shared bench cases (../shared/bench/cases) and this
# repository's (bench/cases), in the same run, interleaved rep by rep so load drifts hit
# every tool alike.
#
# Per case and tool, REPS times (default 5):
#   cold         a fresh, empty store (the base image loaded, untimed), then the build
#   warm         the same build again, nothing changed
#   incremental  one line appended to the case's INCR_FILE, then the build
# Only the build command is timed (wall clock). Raw records go to $OUT (default
# bench/results/rootless-<UTC date>.tsv: tool case mode rep seconds rc); a table of medians
# (min-max, n) and the rootless/root and buildah/kiln-rootless ratios is printed at the end.
#
# Needs root (it runs the rootless tools through `runuser -u $BENCH_USER`), the user with a
# /etc/subuid and /etc/subgid range (the tests' `kilntest`: kiln_test::prereq::test_user
# makes it), busybox-static, python3, and buildah for the buildah column (TOOLS="root
# rootless" leaves it out).
#
#   KILN=target/release/kiln REPS=5 bench/rootless.sh                  # every case
#   KILN=... bench/rootless.sh seedlike parallel                       # some cases
# Env: KILN (default target/release/kiln, built if missing), REPS, TOOLS (default "root
# rootless buildah"), BENCH_USER (default kilntest), WORK (default /var/tmp/kiln-bench-rootless),
# OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
REPS=${REPS:-5}
TOOLS=${TOOLS:-root rootless buildah}
BENCH_USER=${BENCH_USER:-kilntest}
WORK=${WORK:-/var/tmp/kiln-bench-rootless}
mkdir -p bench/results
OUT=${OUT:-$repo/bench/results/rootless-$(date -u +%F).tsv}
shared=$(cd "$repo/../shared/bench" 2>/dev/null && pwd || true)

[ "$(id -u)" = 0 ] || { echo "rootless.sh: run as root (it runs the rootless tools as $BENCH_USER)" >&2; exit 1; }
uid=$(id -u "$BENCH_USER" 2>/dev/null) || {
  echo "rootless.sh: no user $BENCH_USER: useradd -m $BENCH_USER and give it a range in /etc/subuid and /etc/subgid" >&2; exit 1; }
grep -q "^$BENCH_USER:" /etc/subuid || { echo "rootless.sh: $BENCH_USER has no /etc/subuid range" >&2; exit 1; }
case " $TOOLS " in *" buildah "*) command -v buildah >/dev/null || {
  echo "rootless.sh: buildah is missing (apt-get install buildah), or set TOOLS=\"root rootless\"" >&2; exit 1; } ;; esac

KILN=${KILN:-$repo/target/release/kiln}
[ -x "$KILN" ] || cargo build --release -q -p kiln
rm -rf "$WORK"
mkdir -p "$WORK/bin" "$WORK/ctx" "$WORK/stores"
chmod 0755 "$WORK" "$WORK/bin" "$WORK/ctx"
chown "$BENCH_USER" "$WORK/stores"
install -m 0755 "$KILN" "$WORK/bin/kiln"
kiln=$WORK/bin/kiln
bash scripts/make-busybox-image.sh "$WORK/busybox.tar" >/dev/null
chmod 0644 "$WORK/busybox.tar"

# The cases: NAME=DIR for each case directory with a Dockerfile.
declare -A casedir
for d in "$shared"/cases/*/ "$repo"/bench/cases/*/; do
  [ -f "$d/Dockerfile" ] && casedir[$(basename "$d")]=${d%/}
done
cases=("$@")
[ ${#cases[@]} -gt 0 ] || mapfile -t cases < <(printf '%s\n' "${!casedir[@]}" | sort)

# The user's runtime directory for this run: kiln keeps the holder of the user's namespace
# there (docs/rootless.md); it is killed at the end.
mkdir -p "$WORK/run-user"; chown "$BENCH_USER" "$WORK/run-user"; chmod 0700 "$WORK/run-user"
kill_holder() {
  local pid
  pid=$(awk '{print $1}' "$WORK/run-user/kiln/userns.pid" 2>/dev/null) || return 0
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = kiln-userns ] && kill -9 "$pid"
  return 0
}
trap kill_holder EXIT
as_user() { runuser -u "$BENCH_USER" -- env -i HOME="/home/$BENCH_USER" XDG_RUNTIME_DIR="$WORK/run-user" \
  PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "$@"; }

# Root's kiln goes through the same wrapper (runuser and env cost about 6 ms, which would
# otherwise count against rootless alone in the warm cells).
as_root() { runuser -u root -- env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "$@"; }

# tool -> how it runs: root kiln, kiln as the user, buildah as the user (a store per run).
run_as() {   # run_as TOOL CMD...
  if [ "$1" = root ]; then shift; as_root "$@"; else shift; as_user "$@"; fi
}
store_of() { echo "$WORK/stores/$1-$2-$3"; }     # TOOL CASE REP
buildah_of() { echo "buildah --root $1/root --runroot $1/run --storage-driver overlay"; }

prepare() {   # prepare TOOL CASE REP: a fresh context copy and an empty store with the base
  local tool=$1 case=$2 rep=$3 src=${casedir[$2]} ctx=$WORK/ctx/$1-$2 store
  rm -rf "$ctx"; mkdir -p "$ctx"
  cp "$src/Dockerfile" "$ctx/"
  [ -d "$src/context" ] && cp -a "$src/context/." "$ctx/"
  [ -x "$src/prepare.sh" ] && "$src/prepare.sh" "$ctx" >/dev/null 2>&1
  [ "$tool" = root ] || chown -R "$BENCH_USER" "$ctx"
  store=$(store_of "$tool" "$case" "$rep")
  mkdir -p "$store"
  [ "$tool" = root ] || chown "$BENCH_USER" "$store"
  case $tool in
    root|rootless) run_as "$tool" env KILN_ROOT="$store" "$kiln" load -q -i "$WORK/busybox.tar" >/dev/null ;;
    buildah)
      local b; b=$(buildah_of "$store")
      as_user $b pull -q "docker-archive:$WORK/busybox.tar" >/dev/null
      as_user $b tag "$(as_user $b images -q | head -1)" localhost/busybox:latest ;;
  esac
}

build() {   # build TOOL CASE REP -> prints "SECONDS RC"
  local tool=$1 case=$2 rep=$3 ctx=$WORK/ctx/$1-$2 store args=() t0 t1 rc
  store=$(store_of "$tool" "$case" "$rep")
  local BUILD_ARGS=
  # shellcheck disable=SC1090,SC1091
  [ -f "${casedir[$case]}/case.env" ] && . "${casedir[$case]}/case.env"
  read -r -a args <<<"${BUILD_ARGS:-}"
  t0=$EPOCHREALTIME
  case $tool in
    root|rootless) run_as "$tool" env KILN_ROOT="$store" "$kiln" build -q -t "bench-$case" "${args[@]}" "$ctx" \
                     >"$WORK/last.log" 2>&1 ;;
    buildah) as_user $(buildah_of "$store") bud --layers --pull=never --network host --isolation oci \
               --runtime /usr/sbin/runc -q -t "bench-$case" "${args[@]}" "$ctx" >"$WORK/last.log" 2>&1 ;;
  esac
  rc=$?
  t1=$EPOCHREALTIME
  if [ $rc -ne 0 ]; then
    echo "rootless.sh: $tool $case failed (rc $rc):" >&2; tail -5 "$WORK/last.log" >&2
  fi
  awk -v a="$t0" -v b="$t1" -v rc="$rc" 'BEGIN{printf "%.4f %d\n", b-a, rc}'
}

incr() {   # incr TOOL CASE: the incremental edit
  local INCR_FILE=
  # shellcheck disable=SC1090,SC1091
  [ -f "${casedir[$2]}/case.env" ] && . "${casedir[$2]}/case.env"
  [ -n "$INCR_FILE" ] && echo "// edit $RANDOM$RANDOM" >> "$WORK/ctx/$1-$2/$INCR_FILE"
}

echo "# rootless.sh $(date -u +%FT%TZ) kiln=$KILN reps=$REPS tools=$TOOLS" >> "$OUT"
for case in "${cases[@]}"; do
  [ -n "${casedir[$case]:-}" ] || { echo "rootless.sh: no case $case" >&2; exit 2; }
  for rep in $(seq 1 "$REPS"); do
    for tool in $TOOLS; do
      prepare "$tool" "$case" "$rep"
      for mode in cold warm incremental; do
        [ "$mode" = incremental ] && incr "$tool" "$case"
        set +e; read -r secs rc < <(build "$tool" "$case" "$rep"); set -e
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$case" "$mode" "$rep" "$secs" "$rc" | tee -a "$OUT"
      done
      # The stores hold files of the user's subordinate uids: root removes them.
      rm -rf "$(store_of "$tool" "$case" "$rep")"
    done
  done
done

python3 - "$OUT" "$TOOLS" <<'PY'
import sys, statistics, collections
path, tools = sys.argv[1], sys.argv[2].split()
# the last run's records only (after the last "# rootless.sh" line)
lines = open(path).read().splitlines()
start = max(i for i, l in enumerate(lines) if l.startswith("# rootless.sh"))
d = collections.defaultdict(list)
fails = collections.Counter()
for l in lines[start + 1:]:
    t, c, m, r, s, rc = l.split("\t")
    if rc != "0":
        fails[(t, c, m)] += 1
        continue
    d[(t, c, m)].append(float(s))
cell = lambda v: f"**{statistics.median(v):.2f}** ({min(v):.2f}-{max(v):.2f}, n={len(v)})" if v else "FAIL"
med = lambda k: statistics.median(d[k]) if d[k] else None
hdr = "| case | mode | " + " | ".join(tools) + " | rootless/root |" + (" buildah/rootless |" if "buildah" in tools else "")
print(hdr)
print("|" + "---|" * (hdr.count("|") - 1))
ratios = []
for c in sorted({k[1] for k in d} | {k[1] for k in fails}):
    for m in ("cold", "warm", "incremental"):
        row = [cell(d[(t, c, m)]) + (f" {fails[(t, c, m)]} failed" if fails[(t, c, m)] else "") for t in tools]
        r = med(("rootless", c, m)) / med(("root", c, m)) if med(("rootless", c, m)) and med(("root", c, m)) else None
        if r and m != "warm":
            ratios.append(r)
        b = med(("buildah", c, m)) / med(("rootless", c, m)) if "buildah" in tools and med(("buildah", c, m)) and med(("rootless", c, m)) else None
        line = f"| {c} | {m} | " + " | ".join(row) + f" | {r:.2f} |" if r else f"| {c} | {m} | " + " | ".join(row) + " | - |"
        if "buildah" in tools:
            line += f" {b:.2f} |" if b else " - |"
        print(line)
if ratios:
    print(f"\nrootless/root over cold and incremental cells: median {statistics.median(ratios):.2f}, "
          f"max {max(ratios):.2f} (goal <= 1.2); warm cells are tens of milliseconds and left out")
PY
