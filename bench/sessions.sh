#!/usr/bin/env bash
# Sessions (issue 19), in one run against bubblewrap:
#   1. latency of /bin/true, interleaved rounds on kept-open connections: session.exec in an open
#      session, task.submit+wait of a policy with [daemon] warm = 4 (a warm sandbox) and of the
#      default policy (a cold one), same-root bubblewrap, plain fork/exec; median and p95, and
#      the ratios to bubblewrap (issue 19's target: a warm task at most 0.5x); each measurement
#      after 20 ms of quiet (SESSIONS_GAP=0 runs them back to back), so that work one leaves
#      behind (a pool's rebuild, a sandbox's teardown) is not charged to the next;
#   2. throughput: 8 clients, each in its own session doing session.exec /bin/true, against 8
#      parallel loops of same-root bubblewrap.
# "bubblewrap, same root" is bench/spawn.sh's: read-only /usr and /etc, the /bin and /lib
# symlinks, /dev, /proc, a tmpfs /tmp, every namespace, no capabilities.
#
# Usage: bench/sessions.sh [ROUNDS] [EXECS_PER_CLIENT]   (root; 300 500)
# CORDON_BIN_DIR=DIR uses the cordond in DIR instead of building this tree.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-300}"
EXECS="${2:-500}"
[ "$(id -u)" = 0 ] || { echo "bench/sessions.sh: needs root (cordond creates namespaces and cgroups)" >&2; exit 1; }
for tool in bwrap python3; do
  command -v "$tool" >/dev/null || { echo "bench/sessions.sh: $tool is not installed (apt-get install $tool)" >&2; exit 1; }
done
if [ -n "${CORDON_BIN_DIR:-}" ]; then
  BIN="$CORDON_BIN_DIR"
else
  make -s release >/dev/null
  BIN="$PWD/.build/release"
fi
SCRATCH="$(mktemp -d /tmp/cordon-bench.XXXXXX)"
chmod 755 "$SCRATCH"
mkdir -p "$SCRATCH/run" "$SCRATCH/config" && chmod 755 "$SCRATCH/run"
SOCK="$SCRATCH/run/cordon.sock"
printf '[scheduler]\nmax_running = 8\n' > "$SCRATCH/config/cordond.toml"
mkdir -p "$SCRATCH/config/policies"
printf '[policy]\nname = "warm"\nextends = ["default"]\n[daemon]\nwarm = 4\n' > "$SCRATCH/config/policies/warm.toml"
"$BIN/cordond" --config-dir "$SCRATCH/config" --state-dir "$SCRATCH/state" --runtime-dir "$SCRATCH/run" 2>"$SCRATCH/cordond.log" &
PID=$!
trap 'kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$SCRATCH"' EXIT
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { echo "bench/sessions.sh: cordond did not start:" >&2; cat "$SCRATCH/cordond.log" >&2; exit 1; }
sleep 2  # the warm policy's pool is built at start
BWRAP="bwrap --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --ro-bind /etc /etc --dev /dev --proc /proc --tmpfs /tmp --unshare-all --die-with-parent --cap-drop ALL --new-session"
echo "$("$BIN/cordond" --version), $(bwrap --version), $(nproc) cores"
python3 bench/sessions.py "$SOCK" "$BWRAP" latency "$ROUNDS"
echo
python3 bench/sessions.py "$SOCK" "$BWRAP" throughput "$EXECS" 8
