#!/usr/bin/env bash
# Rootless conformance: build every conformance case (../shared/conformance/cases and
# tests/conformance) twice with kiln, as root and as an ordinary user (rootless), and compare
# the two images: imgdiff.py (merged filesystem + config, as scripts/conformance.sh does
# against BuildKit) and the `kiln save` bytes. Both sides use SOURCE_DATE_EPOCH=0, so a
# rootless image is expected to be byte-identical to root's.
#
#   scripts/rootless-conformance.sh [CASE_DIR...]      (run as root; default: every case)
#
# Env: KILN (default: target/release/kiln, built), ROOTLESS_USER (default kilntest: made with
#      useradd and a 65536-wide /etc/subuid, /etc/subgid range when missing),
#      OUT (scratch, default: a fresh /tmp/kiln-rootless-conformance.XXXXXX, removed at the end
#      unless KEEP=1), FUSE=1 (the user's kiln takes the fuse-overlayfs fallback: the kernel's
#      refusal simulated with kiln's test variable _KILN_TEST_OVERLAY_REFUSED=1).
# Prints one line per case (`ok NAME`, `ok NAME (same image, save bytes differ)`,
# `ok NAME (refused rootless, as expected: ...)` for the cases in `refused` below,
# `FAIL NAME: reason`) and closes with `N passed (B byte-identical), R refused as expected, M failed`.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared}
[ "$(id -u)" = 0 ] || { echo "rootless-conformance: run as root (it makes the test user and builds as root too)" >&2; exit 1; }
command -v newuidmap >/dev/null || { echo "rootless-conformance: newuidmap missing: apt-get install uidmap" >&2; exit 1; }
if [ -z "${KILN:-}" ]; then
  cargo build --release -q -p kiln --manifest-path "$here/Cargo.toml" || exit 1
  KILN="$here/target/release/kiln"
fi
user=${ROOTLESS_USER:-kilntest}
OUT=${OUT:-$(mktemp -d /tmp/kiln-rootless-conformance.XXXXXX)}
mkdir -p "$OUT" && chmod 0755 "$OUT"

# The user, with a subordinate range (idempotent).
if ! id -u "$user" >/dev/null 2>&1; then
  useradd -m -s /bin/sh "$user" || exit 1
fi
for f in /etc/subuid /etc/subgid; do
  if ! grep -q "^$user:" "$f" 2>/dev/null; then
    start=$(awk -F: 'BEGIN{m=100000} {e=$2+$3; if (e>m) m=e} END{print m}' /etc/subuid /etc/subgid 2>/dev/null)
    echo "$user:$start:65536" >>"$f"
  fi
done
uid=$(id -u "$user")

# Everything the user reads lives in $OUT (0755): the binary, the base image; its store,
# outputs and runtime directory are its own.
install -m 0755 "$KILN" "$OUT/kiln"
images=$OUT/images
mkdir -p "$images"
NO_LOAD=1 bash "$shared/bench/make-busybox-image.sh" "$images" >/dev/null || exit 1
chmod -R a+rX "$images"
rstore=$OUT/root-store
install -d -o "$uid" -g "$uid" -m 0700 "$OUT/user-store" "$OUT/user-out" "$OUT/user-run"
ustore=$OUT/user-store
rkiln() { KILN_ROOT=$rstore SOURCE_DATE_EPOCH=0 "$OUT/kiln" "$@"; }
ukiln() {
  runuser -u "$user" -- /usr/bin/env -i HOME="$(getent passwd "$user" | cut -d: -f6)" USER="$user" \
    PATH=/usr/local/bin:/usr/bin:/bin XDG_RUNTIME_DIR="$OUT/user-run" KILN_ROOT="$ustore" \
    SOURCE_DATE_EPOCH=0 "${fuse_env[@]}" "$OUT/kiln" "$@"
}
fuse_env=()
[ "${FUSE:-0}" = 1 ] && fuse_env=(_KILN_TEST_OVERLAY_REFUSED=1)
if [ "${FUSE:-0}" = 1 ] && ! command -v fuse-overlayfs >/dev/null; then
  echo "rootless-conformance: FUSE=1 needs fuse-overlayfs: apt-get install fuse-overlayfs" >&2; exit 1
fi
cleanup() {
  local pidf=$OUT/user-run/kiln/userns.pid
  [ -f "$pidf" ] && kill "$(cut -d' ' -f1 "$pidf")" 2>/dev/null
  [ "${KEEP:-0}" = 1 ] || rm -rf "$OUT"
}
trap cleanup EXIT
rkiln load -q -i "$images/busybox-docker.tar" >/dev/null || exit 1
ukiln load -q -i "$images/busybox-docker.tar" >/dev/null || { echo "rootless-conformance: the user's kiln cannot load the base image" >&2; exit 1; }

# Cases a user namespace cannot build, and what the rootless build must then say: it must fail
# with that message (asserted, counted apart), never be skipped. mknod of a device needs
# CAP_MKNOD in the initial user namespace; rootless docker, podman and buildah refuse it too.
declare -A refused=(
  [copy-from-special-files]='mknod: null: Operation not permitted'
)

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=("$shared"/conformance/cases/*/ "$here"/tests/conformance/*/)
passed=0 identical=0 failed=0 refusals=0
for dir in "${cases[@]}"; do
  dir=${dir%/}; name=$(basename "$dir")
  [ -f "$dir/Dockerfile" ] || continue
  flags=""; [ -f "$dir/.flags" ] && flags=$(cat "$dir/.flags")
  # Platform cases (.platform) take their base as BASE: the multi-platform busybox (their
  # literal FROM --platform stages need its other platforms); both sides build the host's.
  if [ -f "$dir/.platform" ]; then
    if [ ! -f "$images/busybox-mp.tar" ]; then
      bash "$here/scripts/make-multiplatform-busybox.sh" "$images/busybox-mp.tar" localhost/busybox-mp:latest >/dev/null &&
        chmod a+r "$images/busybox-mp.tar" &&
        rkiln load -q -i "$images/busybox-mp.tar" >/dev/null &&
        ukiln load -q -i "$images/busybox-mp.tar" >/dev/null ||
        { echo "rootless-conformance: cannot make or load the multi-platform base" >&2; exit 1; }
    fi
    flags="$flags --build-arg BASE=localhost/busybox-mp:latest"
  fi
  diffopts=""; [ -f "$dir/.imgdiff" ] && diffopts=$(cat "$dir/.imgdiff")
  tag=localhost/rootless-$name:latest
  ref=$OUT/$name.root.tar got=$OUT/user-out/$name.user.tar log=$OUT/$name.log
  # Contexts are read by the user: a readable copy when the case directory is not.
  ctx=$dir
  if ! runuser -u "$user" -- test -r "$dir/Dockerfile" -a -x "$dir"; then
    ctx=$OUT/ctx-$name; cp -a "$dir" "$ctx"; chmod -R a+rX "$ctx"
  fi
  # shellcheck disable=SC2086
  if ! rkiln build -q $flags -t "$tag" "$ctx" >"$log" 2>&1 || ! rkiln save -o "$ref" "$tag" >>"$log" 2>&1; then
    echo "FAIL $name: root build failed: $(tail -n 2 "$log" | tr '\n' ' ')"; failed=$((failed+1)); continue
  fi
  if [ -n "${refused[$name]:-}" ]; then
    # shellcheck disable=SC2086
    if ukiln build -q $flags -t "$tag" "$ctx" >"$log.user" 2>&1; then
      echo "FAIL $name: the rootless build was expected to fail (${refused[$name]}) and succeeded"; failed=$((failed+1))
    elif grep -qF "${refused[$name]}" "$log.user"; then
      echo "ok $name (refused rootless, as expected: ${refused[$name]})"; refusals=$((refusals+1))
    else
      echo "FAIL $name: the rootless build failed without '${refused[$name]}': $(tail -n 3 "$log.user" | tr '\n' ' ')"; failed=$((failed+1))
    fi
    [ "${KEEP:-0}" = 1 ] || rm -f "$ref"
    continue
  fi
  # shellcheck disable=SC2086
  if ! ukiln build -q $flags -t "$tag" "$ctx" >"$log.user" 2>&1 || ! ukiln save -o "$got" "$tag" >>"$log.user" 2>&1; then
    echo "FAIL $name: rootless build failed: $(tail -n 3 "$log.user" | tr '\n' ' ')"; failed=$((failed+1)); continue
  fi
  # shellcheck disable=SC2086
  if (set -f; python3 "$shared/conformance/imgdiff.py" --mtime $diffopts "$ref" "$got") >"$OUT/$name.diff" 2>&1; then
    passed=$((passed+1))
    if cmp -s "$ref" "$got"; then
      identical=$((identical+1)); echo "ok $name"
    else
      echo "ok $name (same image, save bytes differ)"
    fi
  else
    echo "FAIL $name: $(head -n 3 "$OUT/$name.diff" | tr '\n' ';')"; failed=$((failed+1))
    [ "${KEEP:-0}" = 1 ] && echo "  (kept in $OUT)"
  fi
  [ "${KEEP:-0}" = 1 ] || rm -f "$ref" "$got"
done
echo "$passed passed ($identical byte-identical), $refusals refused as expected, $failed failed"
[ "$failed" -eq 0 ]
