#!/usr/bin/env bash
# pasta's time to configure a container's namespace and its CPU cost, for pasta option sets:
# bench/lib/pasta-ready.c run RUNS times per variant (interleaved variant by variant), medians.
#
#   bash bench/pasta-ready.sh            # RUNS=20; variants below
#
# Each variant is a string of extra pasta options ("" = kiln's own set). Needs root, gcc, pasta.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
RUNS=${RUNS:-20}
[ "$(id -u)" = 0 ] || { echo "bench/pasta-ready.sh: needs root" >&2; exit 2; }
command -v pasta >/dev/null || { echo "bench/pasta-ready.sh: pasta missing (apt-get install passt)" >&2; exit 2; }
bin=$(mktemp /tmp/pasta-ready.XXXXXX)
trap 'rm -f "$bin"' EXIT
gcc -O2 -o "$bin" "$here/lib/pasta-ready.c"
variants=("" "--no-icmp" "--no-udp" "--no-tcp" "--no-dhcp --no-dhcpv6 --no-ra")
echo "pasta: $(dpkg-query -W -f '${Version}' passt 2>/dev/null); load average $(cut -d' ' -f1-3 /proc/loadavg); RUNS=$RUNS"
echo "| extra options | address ms | IPv6 default route ms (min-max) | pasta CPU ms |"
echo "|---|---:|---:|---:|"
for v in "${variants[@]}"; do
  # shellcheck disable=SC2086
  for _ in $(seq "$RUNS"); do timeout 5 nice -n -20 "$bin" $v || true; done | python3 -c "
import sys, statistics as s
r = [list(map(float, l.split())) for l in sys.stdin if len(l.split()) == 4]
c = lambda i: [x[i] for x in r]
print(f'| \`${v:-(kiln\'s)}\` | {s.median(c(0)):.1f} | {s.median(c(2)):.1f} ({min(c(2)):.1f}-{max(c(2)):.1f}) | {s.median(c(3))/1000:.1f} |')"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
