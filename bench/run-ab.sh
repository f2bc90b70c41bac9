#!/usr/bin/env bash
# Interleaved rounds of whole commands, medians over all runs: an A/B of two kiln binaries (or
# kiln against crun) on a busy machine, where every round gives each command a turn.
#
#   bench/run-ab.sh ROUNDS RUNS CMD...      e.g.
#   unshare -m --propagation private nice -n -20 bench/run-ab.sh 5 10 \
#     'crun run --bundle B ID' 'OLD --root R1 run --rm IMG true' 'NEW --root R2 run --rm IMG true'
#
# Needs hyperfine and python3. Run it under `unshare -m` on a hybrid cgroup host: it unmounts
# /sys/fs/cgroup/unified in that namespace (crun refuses hybrid mode, as bench/run.sh says).
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 ROUNDS RUNS CMD..." >&2; exit 2; }
rounds=$1 runs=$2
shift 2
if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
  umount /sys/fs/cgroup/unified 2>/dev/null || true
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for r in $(seq "$rounds"); do
  hyperfine -N -w 2 -r "$runs" --export-json "$work/round$r.json" "$@" >/dev/null
done
python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
res, rmed = {}, {}
for r in range(1, rounds + 1):
    for x in json.load(open(f"{work}/round{r}.json"))["results"]:
        res.setdefault(x["command"], []).extend(t * 1000 for t in x["times"])
        rmed.setdefault(x["command"], []).append(statistics.median(x["times"]) * 1000)
cmds = list(res)
for c, t in res.items():
    print(f"{statistics.median(t):8.1f} ms ({min(t):.1f}-{max(t):.1f}, n={len(t)})  {c}")
# Each command against the first, round by round (seconds apart: steadier than the ratio of
# overall medians when the load drifts over minutes).
for c in cmds[1:]:
    q = [a / b for a, b in zip(rmed[c], rmed[cmds[0]])]
    print(f"  per-round median ratio to the first: {statistics.median(q):.2f} "
          f"({min(q):.2f}-{max(q):.2f})  {c}")
PY
