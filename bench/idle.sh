#!/usr/bin/env bash
# What held connections cost cordond, for one or more builds in one sitting (interleaved):
#   - start-up: from exec to the first answered system.health, and RSS/threads idle;
#   - N connections held open and silent, and N each waiting in task.wait (N = 100, 1000):
#     RSS, threads, descriptors, and the latency of system.health on a fresh connection and of
#     `cordon status` while they are held (bench/idle.py).
# Each measurement gets a daemon of its own; the builds take turns in every round, so a busy
# machine slows them alike. Prints the median over ROUNDS of every number, per build.
#
# Usage: bench/idle.sh ROUNDS NAME=DIR [NAME=DIR ...]   (root; DIR holds cordon and cordond)
#   e.g. bench/idle.sh 3 today=/tmp/bins/today epoll=.build/release
# IDLE_COUNTS (default "100 1000") and IDLE_SAMPLES (default 200) change the load.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/idle.sh: needs root (cordond runs as root)" >&2; exit 1; }
ROUNDS="${1:?usage: bench/idle.sh ROUNDS NAME=DIR [NAME=DIR ...]}"
shift
COUNTS="${IDLE_COUNTS:-100 1000}"
SAMPLES="${IDLE_SAMPLES:-200}"
SCRATCH="$(mktemp -d /tmp/cordon-idle.XXXXXX)"
chmod 755 "$SCRATCH"
RESULTS="$SCRATCH/results.jsonl"
PID=
trap '[ -n "$PID" ] && kill -TERM $PID 2>/dev/null; wait 2>/dev/null; cp "$RESULTS" /tmp/cordon-idle-last.jsonl 2>/dev/null; rm -rf "$SCRATCH"' EXIT

# Starts DIR's cordond on a fresh state dir; prints its pid and the ms until it answered.
start() {
  local dir="$1"
  rm -rf "$SCRATCH/state" "$SCRATCH/run" && mkdir -p "$SCRATCH/run" "$SCRATCH/config" && chmod 755 "$SCRATCH/run"
  # Room for 1000 held connections from one (admin) user.
  printf '[server]\nmax_connections = 4096\nmax_connections_per_user = 4096\nconnect_rate_per_user = 1000000\n' > "$SCRATCH/config/cordond.toml"
  python3 - "$dir/cordond" "$SCRATCH" <<'PY'
import json, os, socket, subprocess, sys, time
cordond, scratch = sys.argv[1], sys.argv[2]
sock = f"{scratch}/run/cordon.sock"
t0 = time.perf_counter()
p = subprocess.Popen([cordond, "--config-dir", f"{scratch}/config", "--state-dir", f"{scratch}/state",
                      "--runtime-dir", f"{scratch}/run"], stderr=open(f"{scratch}/cordond.log", "ab"),
                     start_new_session=True)
while True:
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"system.health"}\n')
        if s.recv(65536):
            break
    except OSError:
        pass
    finally:
        s.close()
    if time.perf_counter() - t0 > 30 or p.poll() is not None:
        sys.exit("cordond did not start")
    time.sleep(0.001)
print(p.pid, (time.perf_counter() - t0) * 1e3)
PY
}

stop() {
  kill -TERM "$PID" 2>/dev/null || true
  while kill -0 "$PID" 2>/dev/null; do sleep 0.05; done
  PID=
}

for round in $(seq "$ROUNDS"); do
  for build in "$@"; do
    name="${build%%=*}"; dir="${build#*=}"
    read -r PID ready < <(start "$dir")
    sleep 1
    idle=$(python3 -c 'import json,os,sys
s={l.split(":")[0]:l.split(":")[1].split() for l in open(f"/proc/{sys.argv[1]}/status")}
print(json.dumps({"rss_kib":int(s["VmRSS"][0]),"threads":int(s["Threads"][0]),"fds":len(os.listdir(f"/proc/{sys.argv[1]}/fd"))}))' "$PID")
    echo "{\"build\":\"$name\",\"round\":$round,\"what\":\"start\",\"ready_ms\":$ready,\"idle\":$idle}" >> "$RESULTS"
    python3 bench/idle.py "$SCRATCH/run/cordon.sock" "$PID" 0 open "$SAMPLES" "$dir/cordon" \
      | sed "s/^/{\"build\":\"$name\",\"round\":$round,\"what\":\"held\",\"r\":/; s/\$/}/" >> "$RESULTS"
    stop
    for n in $COUNTS; do
      for mode in open wait; do
        read -r PID ready < <(start "$dir")
        python3 bench/idle.py "$SCRATCH/run/cordon.sock" "$PID" "$n" "$mode" "$SAMPLES" "$dir/cordon" \
          | sed "s/^/{\"build\":\"$name\",\"round\":$round,\"what\":\"held\",\"ready_ms\":$ready,\"r\":/; s/\$/}/" >> "$RESULTS"
        stop
      done
    done
    echo "round $round: $name done" >&2
  done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
builds = list(dict.fromkeys(r["build"] for r in rows))
med = statistics.median
print(f"{'':34}" + "".join(f"{b:>22}" for b in builds))
def line(label, pick, fmt):
    vals = []
    for b in builds:
        xs = [v for v in (pick(r) for r in rows if r["build"] == b) if v is not None]
        vals.append(fmt(med(xs)) if xs else "-")
    print(f"{label:34}" + "".join(f"{v:>22}" for v in vals))
line("start to ready (ms, every start)", lambda r: r.get("ready_ms"), lambda v: f"{v:.1f}")
line("idle RSS (MiB)", lambda r: r["idle"]["rss_kib"] / 1024 if r["what"] == "start" else None, lambda v: f"{v:.1f}")
line("idle threads", lambda r: r["idle"]["threads"] if r["what"] == "start" else None, lambda v: f"{v:.0f}")
keys = sorted({(r["r"]["n"], r["r"]["mode"]) for r in rows if r["what"] == "held"})
for n, mode in keys:
    def held(f):
        return lambda r: f(r["r"]) if r["what"] == "held" and r["r"]["n"] == n and r["r"]["mode"] == mode else None
    tag = f"{n} {mode}"
    line(f"{tag}: RSS (MiB)", held(lambda x: x["held"]["rss_kib"] / 1024), lambda v: f"{v:.1f}")
    line(f"{tag}: threads", held(lambda x: x["held"]["threads"]), lambda v: f"{v:.0f}")
    line(f"{tag}: fds", held(lambda x: x["held"]["fds"]), lambda v: f"{v:.0f}")
    line(f"{tag}: health median (ms)", held(lambda x: x["health_median_ms"]), lambda v: f"{v:.2f}")
    line(f"{tag}: health p95 (ms)", held(lambda x: x["health_p95_ms"]), lambda v: f"{v:.2f}")
    line(f"{tag}: cordon status (ms)", held(lambda x: x.get("status_median_ms")), lambda v: f"{v:.2f}")
    line(f"{tag}: refused or answered early", held(lambda x: x["refused_or_answered"]), lambda v: f"{v:.0f}")
    line(f"{tag}: seconds to open all", held(lambda x: x["open_seconds"]), lambda v: f"{v:.3f}")
    line(f"{tag}: connects retried (backlog full)", held(lambda x: x.get("connect_retries", 0)), lambda v: f"{v:.0f}")
print(f"(medians over {max(r['round'] for r in rows)} rounds; raw rows in /tmp/cordon-idle-last.jsonl)")
PY
