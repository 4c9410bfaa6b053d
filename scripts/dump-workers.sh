#!/usr/bin/env bash
# `make dump-workers`: a py-spy dump (every thread's Python stack, now) of each gunicorn and Celery
# process of the running stack, into var/dumps/<UTC time>/<name>-<role>-<pid>.txt, and one summary
# line per process: the innermost frame of its first thread (what a sync worker is doing).
#
# Masters come from the pid files of var/run/ (gunicorn-<tier>.pid, celery-<name>.pid); their
# workers (gunicorn workers, the Celery pool's children) from the process tree. py-spy stops each
# process for a few milliseconds while it reads it, and needs ptrace rights over it (root, or the
# same user with kernel.yama.ptrace_scope=0). OPS_VAR_DIR picks another stack (scripts/stack-env.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/stack-env.sh
py_spy="${PY_SPY:-$PWD/.venv/bin/py-spy}"
out="$OPS_VAR_DIR/dumps/$(date -u +%Y%m%dT%H%M%SZ)"

children() {  # every descendant of $1, depth first
  local pid=$1 child
  for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    echo "$child"
    children "$child"
  done
}

summary() {  # "<thread line> | <innermost frame>" of the first busy thread of a py-spy dump (else the
  # first thread; busy = not waiting in a known idle spot: a selector, a condition, a queue); "+N threads"
  awk -v idle='^(Condition\.wait|Event\.wait|_epoll\.poll|EpollSelector\.select|select |BaseSelector|Queue\.get|SimpleQueue|_worker \(concurrent|SyncWorker\.wait|Arbiter\.wait_for_signals)' '
       /^Thread / { n++; line = $0; getline; gsub(/^ +/, ""); if (n == 1) { thread = line; frame = $0 }
                    if (!busy && $0 !~ idle) { busy = 1; thread = line; frame = $0 } }
       END { if (n == 0) { print "(no Python thread in the dump)"; exit }
             printf "%s | %s%s\n", thread, frame, (n > 1 ? sprintf("  (+%d threads)", n - 1) : "") }' "$1"
}

shopt -s nullglob
targets=()
for pidfile in "$OPS_VAR_DIR"/run/gunicorn-*.pid "$OPS_VAR_DIR"/run/celery-*.pid; do
  name=$(basename "$pidfile" .pid)
  pid=$(tr -dc 0-9 <"$pidfile")
  kind=${name%%-*}  # gunicorn or celery
  if [ -z "$pid" ] || ! tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | grep -q "$kind"; then
    echo "dump-workers: $pidfile: no running $kind process (stale pid file)" >&2
    continue
  fi
  targets+=("$name master $pid")
  for child in $(children "$pid"); do
    targets+=("$name worker $child")
  done
done
if [ ${#targets[@]} -eq 0 ]; then
  echo "dump-workers: no gunicorn or Celery process found under $OPS_VAR_DIR/run (is the stack up? make up)" >&2
  exit 1
fi

mkdir -p "$out"
failed=0
echo "dump-workers: ${#targets[@]} processes -> $out"
for target in "${targets[@]}"; do
  read -r name role pid <<<"$target"
  file="$out/$name-$role-$pid.txt"
  if "$py_spy" dump --pid "$pid" >"$file" 2>&1; then
    printf '  %-16s %-6s %7s  %s\n' "$name" "$role" "$pid" "$(summary "$file")"
  else
    failed=$((failed + 1))
    printf '  %-16s %-6s %7s  py-spy failed: %s\n' "$name" "$role" "$pid" "$(tail -n 1 "$file")"
  fi
done
[ "$failed" -eq 0 ] || { echo "dump-workers: $failed of ${#targets[@]} dumps failed (ptrace rights? see $out)" >&2; exit 1; }
