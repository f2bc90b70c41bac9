#!/usr/bin/env bash
# Pull then first build of the tutorial's React app (issue 10): the base images are only in a
# local registry, every store and cache is empty, and the whole wall time is measured:
#   docker: docker pull REG/node:18 && docker pull REG/nginx:bookworm
#           && DOCKER_BUILDKIT=1 docker build --network=host -t app:d APP
#   kiln:   kiln build --network=host -t app:k APP   (FROM images the store lacks are pulled)
#
#   bench/pull-build.sh [RUNS]   RUNS=5 by default; KILN=path/to/kiln overrides the binary
#                                DOCKERFILE=NAME: another Dockerfile of the app (default Dockerfile)
#
# The app is ../shared/fixtures/react-app (node installer: npm install, vite build → nginx);
# its FROM lines are rewritten to the registry's names. The bases are the fixtures'
# localhost/node:18 and localhost/nginx:bookworm (../shared/fixtures/make-base-images.sh makes
# them offline), pushed as docker schema 2 images with skopeo to Debian's docker-registry on
# 127.0.0.1 (plain HTTP). docker is a private dockerd 20.10 started by this script (its own data
# root, socket and containerd namespace) so that its image store and BuildKit cache can be emptied
# without touching the machine's dockerd; before each docker run its images and build cache are
# removed (`docker system prune -af`), before each kiln run its store (KILN_ROOT) is removed.
# Both builds run `npm install` against the npm registry (the only non-loopback traffic).
# The cells alternate, the first tool alternating between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
fixtures=$(readlink -f ../shared/fixtures)
images=${FIXTURE_IMAGES:-/var/tmp/kiln-fixtures/images}
dockerfile=${DOCKERFILE:-Dockerfile}
kiln=${KILN:-}
if [ -z "$kiln" ]; then
  cargo build --release -q -p kiln
  kiln=${CARGO_TARGET_DIR:-target}/release/kiln
fi
kiln=$(readlink -f "$kiln")
for c in skopeo docker-registry dockerd docker python3 /usr/bin/time curl; do
  command -v "$c" >/dev/null || { echo "bench/pull-build.sh: needs $c (bash scripts/install-deps.sh)" >&2; exit 1; }
done
for f in node-18 nginx-bookworm; do
  [ -f "$images/$f.docker.tar" ] || { echo "bench/pull-build.sh: no $images/$f.docker.tar (run ../shared/fixtures/make-base-images.sh)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/kiln-bench-pb.XXXXXX)
reg_pid= dockerd_pid=
D() { /usr/bin/docker -H "unix://$work/docker.sock" "$@"; }
cleanup() {
  [ -n "$dockerd_pid" ] && { D system prune -af >/dev/null 2>&1 || true; kill "$dockerd_pid" 2>/dev/null; }
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null
  wait 2>/dev/null
  # dockerd's overlay2 leaves its data root mounted on itself.
  while mountpoint -q "$work/docker/overlay2" 2>/dev/null; do umount "$work/docker/overlay2"; done
  rm -rf "$work"
}
trap cleanup EXIT

. bench/lib/registry.sh
start_registry "$work"
skopeo copy -q --dest-tls-verify=false docker-archive:"$images/node-18.docker.tar" docker://"$reg/node:18"
skopeo copy -q --dest-tls-verify=false docker-archive:"$images/nginx-bookworm.docker.tar" docker://"$reg/nginx:bookworm"

# A private dockerd (the machine's is shared: its cache must not be emptied, and it may hold
# the same bases under other names).
mkdir -p "$work/docker" "$work/de"
dockerd --data-root "$work/docker" --exec-root "$work/de" -H "unix://$work/docker.sock" \
  --pidfile "$work/docker.pid" --containerd-namespace "kpb$$" --containerd-plugins-namespace "kpbp$$" \
  --bridge=none --iptables=false --ip-masq=false --storage-driver=overlay2 >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 150); do D version >/dev/null 2>&1 && break; sleep 0.2; done
D version --format 'private dockerd {{.Server.Version}}, pid '"$dockerd_pid" >&2

app=$work/app
mkdir -p "$app"
tar -C "$fixtures/react-app" --exclude=./node_modules --exclude=./build -cf - . | tar -C "$app" -xf -
sed -i -e "s#^FROM localhost/node:18#FROM $reg/node:18#" -e "s#^FROM localhost/nginx:bookworm#FROM $reg/nginx:bookworm#" "$app/$dockerfile"
grep '^FROM' "$app/$dockerfile" >&2

# npm registry for the builds: passed only when the host's npm names another one than npm's default
# (as ../shared/fixtures/measure.sh does).
regarg=()
cur=$(cd / && npm config get registry 2>/dev/null || true)
if [ -n "$cur" ] && [ "$cur" != "https://registry.npmjs.org/" ]; then regarg=(--build-arg "NPM_CONFIG_REGISTRY=$cur"); fi

t() {  # wall seconds of a command; its output to a log
  local log=$1; shift
  local s e
  s=$(date +%s.%N)
  "$@" >"$log" 2>&1 || { echo "FAILED: $*" >&2; tail -30 "$log" >&2; exit 1; }
  e=$(date +%s.%N)
  python3 -c "print(f'{$e - $s:.3f}')"
}
docker_cell() {
  D system prune -af >/dev/null
  [ -z "$(D images -aq)" ] || { echo "docker store not empty" >&2; exit 1; }
  t "$work/logs/docker.$1.log" bash -c "
    set -e
    echo PULLS_START_AT \$(date +%s.%N)
    /usr/bin/docker -H unix://$work/docker.sock pull $reg/node:18
    /usr/bin/docker -H unix://$work/docker.sock pull $reg/nginx:bookworm
    echo PULLS_DONE_AT \$(date +%s.%N)
    DOCKER_BUILDKIT=1 /usr/bin/docker -H unix://$work/docker.sock build --progress=plain --network=host ${regarg[*]} -t app:d -f $app/$dockerfile $app"
}
kiln_cell() {
  rm -rf "$work/kiln"
  KILN_ROOT=$work/kiln t "$work/logs/kiln.$1.log" "$kiln" build --progress=plain --network=host "${regarg[@]}" -t app:k -f "$app/$dockerfile" "$app"
}
mkdir -p "$work/logs"
results=$work/results.tsv
for i in $(seq "$runs"); do
  if (( i % 2 )); then order="kiln docker"; else order="docker kiln"; fi
  for tool in $order; do
    v=$("${tool}_cell" "$i")
    # docker: the part of the wall time spent in the two pulls (kiln's pulls are in its log, #1 #2)
    pulls=-
    if [ "$tool" = docker ]; then
      pulls=$(python3 -c "import sys; print(f'{float(sys.argv[1]) - float(sys.argv[2]):.2f}')" "$(awk '/^PULLS_DONE_AT/ {print $2}' "$work/logs/docker.$i.log")" "$(awk '/^PULLS_START_AT/ {print $2}' "$work/logs/docker.$i.log")")
    else   # the sum of kiln's "[internal] load metadata" (pull) steps' times
      pulls=$(python3 - "$work/logs/kiln.$i.log" <<'PY'
import re, sys
steps, total = set(), 0.0
for line in open(sys.argv[1]):
    m = re.match(r"#(\d+) \[internal\] load metadata for ", line)
    if m: steps.add(m.group(1))
    m = re.match(r"#(\d+) DONE ([0-9.]+)s", line)
    if m and m.group(1) in steps: total += float(m.group(2))
print(f"{total:.2f}")
PY
)
    fi
    echo -e "$tool\t$v\t$pulls" >>"$results"
  done
  echo "run $i done ($(tail -2 "$results" | tr '\n\t' ' :'))" >&2
done
# Sanity: both images exist and have the app.
D image inspect app:d --format 'docker image {{.Id}} {{.Size}}' >&2
KILN_ROOT=$work/kiln "$kiln" images app:k >&2
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
[ -n "${RESULTS_COPY:-}" ] && cp "$results" "$RESULTS_COPY"
[ -n "${LOGS_COPY:-}" ] && { mkdir -p "$LOGS_COPY"; cp "$work"/logs/*.log "$LOGS_COPY"/; }
python3 - "$results" <<'PY'
import sys, statistics, collections
rows = collections.OrderedDict()
pulls = {}
for line in open(sys.argv[1]):
    tool, wall, p = line.split()
    rows.setdefault(tool, []).append(float(wall))
    pulls.setdefault(tool, []).append(float(p))
names = {"docker": "docker pull (node, nginx) + docker build (BuildKit)", "kiln": "kiln build (pulls the bases)"}
print("| tool | command | median s | min-max | runs | of which pulls, median s |")
print("|---|---|---|---|---|---|")
med = {}
for tool, w in rows.items():
    med[tool] = statistics.median(w)
    print(f"| {tool} | {names[tool]} | **{med[tool]:.2f}** | {min(w):.2f}-{max(w):.2f} | {' '.join(f'{x:.2f}' for x in w)} | {statistics.median(pulls[tool]):.2f} |")
if "kiln" in med and "docker" in med:
    print(f"\nkiln / docker = {med['kiln'] / med['docker']:.2f} (wall, medians)")
PY
