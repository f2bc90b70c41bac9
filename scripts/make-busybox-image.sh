#!/usr/bin/env bash
# Makes a tiny busybox image as a docker-archive, from Debian's busybox-static, with the
# same bytes on every run (sorted entries, fixed owners and mtimes, no compression).
#
#   scripts/make-busybox-image.sh OUT.tar [TAG]      (TAG defaults to localhost/busybox:latest)
#
# The image: /bin/busybox plus a symlink per applet where busybox puts it (sh, ls, cat, ...),
# /etc/passwd (root, nobody, and a test user "kiln" 1000:1000), /etc/group, /tmp (1777),
# /root, /home/kiln, and a config with PATH and Cmd ["sh"]. SOURCE_DATE_EPOCH (default 0)
# sets the config's created time. BUSYBOX (default /bin/busybox) is the binary to install;
# BUSYBOX_LIST (default: BUSYBOX) is the busybox that is run to list the applets: a busybox of the
# same version built for this machine, when BUSYBOX is a foreign one this machine cannot run
# (scripts/make-multiplatform-busybox.sh). The config's architecture is this machine's.
# Run by an ordinary user, it re-runs itself in a user namespace mapped from the user's
# subordinate IDs (util-linux's `unshare --map-auto`, through newuidmap), so the layer's owners
# (0 and 1000) and so its bytes are the same as root's.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  exec unshare --map-auto --map-root-user bash "$0" "$@"
fi

out=${1:?usage: make-busybox-image.sh OUT.tar [TAG]}
tag=${2:-localhost/busybox:latest}
busybox=${BUSYBOX:-/bin/busybox}
lister=${BUSYBOX_LIST:-$busybox}
epoch=${SOURCE_DATE_EPOCH:-0}

if ! "$lister" --list >/dev/null 2>&1; then
  echo "make-busybox-image.sh: $lister is not busybox (or cannot run here); install it: apt-get install busybox-static" >&2
  exit 1
fi
# (No `grep -q` / `head` in pipelines: with pipefail, a reader that exits early can fail
# the pipeline through SIGPIPE.)
if ! (LC_ALL=C ldd "$busybox" 2>&1 || true) | grep 'not a dynamic' >/dev/null; then
  echo "make-busybox-image.sh: $busybox is dynamically linked; install busybox-static" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home/kiln,tmp,var,dev,proc,sys}
install -m 0755 "$busybox" "$root/bin/busybox"
"$lister" --list-full | LC_ALL=C sort | while read -r applet; do
  [ "$applet" = bin/busybox ] && continue
  dir=$(dirname "$applet")
  mkdir -p "$root/$dir"
  # Relative links so the tree also works when unpacked somewhere else.
  rel=$(printf '%s' "$dir" | sed -e 's#[^/]*#..#g')
  ln -sfn "$rel/bin/busybox" "$root/$applet"
done
cat >"$root/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
kiln:x:1000:1000:kiln test user:/home/kiln:/bin/sh
PW
cat >"$root/etc/group" <<'GR'
root:x:0:
kiln:x:1000:
nogroup:x:65534:
GR
chmod 0644 "$root/etc/passwd" "$root/etc/group"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
chmod 0755 "$root"/{bin,sbin,usr,usr/bin,usr/sbin,etc,home,home/kiln,var,dev,proc,sys}
chown -R 0:0 "$root"
chown 1000:1000 "$root/home/kiln"

# Deterministic tar: sorted names, numeric owners as on disk, mtime 0, GNU format (no pax
# headers with access times).
dtar() {
  tar --sort=name --mtime=@0 --numeric-owner --format=gnu --no-acls --no-xattrs --no-selinux "$@"
}
mkdir -p "$work/archive/blobs/sha256"
(cd "$root" && dtar -cf "$work/layer.tar" .)
layer_hex=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
mv "$work/layer.tar" "$work/archive/blobs/sha256/$layer_hex"

arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
version=$("$lister" 2>&1 | sed -n -e '1s/^BusyBox \(v[^ ]*\).*/\1/p')
printf '{"architecture":"%s","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},"created":"%s","history":[{"created":"%s","created_by":"kiln scripts/make-busybox-image.sh (busybox-static %s)"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$arch" "$created" "$created" "$version" "$layer_hex" >"$work/config.json"
config_hex=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/archive/blobs/sha256/$config_hex"
printf '[{"Config":"blobs/sha256/%s","RepoTags":["%s"],"Layers":["blobs/sha256/%s"]}]' \
  "$config_hex" "$tag" "$layer_hex" >"$work/archive/manifest.json"
chmod 0644 "$work/archive/manifest.json" "$work/archive/blobs/sha256/"*
chmod 0755 "$work/archive/blobs" "$work/archive/blobs/sha256"

(cd "$work/archive" && dtar --owner=0 --group=0 -cf "$work/out.tar" manifest.json blobs)
mv "$work/out.tar" "$out"
echo "sha256:$config_hex"
