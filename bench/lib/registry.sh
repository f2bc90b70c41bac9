# Sourced by the bench scripts that need a local registry (bench/registry.sh,
# bench/pull-build.sh): Debian's docker-registry (distribution 2.8) on a free port of
# 127.0.0.1, plain HTTP, access log off.
#
#   start_registry WORK [delete]
#       writes WORK/registry.yml (storage in WORK/reg; `delete: enabled` when a second
#       argument is given, for scripts that empty the registry between runs), starts
#       `docker-registry serve` with its output in WORK/registry.log, and waits until /v2/
#       answers (exits the script if it does not within 10 s). Sets `reg` (127.0.0.1:PORT)
#       and `reg_pid` (the caller's cleanup stops that PID).

start_registry() {
  local work=$1 delete=${2:-}
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  reg=127.0.0.1:$port
  {
    printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n'
    printf 'storage:\n  filesystem:\n    rootdirectory: %s\n' "$work/reg"
    [ -z "$delete" ] || printf '  delete:\n    enabled: true\n'
    printf 'http:\n  addr: %s\n' "$reg"
  } >"$work/registry.yml"
  docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  reg_pid=$!
  for _ in $(seq 100); do curl -sf "http://$reg/v2/" >/dev/null && return 0; sleep 0.1; done
  echo "bench: docker-registry did not answer on $reg; its log:" >&2
  cat "$work/registry.log" >&2
  exit 1
}
