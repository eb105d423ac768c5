#!/usr/bin/env bash
# Spawn latency of /bin/true: plain fork/exec, `cordon run --policy default`, bubblewrap (twice)
# and firejail, measured in one run with hyperfine, printed as median and p95, plus the ratios of
# Cordon's median to each bubblewrap row's.
#
# Cordon applies more than bubblewrap here: seccomp (with user notification for denials),
# Landlock, a cgroup with memory/pids/cpu limits, a per-sandbox uid range, masked /proc and a
# minimal root. "bubblewrap" gets --unshare-all --ro-bind / / --cap-drop ALL --new-session;
# "bubblewrap, same root" builds the kind of root Cordon builds (read-only /usr and /etc, the
# /bin and /lib symlinks, /dev, /proc, a tmpfs /tmp) and dies with its parent, as a sandbox does.
# docs/architecture.md ("Spawn cost") has each step of a spawn measured.
#
# Usage: bench/spawn.sh [RUNS]   (root; RUNS defaults to 300)
#        BASELINE=DIR bench/spawn.sh [RUNS]   also times the cordon (and cordon-init) in DIR, an
#        earlier build, against this one.
# After hyperfine's rows come RUNS interleaved rounds of this build and same-root bubblewrap (and
# the baseline), the order rotating each round, so that a change in the machine's load falls on
# all of them (hyperfine runs one command's series after the other's, which on a shared machine
# showed differences of 20% either way).
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
SAME_ROOT_BWRAP="bwrap --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --ro-bind /etc /etc --dev /dev --proc /proc --tmpfs /tmp --unshare-all --die-with-parent --cap-drop ALL --new-session /bin/true"
$RUN  # compiles and caches the seccomp filter, as a first spawn after install would
hyperfine --style none --shell=none --warmup 20 --runs "$RUNS" --export-json "$SCRATCH/times.json" \
  -n "fork/exec" /bin/true \
  -n "cordon run --policy default" "$RUN" \
  -n "bubblewrap" "bwrap --unshare-all --ro-bind / / --cap-drop ALL --new-session /bin/true" \
  -n "bubblewrap, same root" "$SAME_ROOT_BWRAP" \
  -n "firejail" "firejail --quiet --noprofile --net=none --seccomp /bin/true" >/dev/null

python3 - "$SCRATCH/times.json" <<'PY'
import json, statistics, sys
results = {r["command"]: sorted(r["times"]) for r in json.load(open(sys.argv[1]))["results"]}
def p95(t): return t[min(len(t) - 1, int(round(0.95 * (len(t) - 1))))]
print(f"{'spawn /bin/true':32} {'median':>9} {'p95':>9}   (runs: {len(next(iter(results.values())))})")
for name, t in results.items():
    print(f"{name:32} {statistics.median(t) * 1e3:7.2f}ms {p95(t) * 1e3:7.2f}ms")
cordon = statistics.median(results["cordon run --policy default"])
print(f"ratio cordon/bubblewrap, same root (median): {cordon / statistics.median(results['bubblewrap, same root']):.2f}")
print(f"ratio cordon/bubblewrap (median): {cordon / statistics.median(results['bubblewrap']):.2f}")
PY

# Interleaved: this build and same-root bubblewrap (and BASELINE's cordon when given), one of each
# per round, the order rotating, so that a change in the machine's load falls on all of them.
python3 - "$RUNS" "${BASELINE:-}" "$CORDON" "$SCRATCH" "$SAME_ROOT_BWRAP" <<'PY'
import statistics, subprocess, sys, time
runs, base, this, scratch, bwrap = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5].split()
# Its own state dir: the filter cache is keyed by content, but its layout may differ.
def argv(binary, state): return [binary, "run", "--policy", "default", "--state-dir", f"{scratch}/{state}", "--runtime-dir", f"{scratch}/run", "--", "/bin/true"]
cmds = {"this build": argv(this, "state"), "bubblewrap, same root": bwrap}
if base: cmds["baseline"] = argv(f"{base}/cordon", "base-state")
for c in cmds.values(): subprocess.run(c, check=True)
times = {k: [] for k in cmds}
names = list(cmds)
for i in range(runs):
    for k in names[i % len(names):] + names[:i % len(names)]:
        start = time.perf_counter()
        subprocess.run(cmds[k], check=True)
        times[k].append(time.perf_counter() - start)
print(f"\n{'interleaved rounds':32} {'median':>9}   (rounds: {runs})")
for k, t in times.items(): print(f"{k:32} {statistics.median(t) * 1e3:7.2f}ms")
m = {k: statistics.median(t) for k, t in times.items()}
print(f"ratio this build/bubblewrap, same root (median): {m['this build'] / m['bubblewrap, same root']:.3f}")
if base: print(f"ratio this build/baseline (median): {m['this build'] / m['baseline']:.3f}")
PY
