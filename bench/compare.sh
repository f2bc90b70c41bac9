#!/usr/bin/env bash
# Whole-command benchmark of `kiln build` against BuildKit (dockerd) and buildah, with kiln
# built from this repository. A thin wrapper around the shared harness in ../shared/bench
# (run.sh: one timed build; bench-all.sh: the interleaved matrix; summarize.py: tables).
#
#   bench/compare.sh [CASE...]        default: the eight shared cases and bench/cases/ (content-copy)
#
# Env (all optional):
#   TOOLS="buildkit buildah kiln"     tools to compare (a tool that is not usable is dropped)
#   MODES="cold warm incremental"     see ../shared/bench/run.sh (touch is also available)
#   REPS=3 SLOW_REPS=2                repetitions (SLOW_REPS for large-context and big-layer)
#   KILN=PATH                         use this binary instead of building the release one
#   KILN_B=PATH KILN_B_LABEL=before   a second kiln binary in the same matrix (an A/B run): its own
#                                     store, rows labelled kiln:LABEL; interleaved like the tools
#   SHARED_BENCH=DIR                  the shared harness (default ../shared/bench)
#   RESULTS_TSV=FILE                  default bench/results/<UTC date>.tsv (appended to)
#   MEM=0                             skip the peak-memory measurement of a cold large-context build
#   BK_NOEXEC_TMP=1                   BuildKit without dockerd 20.10's per-build emulator checks (below)
#
# Needs root, Debian's docker.io with a running dockerd (`dockerd --bridge=none --iptables=false &`),
# buildah + runc, jq, busybox-static, skopeo, umoci, python3. Writes generated contexts and
# private stores under /var/tmp/kiln-bench (kiln: $KILN_ROOT, default /var/tmp/kiln-bench/kiln-root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
shared=${SHARED_BENCH:-$repo/../shared/bench}
[ -x "$shared/run.sh" ] || { echo "compare.sh: no harness at $shared (set SHARED_BENCH)" >&2; exit 1; }
shared=$(cd "$shared" && pwd)
# kiln's own cases (bench/cases/) run beside the shared ones, from a merged copy of the harness.
if [ -d "$here/cases" ]; then
  merged=/var/tmp/kiln-bench/harness
  rm -rf "$merged" && mkdir -p "$merged"
  cp -r "$shared"/. "$merged"/
  cp -r "$here"/cases/. "$merged"/cases/
  shared=$merged
fi
[ $# -gt 0 ] || set -- seedlike parallel target unused-stage incremental many-steps large-context big-layer content-copy

if [ -z "${KILN:-}" ]; then
  (cd "$repo" && cargo build --release -q -p kiln)
  KILN=${CARGO_TARGET_DIR:-$repo/target}/release/kiln
fi
KILN=$(readlink -f "$KILN")
export KILN

# drop tools that cannot run here, saying why
tools=()
for t in ${TOOLS:-buildkit buildah kiln}; do
  case $t in
    buildkit|legacy)
      /usr/bin/docker info >/dev/null 2>&1 && tools+=("$t") ||
        echo "compare.sh: skipping $t: dockerd not reachable with /usr/bin/docker (start: dockerd --bridge=none --iptables=false &)" >&2 ;;
    buildah)
      command -v buildah >/dev/null && command -v runc >/dev/null && tools+=("$t") ||
        echo "compare.sh: skipping buildah: apt-get install buildah runc" >&2 ;;
    kiln) tools+=(kiln) ;;
    *) echo "compare.sh: unknown tool $t" >&2; exit 2 ;;
  esac
done
export TOOLS="${tools[*]}"

# dockerd 20.10's BuildKit (v0.8) checks for CPU emulators on every build by running ~84 tiny
# programs from dockerd's tmp dir; with qemu-user-static's binfmt handlers registered, each
# starts a qemu: +0.4-0.8 s per build, fixed upstream in BuildKit v0.14 (moby/buildkit#3120).
# BK_NOEXEC_TMP=1 measures BuildKit at its best: a noexec tmpfs over dockerd's tmp dir makes
# every check fail at once (foreign-arch RUN still works; the kernel runs those through qemu).
dtmp=/var/lib/docker/tmp
if [[ " $TOOLS " == *" buildkit "* ]] && compgen -G '/proc/sys/fs/binfmt_misc/qemu-*' >/dev/null; then
  if [ "${BK_NOEXEC_TMP:-0}" = 1 ]; then
    if ! findmnt -n -o OPTIONS --target "$dtmp" | grep -qw noexec; then
      mount -t tmpfs -o noexec,nosuid,nodev,mode=0700,size=4g tmpfs "$dtmp"
      bk_mounted=1
      trap 'umount "$dtmp" 2>/dev/null || true' EXIT
    fi
    echo "compare.sh: dockerd's $dtmp is a noexec tmpfs: BuildKit's emulator checks are skipped" >&2
  elif ! findmnt -n -o OPTIONS --target "$dtmp" | grep -qw noexec; then
    echo "compare.sh: note: qemu binfmt handlers are registered, so every BuildKit build of dockerd 20.10 runs its emulator checks (+0.4-0.8 s); BK_NOEXEC_TMP=1 measures BuildKit without them" >&2
  fi
fi
export MODES=${MODES:-cold warm incremental}
export REPS=${REPS:-3} SLOW_REPS=${SLOW_REPS:-2}

# the base image localhost/busybox:latest, made from busybox-static, loaded into dockerd/buildah
. "$shared/common.sh"
need_base=0
[ -s "$BASE_DOCKER_ARCHIVE" ] || need_base=1
[[ " $TOOLS " == *" buildkit "* ]] && ! /usr/bin/docker image inspect "$BASE_TAG" >/dev/null 2>&1 && need_base=1
[[ " $TOOLS " == *" buildah "* ]] && ! $BUILDAH inspect --type image "$BASE_TAG" >/dev/null 2>&1 && need_base=1
if [ "$need_base" = 1 ]; then
  # Loaded only into the tools that run: a buildah load leaves buildah's overlay storage
  # mounted (containers/storage bind-mounts its overlay dir onto itself), so skip it unless
  # buildah is benchmarked.
  NO_LOAD=1 "$shared/make-busybox-image.sh" "$IMAGES_DIR"
  if [[ " $TOOLS " == *" buildkit "* ]]; then
    /usr/bin/docker load -i "$BASE_DOCKER_ARCHIVE"
  fi
  if [[ " $TOOLS " == *" buildah "* ]]; then
    $BUILDAH rmi -f "$BASE_TAG" >/dev/null 2>&1 || true
    skopeo copy -q "oci-archive:$(dirname "$BASE_DOCKER_ARCHIVE")/busybox-oci.tar:latest" \
      "containers-storage:$BUILDAH_STORE_SPEC$BASE_TAG"
  fi
fi

mkdir -p "$here/results"
export RESULTS_TSV=${RESULTS_TSV:-$here/results/$(date -u +%F).tsv}
echo "compare.sh: kiln=$KILN tools=[$TOOLS] modes=[$MODES] reps=$REPS -> $RESULTS_TSV" >&2
echo "compare.sh: load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
if [ -z "${KILN_B:-}" ]; then
  "$shared/bench-all.sh" "$@"
else
  # bench-all.sh's matrix (tool order rotating per repetition) with one more tool: KILN_B.
  KILN_B=$(readlink -f "$KILN_B")
  read -r -a all <<<"$TOOLS kiln-b"
  for c in "$@"; do
    reps=$REPS; case " ${SLOW_CASES:-large-context big-layer} " in *" $c "*) reps=$SLOW_REPS ;; esac
    for r in $(seq 1 "$reps"); do
      n=${#all[@]}
      for k in $(seq 0 $((n-1))); do
        t=${all[$(( (k + r - 1) % n ))]}
        for m in $MODES; do
          if [ "$t" = kiln-b ]; then
            KILN=$KILN_B KILN_ROOT=$BENCH_VAR/kiln-root-b VARIANT=${KILN_B_LABEL:-b} \
              "$shared/run.sh" kiln "$c" "$m" || echo "FAILED: kiln:${KILN_B_LABEL:-b} $c $m" >&2
          else
            "$shared/run.sh" "$t" "$c" "$m" || echo "FAILED: $t $c $m" >&2
          fi
        done
      done
    done
  done
fi
echo "compare.sh: load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# peak memory (max RSS) of a cold large-context kiln build, in a throwaway store
cases=" ${*:-large-context} "
if [ "${MEM:-1}" != 0 ] && [[ $cases == *" large-context "* ]] && [ -x /usr/bin/time ]; then
  ctx=$CTX_DIR/kiln/large-context
  root=$(mktemp -d /var/tmp/kiln-bench-mem.XXXXXX)
  trap 'rm -rf "$root"; [ -z "${bk_mounted:-}" ] || umount "$dtmp" 2>/dev/null || true' EXIT
  KILN_ROOT=$root "$KILN" load -i "$BASE_DOCKER_ARCHIVE" >/dev/null
  KILN_ROOT=$root /usr/bin/time -v "$KILN" build -q -t localhost/kiln-bench-mem -f "$ctx/Dockerfile" "$ctx" \
    2>"$root.time" >/dev/null || echo "compare.sh: memory build failed" >&2
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$root.time")
  echo "compare.sh: kiln large-context cold: max RSS ${rss:-?} KiB" >&2
  printf '%s\tkiln\tlarge-context\tmaxrss_kib\t%s\n' "$(date -u +%FT%TZ)" "${rss:-NA}" >> "${RESULTS_TSV%.tsv}.mem.tsv"
  rm -f "$root.time"
fi

python3 "$shared/summarize.py" "$RESULTS_TSV"
echo
echo "## Goals of issue 4"
echo
python3 "$here/goals.py" "$RESULTS_TSV" "${RESULTS_TSV%.tsv}.mem.tsv"
