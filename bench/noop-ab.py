#!/usr/bin/env python3
# bench/noop-ab.py RUNS CASE 'LABEL=BIN [ARGS]'... -- an A/B of kiln binaries (or flags) on
# no-op rebuilds of a ../shared/bench case: RUNS rounds, each variant once per round, the order
# reversed every other round (3 warm-up rounds dropped). Prints medians (min-max) of each run's
# CPU time (user+sys of the child, from wait4: what a busy machine disturbs least) and wall
# time, and both as ratios to the first variant. ARGS go after `build` (e.g. `-j 1`).
# Env: KILN_ROOT (a store where the case was built once), CTX (default
# /var/tmp/kiln-bench/ctx/kiln: the case's context is $CTX/CASE; copy it elsewhere when other
# people's bench runs modify the shared one).
import os, sys, time, statistics, shlex
n, c, specs = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
ba = ""
try:
    for l in open(f"/var/tmp/kiln-bench/harness/cases/{c}/case.env"):
        if l.startswith("BUILD_ARGS="): ba = l.split("=", 1)[1].strip().strip('"')
except FileNotFoundError: pass
ctx = os.environ.get("CTX", "/var/tmp/kiln-bench/ctx/kiln") + f"/{c}"
variants = []
for s in specs:
    label, cmd = s.split("=", 1)
    w = shlex.split(cmd)
    variants.append((label, [w[0], "build", *w[1:], "-q", "-t", f"localhost/kiln-bench-{c}:kiln",
                             "-f", f"{ctx}/Dockerfile", *ba.split(), ctx]))
res = {l: ([], []) for l, _ in variants}
devnull = os.open("/dev/null", os.O_WRONLY)
load0 = open("/proc/loadavg").read().split()[0]
for i in range(n + 3):
    for label, argv in (variants if i % 2 == 0 else variants[::-1]):
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, dict(os.environ),
                             file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)])
        _, st, ru = os.wait4(pid, 0)
        t1 = time.perf_counter()
        assert st == 0, (label, st)
        if i >= 3:
            res[label][0].append((ru.ru_utime + ru.ru_stime) * 1000); res[label][1].append((t1 - t0) * 1000)
base, basew = (statistics.median(x) for x in res[variants[0][0]])
print(f"{c}: n={n}, load {load0} -> {open('/proc/loadavg').read().split()[0]}")
for label, _ in variants:
    cpu, wall = res[label]
    print(f"  {label:12s} cpu {statistics.median(cpu):6.2f} ms ({min(cpu):.2f}-{max(cpu):.2f})"
          f"  wall {statistics.median(wall):6.2f} ms ({min(wall):.2f}-{max(wall):.2f})"
          f"  cpu/first {statistics.median(cpu) / base:.3f}  wall/first {statistics.median(wall) / basew:.3f}")
