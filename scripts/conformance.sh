#!/usr/bin/env bash
# Differential conformance: start dockerd (BuildKit) if needed, load the same busybox base image
# into it and into a throwaway kiln store, and run ../shared/conformance/run.sh over the shared
# cases and the project's own (tests/conformance/). Prints `N passed, M failed`.
#
#   scripts/conformance.sh [CASE_DIR...]     (default: every shared case and tests/conformance/*)
#
# Platform cases (a `.platform` file holding one platform, e.g. `linux/arm64`) are run here, not by
# run.sh: dockerd 20.10 keeps one platform per tag, so the multi-platform busybox base
# (scripts/make-multiplatform-busybox.sh) is pushed to a local docker-registry on 127.0.0.1
# (`skopeo copy --all`) and BuildKit builds `--platform P` FROM there; kiln loads the same
# archive under the same name and builds `--platform HOST,P` (one multi-platform build, an
# index); kiln's P image (`kiln save --platform P`) must match BuildKit's by imgdiff.py, and the
# configs' `variant` must be the same too (imgdiff compares architecture and os). The base's
# name reaches the Dockerfile as `--build-arg BASE=...`. Foreign RUN steps need QEMU's binfmt_misc
# handlers (scripts/install-deps.sh ci registers them); a missing one fails the case.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared}
if [ -z "${KILN:-}" ]; then
  cargo build --release -q -p kiln --manifest-path "$here/Cargo.toml"
  export KILN="$here/target/release/kiln"
fi
own_root=""
if [ -z "${KILN_ROOT:-}" ]; then
  KILN_ROOT=$(mktemp -d /var/tmp/kiln-conformance-root.XXXXXX)
  own_root=$KILN_ROOT
fi
export KILN_ROOT
images=/var/tmp/kiln-conformance-images
OUT=${OUT:-/var/tmp/kiln-conformance}
mkdir -p "$OUT"
NO_LOAD=1 bash "$shared/bench/make-busybox-image.sh" "$images" >/dev/null
"$KILN" load -q -i "$images/busybox-docker.tar" >/dev/null

started_dockerd=0
registry_pid=""
registry_dir=""
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null
  [ -n "$registry_dir" ] && rm -rf "$registry_dir"
  [ -n "$own_root" ] && [ "${KEEP:-0}" != 1 ] && rm -rf "$own_root"
  if [ "$started_dockerd" = 1 ] && [ -f /var/run/docker.pid ]; then
    kill "$(cat /var/run/docker.pid)" 2>/dev/null || true
  fi
}
trap cleanup EXIT
DOCKER=${DOCKER:-/usr/bin/docker}
if ! "$DOCKER" info >/dev/null 2>&1; then
  (dockerd --bridge=none --iptables=false >/var/tmp/kiln-dockerd.log 2>&1 &)
  started_dockerd=1
  for _ in $(seq 1 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 1; done
  "$DOCKER" info >/dev/null 2>&1 || { echo "conformance: dockerd did not start (see /var/tmp/kiln-dockerd.log)" >&2; exit 1; }
fi
"$DOCKER" load -q -i "$images/busybox-docker.tar" >/dev/null

if [ $# -gt 0 ]; then
  cases=("$@")
else
  cases=("$shared"/conformance/cases/*/ "$here"/tests/conformance/*/)
fi
plain=() platform=()
for c in "${cases[@]}"; do
  c=${c%/}
  [ -f "$c/Dockerfile" ] || continue
  if [ -f "$c/.platform" ]; then platform+=("$c"); else plain+=("$c"); fi
done

passed=0 failed=0
if [ ${#plain[@]} -gt 0 ]; then
  DOCKER=$DOCKER OUT=$OUT bash "$shared/conformance/run.sh" "${plain[@]}" | tee "$OUT/run.summary"
  read -r p _ f _ < <(tail -n 1 "$OUT/run.summary")
  passed=$((passed + ${p:-0})) failed=$((failed + ${f:-0}))
  [ -n "${p:-}" ] || failed=$((failed + 1))
fi

# ---- platform cases -------------------------------------------------------------------------
host_platform() {
  case "$(uname -m)" in
    x86_64) echo linux/amd64 ;;
    aarch64) echo linux/arm64 ;;
    armv7l) echo linux/arm/v7 ;;
    *) echo "linux/$(uname -m)" ;;
  esac
}

# The config's variant ("" when none) of a docker-archive or OCI archive/layout.
config_variant() {
  python3 - "$shared/conformance" "$1" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import imgdiff
config, _ = imgdiff.image_parts(sys.argv[2])
print(config.get("variant") or "")
PY
}

platform_setup() {
  local cmd h port
  for cmd in skopeo docker-registry python3 jq; do
    command -v "$cmd" >/dev/null || { echo "conformance: platform cases need $cmd (bash scripts/install-deps.sh ci)" >&2; return 1; }
  done
  for h in qemu-aarch64 qemu-arm; do
    [ "$(head -n 1 "/proc/sys/fs/binfmt_misc/$h" 2>/dev/null)" = enabled ] || {
      echo "conformance: platform cases need QEMU's binfmt_misc handler $h (bash scripts/install-deps.sh ci)" >&2
      return 1
    }
  done
  registry_dir=$(mktemp -d /var/tmp/kiln-conformance-registry.XXXXXX)
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s/data\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$registry_dir" "$port" >"$registry_dir/config.yml"
  docker-registry serve "$registry_dir/config.yml" >"$registry_dir/log" 2>&1 &
  registry_pid=$!
  probe() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "http://127.0.0.1:$port/v2/" 2>/dev/null; }
  for _ in $(seq 1 50); do probe && break; sleep 0.1; done
  probe || { echo "conformance: docker-registry did not start: $(cat "$registry_dir/log")" >&2; return 1; }
  base=127.0.0.1:$port/kiln-conformance/busybox:latest
  bash "$here/scripts/make-multiplatform-busybox.sh" "$images/busybox-multiplatform.tar" "$base" >/dev/null || return 1
  skopeo copy -q --all --dest-tls-verify=false "oci-archive:$images/busybox-multiplatform.tar" "docker://$base" >/dev/null ||
    { echo "conformance: skopeo copy --all to $base failed" >&2; return 1; }
  # kiln reads the same archive under the same name (no pull): FROM $BASE is local.
  "$KILN" load -q -i "$images/busybox-multiplatform.tar" >/dev/null ||
    { echo "conformance: kiln load of the multi-platform base failed" >&2; return 1; }
}

run_platform_case() {
  local dir=$1 name plat host kplats flags diffopts ref got log tag vr vg
  name=$(basename "$dir")
  plat=$(tr -d '[:space:]' <"$dir/.platform")
  host=$(host_platform)
  kplats=$host; [ "$plat" = "$host" ] || kplats="$host,$plat"
  flags=""; [ -f "$dir/.flags" ] && flags=$(cat "$dir/.flags")
  diffopts=${IMGDIFF_OPTS:-}; [ -f "$dir/.imgdiff" ] && diffopts="$diffopts $(cat "$dir/.imgdiff")"
  ref=$OUT/$name.buildkit.tar got=$OUT/$name.kiln.tar log=$OUT/$name.log
  tag=localhost/conformance-$name:latest
  # shellcheck disable=SC2086
  if ! DOCKER_BUILDKIT=1 "$DOCKER" build -q --network=host --platform "$plat" --build-arg "BASE=$base" $flags -t "$tag" "$dir" >"$log" 2>&1 \
     || ! "$DOCKER" save -o "$ref" "$tag" >>"$log" 2>&1; then
    echo "FAIL $name: docker build --platform $plat failed (the case itself is broken? see $log)"; return 1
  fi
  # shellcheck disable=SC2086
  if ! "$KILN" build -q --platform "$kplats" --build-arg "BASE=$base" $flags -t "$tag" "$dir" >"$log.kiln" 2>&1 \
     || ! "$KILN" save --platform "$plat" -o "$got" "$tag" >>"$log.kiln" 2>&1; then
    echo "FAIL $name: kiln build --platform $kplats failed: $(tail -n 3 "$log.kiln" | tr '\n' ' ')"; return 1
  fi
  # shellcheck disable=SC2086
  if ! (set -f; python3 "$shared/conformance/imgdiff.py" $diffopts "$ref" "$got") >"$OUT/$name.diff" 2>&1; then
    echo "FAIL $name ($plat): $(head -n 3 "$OUT/$name.diff" | tr '\n' ';') (all in $OUT/$name.diff)"; return 1
  fi
  vr=$(config_variant "$ref") && vg=$(config_variant "$got") || {
    echo "FAIL $name ($plat): cannot read the configs' variant"; return 1
  }
  if [ "$vr" != "$vg" ]; then
    echo "FAIL $name ($plat): config variant: BuildKit '${vr}' != kiln '${vg}'"; return 1
  fi
  [ "${KEEP:-0}" = 1 ] || rm -f "$ref" "$got"
  "$DOCKER" rmi -f "$tag" >/dev/null 2>&1 || true
  echo "ok $name ($plat)"
}

if [ ${#platform[@]} -gt 0 ]; then
  if platform_setup; then
    for c in "${platform[@]}"; do
      if run_platform_case "$c"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    done
  else
    echo "FAIL platform cases (${#platform[@]}): setup failed (above)"
    failed=$((failed + ${#platform[@]}))
  fi
  echo "$passed passed, $failed failed (all cases)"
fi
[ "$failed" -eq 0 ]
