#!/usr/bin/env python3
# bench/noop-cpu.py CASE RUNS BIN... -- an A/B of kiln binaries on no-op rebuilds, by CPU time.
# Runs `BIN build -q` of a ../shared/bench case (its context under /var/tmp/kiln-bench/ctx/kiln,
# a store at $KILN_ROOT, default /var/tmp/noop-root, where the case was built once) RUNS times
# per binary, the binaries alternating run by run (3 warm-up rounds dropped), and prints
# medians (min-max) of each run's CPU time (user+sys of the child, from wait4) and wall time.
# CPU time is what a loaded machine (other builds on the 2 cores) disturbs least.
import os, sys, time, statistics, resource
c, n, bins = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
env = dict(os.environ, KILN_ROOT=os.environ.get("KILN_ROOT", "/var/tmp/noop-root"))
ba = ""
try:
    for l in open(f"/var/tmp/kiln-bench/harness/cases/{c}/case.env"):
        if l.startswith("BUILD_ARGS="): ba = l.split("=",1)[1].strip().strip('"')
except FileNotFoundError: pass
ctx = f"/var/tmp/kiln-bench/ctx/kiln/{c}"
args = ["build", "-q", "-t", f"localhost/kiln-bench-{c}:kiln", "-f", f"{ctx}/Dockerfile", *ba.split(), ctx]
res = {b: ([], []) for b in bins}
devnull = os.open("/dev/null", os.O_WRONLY)
for i in range(n + 3):
    for b in (bins if i % 2 == 0 else bins[::-1]):
        t0 = time.perf_counter()
        pid = os.posix_spawn(b, [b, *args], env, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)])
        _, st, ru = os.wait4(pid, 0)
        t1 = time.perf_counter()
        assert st == 0, (b, st)
        if i >= 3:
            res[b][0].append((ru.ru_utime + ru.ru_stime) * 1000); res[b][1].append((t1 - t0) * 1000)
base = statistics.median(res[bins[0]][0])
print(f"{c} load {open('/proc/loadavg').read().split()[0]} n={n}")
for b in bins:
    cpu, wall = res[b]
    print(f"  {os.path.basename(b):14s} cpu {statistics.median(cpu):6.2f} ms ({min(cpu):.2f}-{max(cpu):.2f})  wall {statistics.median(wall):6.2f} ms ({min(wall):.2f}-{max(wall):.2f})  cpu ratio {statistics.median(cpu)/base:.3f}")
