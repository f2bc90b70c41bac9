#!/usr/bin/env python3
"""Check issue 4's performance goals against a results TSV written by the shared run.sh.

usage: bench/goals.py RESULTS.tsv [RESULTS.mem.tsv]

Medians of successful runs per (tool, case, mode); each goal prints PASS/MISS with the numbers:
  no-op      kiln warm <= 1/10 of buildkit warm, every case
  per-instr  many-steps cold: kiln <= 1/5 of buildkit (62 instructions, so the same ratio per instruction)
  parallel   kiln cold wall <= 1.15 x the slower stage's RUN time (busybox `time` real in the log)
  skipped    target / unused-stage: no step of an unneeded stage in any kiln log
  cold       kiln cold < buildkit cold every case; <= 1/2 on large-context and big-layer
  memory     max RSS of a cold large-context kiln build < 200 MB (the .mem.tsv compare.sh writes)
"""
import collections
import os
import re
import statistics
import sys

if len(sys.argv) < 2:
    sys.exit(__doc__)
tsv = sys.argv[1]
mem_tsv = sys.argv[2] if len(sys.argv) > 2 else tsv[:-4] + ".mem.tsv"

runs = collections.defaultdict(list)  # (tool, case, mode) -> [(secs, log)]
fails = collections.Counter()
with open(tsv) as fh:
    for line in fh:
        f = line.rstrip("\n").split("\t")
        if len(f) < 10:
            continue
        _, tool, case, mode, secs, _, _, rc, _, log = f[:10]
        if rc == "0":
            runs[(tool, case, mode)].append((float(secs), log))
        else:
            fails[(tool, case, mode)] += 1


def med(tool, case, mode):
    v = [s for s, _ in runs.get((tool, case, mode), [])]
    return statistics.median(v) if v else None


def verdict(ok):
    return "PASS" if ok else "MISS"


out = []
cases = sorted({c for (_, c, _) in runs})
for (t, c, m), n in sorted(fails.items()):
    if t == "kiln":
        out.append(f"FAIL  kiln {c} {m}: {n} failed run(s)")

# kiln first, then any second kiln binary of an A/B run (compare.sh's KILN_B: kiln:LABEL).
kilns = ["kiln"] + sorted({t for (t, _, _) in runs if t.startswith("kiln:")})
for c in cases:
    for kt in kilns:
        k, b = med(kt, c, "warm"), med("buildkit", c, "warm")
        if k is not None and b is not None:
            out.append(f"{verdict(k <= b / 10)}  no-op {c}: {kt} {k:.4f}s vs buildkit {b:.3f}s = {k / b:.3f} (goal <= 0.10)")

k, b = med("kiln", "many-steps", "cold"), med("buildkit", "many-steps", "cold")
if k is not None and b is not None:
    out.append(f"{verdict(k <= b / 5)}  per-instruction many-steps cold: kiln {1000 * k / 62:.1f} ms vs buildkit "
               f"{1000 * b / 62:.1f} ms = {k / b:.2f} (goal <= 0.20)")

real = re.compile(r"real\s+(?:(\d+)m\s*)?([\d.]+)s")
for secs, log in runs.get(("kiln", "parallel", "cold"), []):
    try:
        text = open(log, errors="replace").read()
    except OSError:
        continue
    stages = [int(m.group(1) or 0) * 60 + float(m.group(2)) for m in real.finditer(text)]
    if stages:
        slow = max(stages)
        out.append(f"{verdict(secs <= 1.15 * slow)}  parallel cold run: wall {secs:.2f}s vs slower stage {slow:.2f}s = "
                   f"{secs / slow:.2f} (goal <= 1.15)")

unneeded = {"target": ["tester", "deployer"], "unused-stage": ["expensive"]}
for c, stages in unneeded.items():
    logs = [log for m in ("cold", "warm", "incremental", "touch") for _, log in runs.get(("kiln", c, m), [])]
    ran = set()
    for log in logs:
        try:
            text = open(log, errors="replace").read()
        except OSError:
            continue
        for s in stages:
            if re.search(r"#\d+ \[" + re.escape(s) + r" \d+/\d+\]", text):
                ran.add(s)
    if logs:
        out.append(f"{verdict(not ran)}  unneeded stages {c}: {len(logs)} kiln logs, ran: {sorted(ran) or 'none'}")

for c in cases:
    k, b = med("kiln", c, "cold"), med("buildkit", c, "cold")
    if k is None or b is None:
        continue
    limit = 0.5 if c in ("large-context", "big-layer") else 1.0
    ok = k <= b * limit if limit < 1 else k < b
    out.append(f"{verdict(ok)}  cold {c}: kiln {k:.2f}s vs buildkit {b:.2f}s = {k / b:.2f} (goal {'<=' if limit < 1 else '<'} {limit:.2f})")

if os.path.exists(mem_tsv):
    rss = [int(line.split("\t")[4]) for line in open(mem_tsv) if line.split("\t")[4].strip().isdigit()]
    if rss:
        m = max(rss) / 1024
        out.append(f"{verdict(m < 200)}  memory large-context cold: max RSS {m:.0f} MiB over {len(rss)} run(s) (goal < 200 MB)")

print("\n".join(out))
