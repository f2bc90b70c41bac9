#!/usr/bin/env bash
# kiln's demo: make a busybox base image locally (offline), load it, draw the stage graph,
# build the multi-stage example in examples/demo, rebuild it (all cached), and show the
# result: the fat build stage against the thin final image, and the files it ships.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (builds use overlayfs and namespaces)" >&2; exit 1; }
# The base image is made from Debian's busybox-static: installed here when missing.
bash scripts/install-deps.sh demo
cargo build --release -q -p kiln
kiln=$PWD/target/release/kiln
export KILN_ROOT=${KILN_ROOT:-/var/tmp/kiln-demo}
work=$(mktemp -d /var/tmp/kiln-demo-work.XXXXXX)
trap 'rm -rf "$work"' EXIT
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
