#!/usr/bin/env bash
# cordond under load, in one run:
#   1. latency of one /bin/true task: `cordon run` (direct) vs `cordon submit --wait` (through
#      the daemon, a new CLI process each time, as a person would use it), with hyperfine; and
#      submit+wait on a kept-open connection (an agent framework's client);
#   2. sustained throughput: 8 concurrent clients, each submitting /bin/true and waiting;
#   3. daemon RSS and open descriptors idle, and after 10,000 tasks in all;
#   4. 256 requests with 1 MiB of stdin each queued behind 64 running tasks (max_running 64),
#      then all cancelled: how many the daemon took, its RSS with them queued and after.
#
# Usage: bench/daemon.sh [LATENCY_RUNS] [THROUGHPUT_TASKS] [TOTAL_TASKS]   (root; 200 2000 10000)
# CORDON_BIN_DIR=DIR uses the cordon and cordond in DIR instead of building this tree (to
# compare two builds in one sitting).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-200}"
BURST="${2:-2000}"
TOTAL="${3:-10000}"
[ "$(id -u)" = 0 ] || { echo "bench/daemon.sh: needs root (cordond creates namespaces and cgroups)" >&2; exit 1; }
for tool in hyperfine python3; do
  command -v "$tool" >/dev/null || { echo "bench/daemon.sh: $tool is not installed (apt-get install $tool)" >&2; exit 1; }
done

if [ -n "${CORDON_BIN_DIR:-}" ]; then
  BIN="$CORDON_BIN_DIR"
else
  make -s release >/dev/null
  BIN="$PWD/.build/release"
fi
CORDON="$BIN/cordon"
CORDOND="$BIN/cordond"
SCRATCH="$(mktemp -d /tmp/cordon-bench.XXXXXX)"
chmod 755 "$SCRATCH"
mkdir -p "$SCRATCH/run" "$SCRATCH/config" && chmod 755 "$SCRATCH/run"
SOCK="$SCRATCH/run/cordon.sock"
# Room for the 8 clients' tasks plus the bookkeeping of 10,000 (default limits otherwise).
printf '[scheduler]\nmax_running = 8\n' > "$SCRATCH/config/cordond.toml"
# The last step's 64 blockers run in a second daemon with room for them.
"$CORDOND" --config-dir "$SCRATCH/config" --state-dir "$SCRATCH/state" --runtime-dir "$SCRATCH/run" 2>"$SCRATCH/cordond.log" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$SCRATCH"' EXIT
for _ in $(seq 100); do "$CORDON" status --socket "$SOCK" >/dev/null 2>&1 && break; sleep 0.1; done
LOAD="python3 bench/daemon.py $SOCK"

RUN="$CORDON run --policy default --state-dir $SCRATCH/direct --runtime-dir $SCRATCH/run -- /bin/true"
SUBMIT="$CORDON submit --wait --socket $SOCK -- /bin/true"
$RUN
$SUBMIT
idle=$($LOAD process $PID)

hyperfine --style none --shell=none --warmup 20 --runs "$RUNS" --export-json "$SCRATCH/times.json" \
  -n "cordon run (direct)" "$RUN" \
  -n "cordon submit --wait (daemon)" "$SUBMIT" >/dev/null
kept=$($LOAD latency "$RUNS")
burst=$($LOAD throughput "$BURST" 8)
done_so_far=$((RUNS + 20 + 1 + RUNS + BURST))  # tasks the daemon ran so far (cordon run does not count)
rest=$((TOTAL - done_so_far))
[ "$rest" -gt 0 ] && $LOAD throughput "$rest" 8 >/dev/null
after=$($LOAD process $PID)
tasks=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])[0][\"id\"])" "$("$CORDON" tasks --json --limit 1 --socket "$SOCK")")
kill -TERM $PID; wait $PID 2>/dev/null || true
printf '[scheduler]\nmax_running = 64\n' > "$SCRATCH/config/cordond.toml"
"$CORDOND" --config-dir "$SCRATCH/config" --state-dir "$SCRATCH/state" --runtime-dir "$SCRATCH/run" 2>>"$SCRATCH/cordond.log" &
PID=$!
for _ in $(seq 100); do "$CORDON" status --socket "$SOCK" >/dev/null 2>&1 && break; sleep 0.1; done
queued=$($LOAD queued $PID 256 1048000)

python3 - "$SCRATCH/times.json" "$idle" "$after" "$kept" "$burst" "$TOTAL" "$tasks" "$queued" <<'PY'
import json, statistics, sys
times = {r["command"]: sorted(r["times"]) for r in json.load(open(sys.argv[1]))["results"]}
idle, after, kept, burst = (json.loads(a) for a in sys.argv[2:6])
queued = json.loads(sys.argv[8])
def p95(t): return t[min(len(t) - 1, int(round(0.95 * (len(t) - 1))))]
print(f"{'one /bin/true task':40} {'median':>9} {'p95':>9}")
for name, t in times.items():
    print(f"{name:40} {statistics.median(t) * 1e3:7.2f}ms {p95(t) * 1e3:7.2f}ms")
print(f"{'submit+wait on an open connection':40} {kept['median_ms']:7.2f}ms {kept['p95_ms']:7.2f}ms")
direct = statistics.median(times["cordon run (direct)"]) * 1e3
print(f"added over direct cordon run (median): CLI {statistics.median(times['cordon submit --wait (daemon)']) * 1e3 - direct:+.2f} ms, "
      f"open connection {kept['median_ms'] - direct:+.2f} ms")
print(f"throughput, 8 clients, {burst['tasks']} tasks: {burst['tasks_per_second']:.0f} tasks/s "
      f"(per task median {burst['median_ms']:.1f} ms, p95 {burst['p95_ms']:.1f} ms)")
print(f"cordond RSS: idle {idle['rss_kib'] / 1024:.1f} MiB, after {sys.argv[6]} tasks {after['rss_kib'] / 1024:.1f} MiB; "
      f"open fds: {idle['fds']} idle, {after['fds']} after; tasks recorded: {sys.argv[7]}")
print(f"{queued['requests']} requests of {queued['bytes'] >> 10} KiB stdin behind 64 running tasks: {queued['taken']} queued, "
      f"{queued['refused']} refused; cordond RSS {queued['rss_before_kib'] / 1024:.1f} MiB before, "
      f"{queued['rss_queued_kib'] / 1024:.1f} MiB with them queued, {queued['rss_after_cancel_kib'] / 1024:.1f} MiB 3 s after cancelling")
PY
