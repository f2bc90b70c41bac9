#!/usr/bin/env bash
# Differential conformance: start dockerd (BuildKit) if needed, load the same busybox base image
# into it and into a throwaway kiln store, and run ../shared/conformance/run.sh over the shared
# cases and the project's own (tests/conformance/). Prints `N passed, M failed`.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared}
if [ -z "${KILN:-}" ]; then
  cargo build --release -q -p kiln --manifest-path "$here/Cargo.toml"
  export KILN="$here/target/release/kiln"
fi
export KILN_ROOT=${KILN_ROOT:-$(mktemp -d /var/tmp/kiln-conformance-root.XXXXXX)}
images=/var/tmp/kiln-conformance-images
NO_LOAD=1 bash "$shared/bench/make-busybox-image.sh" "$images" >/dev/null
"$KILN" load -q -i "$images/busybox-docker.tar" >/dev/null

started_dockerd=0
DOCKER=${DOCKER:-/usr/bin/docker}
if ! "$DOCKER" info >/dev/null 2>&1; then
  (dockerd --bridge=none --iptables=false >/var/tmp/kiln-dockerd.log 2>&1 &)
  started_dockerd=1
  for _ in $(seq 1 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 1; done
  "$DOCKER" info >/dev/null 2>&1 || { echo "conformance: dockerd did not start (see /var/tmp/kiln-dockerd.log)" >&2; exit 1; }
fi
"$DOCKER" load -q -i "$images/busybox-docker.tar" >/dev/null
cases=("$shared"/conformance/cases/*/ "$here"/tests/conformance/*/)
existing=()
for c in "${cases[@]}"; do [ -f "$c/Dockerfile" ] && existing+=("$c"); done
DOCKER=$DOCKER bash "$shared/conformance/run.sh" "${existing[@]}"
rc=$?
if [ "$started_dockerd" = 1 ] && [ -f /var/run/docker.pid ]; then
  kill "$(cat /var/run/docker.pid)" 2>/dev/null || true
fi
exit $rc
