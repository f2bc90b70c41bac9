#!/usr/bin/env bash
# tutorial-commands.sh — the tutorial's build and image commands, run unchanged with docker or
# kiln: only the word `docker`/`kiln` changes. Prints a summary (tags, sizes, history, config,
# the saved archive's tags and layer count) on stdout; with --compare, runs both and diffs the
# two summaries (exit 1 if they differ).
#
# Usage: TOOL=docker|kiln scripts/tutorial-commands.sh [--tutorial] [--keep]
#        scripts/tutorial-commands.sh --compare [--tutorial] [--keep]
#
#   --compare   run with TOOL=docker and TOOL=kiln, print `diff -u docker kiln` of the summaries
#   --tutorial  the real tutorial app (examples/tutorial-react, node:18 + nginx bases made with
#               debootstrap by ../shared/fixtures/make-base-images.sh; `npm install` needs the
#               npm registry). Default: a small two-stage app on the busybox base
#               (scripts/make-busybox-image.sh) that uses the same commands, in seconds.
#   --keep      keep the work directory (logs, store, archives)
#
# The commands, in the tutorial's order (`tool` is docker or kiln):
#   tool load -i BASE.tar                      tool images
#   tool build -t multistage .                 tool history multistage
#   tool build --target installer -t installer .
#   tool build --build-arg GREETING=hi -t multistage:hi .
#   tool inspect multistage                    tool save -o multistage.tar multistage
#   (edit the app, rebuild: the old image is dangling)
#   tool image rm installer                    tool image prune -f
#
# Env: KILN (default target/release/kiln of this repo), DOCKER (default /usr/bin/docker, 20.10).
# docker runs against a private dockerd this script starts (its own data root in the work
# directory, stopped on exit), so `image prune` touches nothing else; set DOCKER_HOST to use a
# running daemon instead. Builds pass `--network=host` with both tools (the private daemon has
# no bridge). FIXTURES (default /var/tmp/kiln-fixtures/images) holds the --tutorial bases.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
COMPARE=0 TUTORIAL=0 KEEP=0
for a in "$@"; do
  case $a in
    --compare) COMPARE=1 ;;
    --tutorial) TUTORIAL=1 ;;
    --keep) KEEP=1 ;;
    -h | --help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "tutorial-commands.sh: unknown argument: $a (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$COMPARE" = 1 ]; then
  out=$(mktemp -d "${TMPDIR:-/tmp}/tutorial-compare.XXXXXX") || exit 2
  flags=()
  [ "$TUTORIAL" = 1 ] && flags+=(--tutorial)
  [ "$KEEP" = 1 ] && flags+=(--keep)
  for t in docker kiln; do
    if ! TOOL=$t bash "$0" "${flags[@]}" >"$out/$t"; then
      echo "tutorial-commands.sh: TOOL=$t failed; its summary so far:" >&2
      cat "$out/$t" >&2
      rm -rf "$out"
      exit 2
    fi
  done
  # One line differs on purpose (docs/docker-compat.md, image prune): removing the dangling
  # image frees its layer blob in kiln's store, while docker's BuildKit cache still holds that
  # layer, so docker reports 0B. It is shown, not compared.
  for t in docker kiln; do
    echo "$t: $(grep -h '^Total reclaimed space' "$out/$t")"
    grep -v '^Total reclaimed space' "$out/$t" >"$out/$t.cmp"
  done
  if diff -u --label docker --label kiln "$out/docker.cmp" "$out/kiln.cmp"; then
    echo "same summary with docker and kiln ($(wc -l <"$out/kiln.cmp") lines compared)"
    rc=0
  else
    rc=1
  fi
  rm -rf "$out"
  exit $rc
fi

TOOL=${TOOL:-kiln}
case $TOOL in
  docker) BIN=${DOCKER:-/usr/bin/docker} ;;
  kiln)
    BIN=${KILN:-$REPO/target/release/kiln}
    [ -x "$BIN" ] || BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/kiln
    ;;
  *) echo "tutorial-commands.sh: TOOL must be docker or kiln, not '$TOOL'" >&2; exit 2 ;;
esac
[ -x "$BIN" ] || { echo "tutorial-commands.sh: $TOOL binary not found at $BIN" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "tutorial-commands.sh: needs root (kiln builds, dockerd)" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tutorial-commands.XXXXXX") || exit 2
LOGS=$WORK/logs APP=$WORK/app
mkdir -p "$LOGS" "$APP"
DOCKERD_PID=
cleanup() {
  if [ -n "$DOCKERD_PID" ]; then
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
    # What dockerd may leave mounted (its network namespace), deepest first.
    awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
      while read -r m; do umount -l "$m"; done
  fi
  if [ "$KEEP" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
die() { echo "tutorial-commands.sh ($TOOL): $*" >&2; exit 1; }

if [ "$TOOL" = kiln ]; then
  export KILN_ROOT=$WORK/root
elif [ -z "${DOCKER_HOST:-}" ]; then
  # A private daemon (the socket path must stay under 108 bytes).
  sock=$WORK/d.sock
  /usr/sbin/dockerd --bridge=none --iptables=false --ip-masq=false \
    --data-root "$WORK/docker" --exec-root "$WORK/docker-exec" --pidfile "$WORK/dockerd.pid" \
    -H "unix://$sock" --containerd-namespace "tutorial$$" \
    --containerd-plugins-namespace "tutorial$$-plugins" >"$LOGS/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  export DOCKER_HOST=unix://$sock
  for _ in $(seq 300); do "$BIN" version >/dev/null 2>&1 && break; sleep 0.2; done
  "$BIN" version >/dev/null 2>&1 || { tail -20 "$LOGS/dockerd.log" >&2; die "dockerd did not start"; }
fi
export DOCKER_BUILDKIT=1 DOCKER_CONFIG=$WORK/docker-config
mkdir -p "$DOCKER_CONFIG"
unset SOURCE_DATE_EPOCH BUILDKIT_PROGRESS

# tool ARGS...: the tutorial's command, with the word changed; output in the log.
N=0
tool() {
  N=$((N + 1))
  local log=$LOGS/$N.log
  echo "\$ $TOOL $*" >"$log"
  (cd "$APP" && "$BIN" "$@") >>"$log" 2>&1 || { cat "$log" >&2; die "failed: $TOOL $*"; }
}
# toolout ARGS...: the same, stdout only (for the summary).
toolout() { (cd "$APP" && "$BIN" "$@") 2>>"$LOGS/stderr.log"; }

# ---- the app and its bases
if [ "$TUTORIAL" = 1 ]; then
  FIXTURES=${FIXTURES:-/var/tmp/kiln-fixtures/images}
  MAKE_BASES=${MAKE_BASES:-$REPO/../shared/fixtures/make-base-images.sh}
  if [ ! -s "$FIXTURES/node-18.docker.tar" ] || [ ! -s "$FIXTURES/nginx-bookworm.docker.tar" ]; then
    [ -x "$MAKE_BASES" ] || die "no base archives in $FIXTURES and no $MAKE_BASES"
    echo "making the node and nginx bases (debootstrap, minutes the first time)..." >&2
    DOCKER='' "$MAKE_BASES" "$(dirname "$FIXTURES")" >"$LOGS/make-base-images.log" 2>&1 ||
      die "make-base-images.sh failed: $LOGS/make-base-images.log"
  fi
  BASES=("$FIXTURES/node-18.docker.tar" "$FIXTURES/nginx-bookworm.docker.tar")
  tar -C "$REPO/examples/tutorial-react" --exclude=./node_modules --exclude=./build -cf - . |
    tar -C "$APP" -xf -
  EDIT=src/App.jsx
  BUILD_ARG=NPM_CONFIG_REGISTRY=${NPM_CONFIG_REGISTRY:-$(npm config get registry 2>/dev/null || echo https://registry.npmjs.org/)}
else
  bash "$REPO/scripts/make-busybox-image.sh" "$WORK/busybox.tar" >/dev/null ||
    die "make-busybox-image.sh failed"
  BASES=("$WORK/busybox.tar")
  mkdir -p "$APP/src"
  # Same shape as the tutorial: install dependencies, build, ship only the build.
  cat >"$APP/Dockerfile" <<'EOF'
FROM localhost/busybox:latest AS installer
ARG GREETING=hello
WORKDIR /app
COPY package*.json ./
RUN mkdir -p node_modules/dep && echo "module.exports = '$GREETING'" > node_modules/dep/index.js
COPY . .
RUN mkdir -p build && cat src/*.js node_modules/dep/index.js > build/bundle.js && cp index.html build/

FROM localhost/busybox:latest AS deployer
COPY --from=installer /app/build /usr/share/nginx/html
EXPOSE 80
CMD ["httpd", "-f", "-h", "/usr/share/nginx/html"]
EOF
  printf '{ "name": "app", "version": "1.0.0" }\n' >"$APP/package.json"
  printf '<!doctype html><div id="root"></div><script src="bundle.js"></script>\n' >"$APP/index.html"
  printf 'console.log("Hello from a multi-stage build");\n' >"$APP/src/App.js"
  printf 'node_modules\nbuild\n' >"$APP/.dockerignore"
  EDIT=src/App.js
  BUILD_ARG=GREETING=hi
fi

# ---- the tutorial's commands
for b in "${BASES[@]}"; do tool load -i "$b"; done
tool build --network=host -t multistage .
tool build --network=host --target installer -t installer .
tool build --network=host --build-arg "$BUILD_ARG" -t multistage:hi .
tool images
tool history multistage
tool inspect multistage
tool save -o "$WORK/multistage.tar" multistage
echo "// edited" >>"$APP/$EDIT"
tool build --network=host -t multistage .

fmt_images() { toolout images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | LC_ALL=C sort; }
echo "# images after the builds (REPOSITORY:TAG SIZE)"
fmt_images
echo "# images --filter dangling=true (count)"
toolout images -q --filter dangling=true | wc -l
echo "# history multistage (CREATED BY | SIZE)"
toolout history --no-trunc --format '{{.CreatedBy}} | {{.Size}}' multistage
echo "# inspect multistage"
toolout inspect --format 'Size={{.Size}} Os={{.Os}} Arch={{.Architecture}} Ports={{json .Config.ExposedPorts}} Cmd={{json .Config.Cmd}} Layers={{len .RootFS.Layers}}' multistage
echo "# save -o multistage.tar multistage (RepoTags, layers)"
tar -xOf "$WORK/multistage.tar" manifest.json |
  python3 -c 'import json,sys; [print(m["RepoTags"], len(m["Layers"]), "layers") for m in json.load(sys.stdin)]' |
  LC_ALL=C sort

tool image rm installer
tool image prune -f
echo "# image prune -f"
grep -h '^Total reclaimed space' "$LOGS/$N.log"
echo "# images after image rm installer + image prune -f"
fmt_images
