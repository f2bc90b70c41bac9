#!/bin/sh
# The cgroup v2 guest's checks (run by scripts/cgroup2-vm.sh inside its VM; not for a host).
#
#   init.sh                  as PID 1: mounts, cgroup2 with memory/cpu/pids, a delegated
#                            subtree for kilntest, then the checks below; powers off
#   init.sh limits WHO UNDER the checks of one user: a multi-stage build (this 6.1 kernel's
#                            overlay predates the new mount API); kiln run with --memory/--cpus/
#                            --pids-limit puts the container in a cgroup under UNDER with those
#                            limits, they hold, stats (block I/O too)/pause/unpause/rm use it
#   init.sh nodeleg          kilntest without a delegated subtree: the warning, and the
#                            container still runs
#
# Prints `CHECK <name>: ok` or `CHECK <name>: FAIL <why>` per check, then (PID 1)
# `KILN-VM-RESULT: PASS` when none failed.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

ok() { echo "CHECK $1: ok"; }
fail() { echo "CHECK $1: FAIL $2"; }
expect_eq() {
  if [ "$3" = "$2" ]; then ok "$1"; else fail "$1" "want '$2', got '$3'"; fi
}
img=localhost/busybox:latest

# The nearest cgroup from $1 upwards with the memory controller's files.
limited() {
  d=$1
  while [ "$d" != /sys/fs/cgroup ] && [ ! -f "$d/memory.max" ]; do d=${d%/*}; done
  echo "$d"
}

limits() {
  who=$1 under=$2
  err=$(kiln run -d --name lim --network none --memory 64m --cpus 0.5 --pids-limit 20 \
    "$img" sleep 600 2>&1 >/dev/null)
  rc=$?
  expect_eq "$who: run -d with limits exits 0" 0 "$rc"
  expect_eq "$who: run -d with limits warns of nothing" "" "$err"
  pid=$(kiln inspect -f '{{.State.Pid}}' lim)
  cg=$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
  case "$cg" in
    "$under"/*) ok "$who: the container's cgroup ($cg) is under $under" ;;
    *) fail "$who: the container's cgroup is under $under" "it is '$cg'" ;;
  esac
  # The limits are on kiln's cgroup of the container; as root the runtime puts the process
  # in a child of it (its device filter's cgroup), which has no controllers of its own.
  d=$(limited "/sys/fs/cgroup$cg")
  expect_eq "$who: memory.max" 67108864 "$(cat "$d/memory.max")"
  expect_eq "$who: cpu.max" "50000 100000" "$(cat "$d/cpu.max")"
  expect_eq "$who: pids.max" 20 "$(cat "$d/pids.max")"
  stats=$(kiln stats --no-stream --format '{{.MemUsage}} pids={{.PIDs}}' lim)
  case "$stats" in
    *" / 64MiB pids=1") ok "$who: stats reads the v2 cgroup ($stats)" ;;
    *) fail "$who: stats reads the v2 cgroup" "got '$stats'" ;;
  esac
  # BLOCK I/O: io.stat of the container's cgroup (kiln enables +io), or the processes' own
  # accounting where io is not delegated: 4 MiB written and synced shows as 4.19MB.
  kiln run -d --name blk --network none "$img" \
    sh -c 'dd if=/dev/zero of=/f bs=1M count=4 conv=fsync 2>/dev/null; touch /done; sleep 600' \
    >/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    kiln exec blk test -e /done 2>/dev/null && break
    sleep 1
  done
  bio=$(kiln stats --no-stream --format '{{.BlockIO}}' blk)
  case "${bio#* / }" in
    4.*MB | [5-9].*MB | [1-9][0-9]*MB) ok "$who: stats counts block writes ($bio)" ;;
    *) fail "$who: stats counts block writes" "got '$bio'" ;;
  esac
  kiln rm -f blk >/dev/null
  kiln pause lim
  expect_eq "$who: pause freezes the cgroup" "frozen 1" "$(grep frozen "$d/cgroup.events")"
  expect_eq "$who: inspect says paused" paused "$(kiln inspect -f '{{.State.Status}}' lim)"
  kiln unpause lim
  expect_eq "$who: unpause thaws it" "frozen 0" "$(grep frozen "$d/cgroup.events")"
  expect_eq "$who: inspect says running" running "$(kiln inspect -f '{{.State.Status}}' lim)"

  # The limits hold: memory (a 64 MiB buffer under 32 MiB is OOM-killed), pids, cpu.
  kiln run --rm --network none --memory 32m "$img" dd if=/dev/zero of=/dev/null bs=64M count=1 \
    >/dev/null 2>&1
  expect_eq "$who: over --memory the process is killed (137)" 137 "$?"
  out=$(kiln run --rm --network none --pids-limit 4 "$img" \
    sh -c 'for i in 1 2 3 4 5 6; do sleep 3 & done; wait' 2>&1)
  case "$out" in
    *"can't fork"* | *"Resource temporarily unavailable"*) ok "$who: --pids-limit stops forks" ;;
    *) fail "$who: --pids-limit stops forks" "output: $out" ;;
  esac
  kiln run -d --name spin --network none --cpus 0.2 "$img" sh -c 'while :; do :; done' >/dev/null
  sleep 3
  spin=$(limited "/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$(kiln inspect -f '{{.State.Pid}}' spin)/cgroup")")
  throttled=$(sed -n 's/^nr_throttled //p' "$spin/cpu.stat")
  if [ "${throttled:-0}" -gt 0 ]; then
    ok "$who: --cpus throttles ($throttled periods)"
  else
    fail "$who: --cpus throttles" "cpu.stat: $(tr '\n' ' ' <"$spin/cpu.stat")"
  fi

  kiln rm -f lim spin >/dev/null
  if [ -d "$d" ] || [ -d "$spin" ]; then
    fail "$who: rm -f removes the cgroups" "$d or $spin is still there"
  else
    ok "$who: rm -f removes the cgroups"
  fi
  expect_eq "$who: no container left" "" "$(kiln ps -a -q)"
}

# A multi-stage build on this kernel (Debian 12's 6.1, whose overlay predates the new mount
# API): the image ID goes to /run/kiln-vm/build-id-WHO, for root's and kilntest's to be compared.
build() {
  who=$1
  kiln load -q -i /kiln-test/busybox.tar >/dev/null || fail "$who: load" "kiln load failed"
  ctx=$(mktemp -d)
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM localhost/busybox:latest AS builder
RUN mkdir -p /out/d && echo built >/out/file && touch /out/d/x && rm /out/d/x
FROM localhost/busybox:latest
COPY --from=builder /out /app
RUN rm /bin/vi && echo done >/app/done
CMD ["cat", "/app/file"]
DOCKERFILE
  id=$(SOURCE_DATE_EPOCH=0 kiln build -q -t vmtest "$ctx" 2>&1)
  expect_eq "$who: a multi-stage build succeeds" 0 "$?"
  case "$id" in
    sha256:*) ok "$who: build -q prints the image ID" ;;
    *) fail "$who: build -q prints the image ID" "got '$id'" ;;
  esac
  expect_eq "$who: its image runs" built "$(kiln run --rm --network none vmtest 2>&1)"
  echo "$id" >"/run/kiln-vm/build-id-$who"
}

# A chain of 60 layers: their paths do not fit in the page mount(2) takes on this kernel, so
# kiln names them by descriptors.
layers() {
  ctx=$(mktemp -d)
  {
    echo "FROM localhost/busybox:latest"
    i=0
    while [ $i -lt 60 ]; do echo "RUN echo $i >/f$i"; i=$((i + 1)); done
    echo 'RUN test "$(cat /f0)" = 0 && test "$(cat /f59)" = 59 && ls / | grep -c "^f[0-9]" >/count'
  } >"$ctx/Dockerfile"
  if kiln build -q -t layers "$ctx" >/dev/null 2>"$ctx/err"; then
    ok "root: a build of 61 layers succeeds"
  else
    fail "root: a build of 61 layers succeeds" "$(tail -3 "$ctx/err")"
  fi
  expect_eq "root: every layer is seen" 60 "$(kiln run --rm --network none layers cat /count 2>&1)"
}

nodeleg() {
  out=$(kiln run --rm --network none --memory 64m "$img" echo ran 2>&1)
  rc=$?
  expect_eq "kilntest, not delegated: the container runs" 0 "$rc"
  case "$out" in
    *"cgroup limits cannot apply (--memory)"*"no delegated cgroup v2 subtree"*"systemd-run --user --scope -p Delegate=yes"*ran*)
      ok "kilntest, not delegated: one warning says what to do" ;;
    *) fail "kilntest, not delegated: one warning says what to do" "output: $out" ;;
  esac
}

as_kilntest() {
  # $1: the cgroup to start in; the rest: init.sh's arguments.
  cg=$1
  shift
  sh -c 'echo $$ >"$0/cgroup.procs" && exec setpriv --reuid=kilntest --regid=kilntest --init-groups \
    env -i HOME=/home/kilntest USER=kilntest LOGNAME=kilntest PATH="$PATH" sh /kiln-test/init.sh "$@"' \
    "/sys/fs/cgroup$cg" "$@"
}

case "${1:-}" in
  limits) build "$2"; limits "$2" "$3"; exit 0 ;;
  nodeleg) nodeleg; exit 0 ;;
esac

# PID 1.
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mkdir -m 1777 /run/kiln-vm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
modprobe overlay
busybox ip link set lo up
hostname kiln-vm
install -m 755 /kiln-test/kiln /usr/local/bin/kiln
echo "guest: kernel $(uname -r); cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"

{
  echo "+memory +cpu +pids" >/sys/fs/cgroup/cgroup.subtree_control
  build root
  layers
  limits root /kiln

  # A subtree delegated as systemd delegates one (the directory and its cgroup.procs,
  # cgroup.threads and cgroup.subtree_control owned by the user; its limits files are not),
  # the user's shell in a leaf the user made below it.
  mkdir /sys/fs/cgroup/deleg
  echo "+memory +cpu +pids" >/sys/fs/cgroup/deleg/cgroup.subtree_control
  for f in . cgroup.procs cgroup.threads cgroup.subtree_control; do
    chown kilntest:kilntest "/sys/fs/cgroup/deleg/$f"
  done
  setpriv --reuid=kilntest --regid=kilntest --init-groups mkdir /sys/fs/cgroup/deleg/session
  as_kilntest /deleg/session limits kilntest /deleg/kiln

  mkdir /sys/fs/cgroup/nodeleg
  as_kilntest /nodeleg nodeleg

  expect_eq "kilntest's image is root's" "$(cat /run/kiln-vm/build-id-root)" "$(cat /run/kiln-vm/build-id-kilntest)"
} 2>&1 | tee /run/checks.log

if grep -q '^CHECK ' /run/checks.log && ! grep -q '^CHECK .*: FAIL' /run/checks.log; then
  echo "KILN-VM-RESULT: PASS"
else
  echo "KILN-VM-RESULT: FAIL"
fi
sync
echo o >/proc/sysrq-trigger
sleep 60
