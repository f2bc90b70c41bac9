#!/usr/bin/env bash
# Builds kiln's own image (packaging/Dockerfile) with kiln: the static kiln binary on the busybox
# base, Debian's newuidmap/newgidmap with their libraries, the non-root user kiln (1000) with a
# subordinate ID range. See docs/ci.md for running it in a pod or a CI job.
#
#   scripts/kiln-image.sh [TAG]            (TAG defaults to localhost/kiln:latest)
#
# Environment:
#   KILN         the kiln that builds the image (default: target/release/kiln, built if missing)
#   KILN_IN_IMAGE  the kiln binary to put in the image (default: a static one, built here with
#                RUSTFLAGS='-C target-feature=+crt-static' cargo build --release
#                --target x86_64-unknown-linux-gnu; rustup has no musl target offline). A
#                dynamic binary (the tests use the one cargo test built) gets the shared
#                libraries it loads copied beside it, as newuidmap's.
#   KILN_ROOT    the store the image goes into (as for kiln itself)
#   OUT          also write the image as a docker-archive to this file (`kiln save`)
#   SUBIDS       the user's subordinate range START:COUNT (default 100000:65536; 1001:64535
#                for pods with a user namespace of their own, see docs/ci.md)
#
# kiln does not run cargo inside the build: the context is a staging directory with the
# prebuilt binary. The busybox base (scripts/make-busybox-image.sh) is made and loaded when
# the store does not have localhost/busybox:latest.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-localhost/kiln:latest}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}

kiln=${KILN:-}
if [ -z "$kiln" ]; then
  kiln=$target_dir/release/kiln
  [ -x "$kiln" ] || cargo build --release -q -p kiln
fi
binary=${KILN_IN_IMAGE:-}
if [ -z "$binary" ]; then
  RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release -q -p kiln --target x86_64-unknown-linux-gnu
  binary=$target_dir/x86_64-unknown-linux-gnu/release/kiln
  if ! (LC_ALL=C ldd "$binary" 2>&1 || true) | grep -E 'not a dynamic|statically linked' >/dev/null; then
    echo "kiln-image.sh: $binary is dynamically linked although built with +crt-static" >&2
    exit 1
  fi
fi
command -v setcap >/dev/null || {
  echo "kiln-image.sh: setcap is missing; install Debian's libcap2-bin: apt-get install libcap2-bin" >&2
  exit 1
}
for b in newuidmap newgidmap; do
  command -v "$b" >/dev/null || {
    echo "kiln-image.sh: $b is missing; install Debian's uidmap: apt-get install uidmap" >&2
    exit 1
  }
done

work=$(mktemp -d /var/tmp/kiln-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
ctx=$work/ctx
mkdir -p "$ctx/uidmap/usr/bin"
install -m 0755 "$binary" "$ctx/kiln"
# The release profile keeps debug information (about 90 MB of the binary): not in the image.
if command -v strip >/dev/null; then strip --strip-debug "$ctx/kiln"; fi
# Every library binary $1 loads, at the path the loader finds it (ldd's right-hand side; the
# interpreter at its absolute path), copied as a regular file under uidmap/ (none for a
# static binary).
copy_libs() {
  (LC_ALL=C ldd "$1" 2>/dev/null || true) |
    sed -n -e 's/.*=> \(\/[^ ]*\) .*/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p' |
    while read -r lib; do
      mkdir -p "$ctx/uidmap$(dirname "$lib")"
      cp -L "$lib" "$ctx/uidmap$lib"
      chmod 0755 "$ctx/uidmap$lib"
    done
}
copy_libs "$binary"
for b in newuidmap newgidmap; do
  src=$(command -v "$b")
  install -m 0755 "$src" "$ctx/uidmap/usr/bin/$b"
  copy_libs "$src"
done
# File capabilities instead of Debian's setuid bit (see packaging/Dockerfile); COPY keeps the
# security.capability attribute.
setcap cap_setuid=ep "$ctx/uidmap/usr/bin/newuidmap"
setcap cap_setgid=ep "$ctx/uidmap/usr/bin/newgidmap"

if ! "$kiln" image inspect localhost/busybox:latest >/dev/null 2>&1; then
  bash scripts/make-busybox-image.sh "$work/busybox.tar" >/dev/null
  "$kiln" load -q -i "$work/busybox.tar"
fi
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0} \
  "$kiln" build --progress=plain -f packaging/Dockerfile --build-arg "SUBIDS=${SUBIDS:-100000:65536}" \
  -t "$tag" "$ctx"
if [ -n "${OUT:-}" ]; then
  "$kiln" save -o "$OUT" "$tag"
fi
