#!/usr/bin/env bash
# Throughput through kiln-net's port proxy against the same server reached without it, and
# against docker's docker-proxy (when /usr/sbin/docker-proxy exists): a bulk TCP transfer each
# way, short connections (4 clients for 3 s: connect, 100 bytes, half-close, 1-byte answer) and
# `wrk -t2 -c200 -d5s` against a small keep-alive HTTP server (4 KiB responses), and each
# proxy's own CPU per GiB / connection / request. The
# server runs in a network namespace the bench makes; "direct" is a client in that namespace
# (loopback, like --network host), "kiln" goes host → proxy → namespace, "kiln-dnat" goes
# host → nftables DNAT → veth → namespace (kiln-net's KernelPorts, what `kiln run -p` uses as
# root; needs nft, Debian's nftables), "docker-proxy" goes host → docker-proxy → a server on
# the host's loopback. Runs are interleaved; the table has
# medians, min–max and the ratio to direct. See crates/kiln-net/benches/proxy.rs.
#
#   bench/net-proxy.sh            needs root; wrk (Debian's wrk) for the HTTP rows
# Before/after of two proxy builds in the same session: bench/net-proxy-ab.sh.
# Env: RUNS (default 5), MIB (bulk size, default 1024), OUT (default
#      bench/results/<date>-<HHMM>-net-proxy.md)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
RUNS=${RUNS:-5}
MIB=${MIB:-1024}
OUT=${OUT:-$here/results/$(date -u +%F-%H%M)-net-proxy.md}
[ "$(id -u)" = 0 ] || { echo "net-proxy.sh: needs root (network namespaces)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "net-proxy.sh: needs wrk: apt-get install -y wrk" >&2; exit 1; }
command -v nft >/dev/null || { echo "net-proxy.sh: needs nft: apt-get install -y nftables" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/../target}
{
  echo "# kiln-net proxy, $(date -u '+%F %H:%M') UTC, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "Command: RUNS=$RUNS MIB=$MIB bench/net-proxy.sh (cargo bench -p kiln-net --bench proxy)"
  echo
  cd "$here/.." && KILN_BENCH_RUNS=$RUNS KILN_BENCH_MIB=$MIB cargo bench -q -p kiln-net --bench proxy
  echo
  echo "Load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT"
