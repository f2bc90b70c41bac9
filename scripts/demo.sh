#!/usr/bin/env bash
# kiln's demo: make a busybox base image locally (offline), load it, draw the stage graph,
# build the multi-stage example in examples/demo, rebuild it (all cached), show the result
# (the fat build stage against the thin final image, and the files it ships), then run the
# image detached with a published port and fetch its page.
set -euo pipefail
cd "$(dirname "$0")/.."
# As root, or as an ordinary user with a subordinate ID range (rootless kiln, docs/rootless.md).
# KILN=PATH runs that kiln binary instead of building one with cargo.
if [ "$(id -u)" = 0 ]; then
  # The base image is made from Debian's busybox-static: installed here when missing.
  bash scripts/install-deps.sh demo
  export KILN_ROOT=${KILN_ROOT:-/var/tmp/kiln-demo}
else
  for c in busybox python3; do
    command -v "$c" >/dev/null || {
      echo "demo: $c is missing: as root, run bash scripts/install-deps.sh demo" >&2
      exit 1
    }
  done
  export KILN_ROOT=${KILN_ROOT:-${XDG_DATA_HOME:-$HOME/.local/share}/kiln-demo}
fi
if [ -n "${KILN:-}" ]; then
  kiln=$KILN
else
  cargo build --release -q -p kiln
  kiln=$PWD/target/release/kiln
fi
work=$(mktemp -d /var/tmp/kiln-demo-work.XXXXXX)
cleanup() {
  "$kiln" rm -f kiln-demo-web >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "make and load a base image (busybox-static, deterministic)"
bash scripts/make-busybox-image.sh "$work/busybox.tar"
"$kiln" load -i "$work/busybox.tar"

step "the stage graph (test is skipped for the default target)"
"$kiln" graph examples/demo

step "build the fat build stage and the thin final image"
"$kiln" build --progress=plain -t kiln-demo:build --target build examples/demo
"$kiln" build --progress=plain -t kiln-demo:latest examples/demo

step "rebuild with nothing changed: every step comes from the cache"
time "$kiln" build --progress=plain -t kiln-demo:latest examples/demo

step "sizes: what the final image left behind"
"$kiln" images --filter reference='kiln-demo*'

step "the final image's files"
"$kiln" build -q -o "type=local,dest=$work/out" examples/demo >/dev/null
find "$work/out/srv" -type f | sed "s#$work/out##"
cat "$work/out/srv/www/build-info.txt"
"$kiln" inspect --format '{{json .Config.Cmd}}' kiln-demo:latest

step "run it: kiln run -d -p PORT:8080, fetch the page, stop and remove the container"
"$kiln" rm -f kiln-demo-web >/dev/null 2>&1 || true
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$kiln" run -d -p "127.0.0.1:$port:8080" --name kiln-demo-web kiln-demo:latest
"$kiln" ps --filter name=kiln-demo-web
page=
for _ in $(seq 50); do
  page=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' \
    "http://127.0.0.1:$port/" 2>/dev/null) && break
  sleep 0.1
done
[ -n "$page" ] || { echo "demo: no answer on 127.0.0.1:$port" >&2; "$kiln" logs kiln-demo-web >&2; exit 1; }
echo "GET http://127.0.0.1:$port/ ->"
printf '%s\n' "$page" | head -5
"$kiln" logs kiln-demo-web | tail -2
"$kiln" stop kiln-demo-web >/dev/null
"$kiln" rm kiln-demo-web
