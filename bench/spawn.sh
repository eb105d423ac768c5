#!/usr/bin/env bash
# Spawn latency of /bin/true: plain fork/exec, `cordon run --policy default`, bubblewrap and
# firejail, measured in one run with hyperfine, printed as median and p95, plus the
# Cordon/bubblewrap ratio of the medians.
#
# Cordon applies more than bubblewrap here: seccomp (with user notification for denials),
# Landlock, a cgroup with memory/pids/cpu limits, a per-sandbox uid range, masked /proc and a
# minimal root. bubblewrap gets --unshare-all --ro-bind / / --cap-drop ALL --new-session.
#
# Usage: bench/spawn.sh [RUNS]   (root; RUNS defaults to 300)
#        BASELINE=DIR bench/spawn.sh [RUNS]   also times the cordon (and cordon-init) in DIR, an
#        earlier build, against this one: RUNS pairs, alternating which goes first, so that a
#        change in the machine's load falls on both (hyperfine runs one command's series after
#        the other's, which on a shared machine showed differences of 20% either way).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-300}"
[ "$(id -u)" = 0 ] || { echo "bench/spawn.sh: needs root (cordon run creates namespaces and cgroups)" >&2; exit 1; }
for tool in hyperfine bwrap firejail python3; do
  command -v "$tool" >/dev/null || { echo "bench/spawn.sh: $tool is not installed (apt-get install $tool)" >&2; exit 1; }
done

make -s release >/dev/null
CORDON="$PWD/.build/release/cordon"
SCRATCH="$(mktemp -d /tmp/cordon-bench.XXXXXX)"
chmod 755 "$SCRATCH"  # the sandbox root (an unprivileged uid) must reach $SCRATCH/run/root
trap 'rm -rf "$SCRATCH"' EXIT
RUN="$CORDON run --policy default --state-dir $SCRATCH/state --runtime-dir $SCRATCH/run -- /bin/true"
$RUN  # compiles and caches the seccomp filter, as a first spawn after install would
hyperfine --style none --shell=none --warmup 20 --runs "$RUNS" --export-json "$SCRATCH/times.json" \
  -n "fork/exec" /bin/true \
  -n "cordon run --policy default" "$RUN" \
  -n "bubblewrap" "bwrap --unshare-all --ro-bind / / --cap-drop ALL --new-session /bin/true" \
  -n "firejail" "firejail --quiet --noprofile --net=none --seccomp /bin/true" >/dev/null

python3 - "$SCRATCH/times.json" <<'PY'
import json, statistics, sys
results = {r["command"]: sorted(r["times"]) for r in json.load(open(sys.argv[1]))["results"]}
def p95(t): return t[min(len(t) - 1, int(round(0.95 * (len(t) - 1))))]
print(f"{'spawn /bin/true':32} {'median':>9} {'p95':>9}   (runs: {len(next(iter(results.values())))})")
for name, t in results.items():
    print(f"{name:32} {statistics.median(t) * 1e3:7.2f}ms {p95(t) * 1e3:7.2f}ms")
ratio = statistics.median(results["cordon run --policy default"]) / statistics.median(results["bubblewrap"])
print(f"ratio cordon/bubblewrap (median): {ratio:.2f}")
PY

if [ -n "${BASELINE:-}" ]; then
  # Its own state dir: the filter cache is keyed by content, but its layout may differ.
  python3 - "$RUNS" "$BASELINE/cordon" "$CORDON" "$SCRATCH" <<'PY'
import statistics, subprocess, sys, time
runs, base, this, scratch = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def argv(binary, state): return [binary, "run", "--policy", "default", "--state-dir", f"{scratch}/{state}", "--runtime-dir", f"{scratch}/run", "--", "/bin/true"]
cmds = {"baseline": argv(base, "base-state"), "this build": argv(this, "state")}
for c in cmds.values(): subprocess.run(c, check=True)
times = {k: [] for k in cmds}
for i in range(runs):
    for k in (["baseline", "this build"] if i % 2 == 0 else ["this build", "baseline"]):
        start = time.perf_counter()
        subprocess.run(cmds[k], check=True)
        times[k].append(time.perf_counter() - start)
print(f"\n{'cordon run, interleaved pairs':32} {'median':>9}   (pairs: {runs})")
for k, t in times.items(): print(f"{k:32} {statistics.median(t) * 1e3:7.2f}ms")
print(f"ratio this build/baseline (median): {statistics.median(times['this build']) / statistics.median(times['baseline']):.3f}")
PY
fi
