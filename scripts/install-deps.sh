#!/usr/bin/env bash
# Installs the Debian 12 packages that kiln's demo, tests and CI need, when any is missing.
# Instant when everything is there (one dpkg query, no apt). Needs root to install; otherwise
# it prints the exact command to run and exits 1.
#
#   bash scripts/install-deps.sh [demo|tests|ci]     (default: tests)
#
#   demo   busybox-static (the demo's base image is made from it), python3 (it fetches the page
#          of the container it runs)
#   tests  the README's test command: demo's, plus runc (external runtime), skopeo and umoci
#          (interop), docker.io (`docker load` interop), git (git contexts), e2fsprogs
#          (a full-disk test formats a small ext4 image), passt (pasta: a container's outbound
#          network, kiln-net's tests), chromium (the HTML report rendered headless),
#          docker-registry (distribution 2.8, the registry tests start), apache2-utils
#          (htpasswd for its basic auth), tini (`kiln run --init`'s init, tini-static) and uidmap
#          (newuidmap/newgidmap: rootless kiln and its tests), fuse-overlayfs (its fallback)
#   ci     tests', plus what the BuildKit conformance suite uses: jq (its base image
#          script), python3 (imgdiff.py), zstd, file, sqlite3, ca-certificates
#
# Concurrent runs (parallel test binaries) wait on one lock; the second finds nothing missing.
set -euo pipefail

profile=${1:-tests}
demo=(busybox-static python3)
tests=("${demo[@]}" runc skopeo umoci docker.io git e2fsprogs passt chromium docker-registry apache2-utils tini uidmap fuse-overlayfs)
ci=("${tests[@]}" jq python3 zstd file sqlite3 ca-certificates)
case "$profile" in
  demo) want=("${demo[@]}") ;;
  tests) want=("${tests[@]}") ;;
  ci) want=("${ci[@]}") ;;
  *) echo "install-deps.sh: unknown profile '$profile' (demo, tests or ci)" >&2; exit 2 ;;
esac

# The command that counts as the package being there when another package provides it
# (docker-ce's dockerd and containerd.io's runc conflict with docker.io and runc).
provides() {
  case "$1" in
    docker.io) echo dockerd ;;
    runc) echo runc ;;
    skopeo) echo skopeo ;;
    umoci) echo umoci ;;
    git) echo git ;;
    jq) echo jq ;;
    python3) echo python3 ;;
    e2fsprogs) echo mkfs.ext4 ;;
    passt) echo pasta ;;
    docker-registry) echo docker-registry ;;
    apache2-utils) echo htpasswd ;;
    tini) echo tini-static ;;
    *) echo "" ;;
  esac
}

missing_packages() {
  local p cmd status
  for p in "${want[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] && continue
    cmd=$(provides "$p")
    # sbin is not always on a non-root PATH; the probe should not depend on it.
    if [ -n "$cmd" ] && PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1; then
      continue
    fi
    printf '%s\n' "$p"
  done
}

mapfile -t missing < <(missing_packages)
[ "${#missing[@]}" = 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  {
    echo "install-deps.sh: missing Debian packages: ${missing[*]}"
    echo "run as root:  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    echo "         or:  sudo bash $(cd "$(dirname "$0")" && pwd)/install-deps.sh $profile"
  } >&2
  exit 1
fi

exec 9>/var/lock/kiln-install-deps.lock
flock 9
# Another run may have installed them while we waited.
mapfile -t missing < <(missing_packages)
[ "${#missing[@]}" = 0 ] && exit 0

echo "install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" != 0 ]; then
  echo "install-deps.sh: still missing after apt-get install: ${missing[*]}" >&2
  exit 1
fi
