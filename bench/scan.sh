#!/usr/bin/env bash
# Scanning speed: `cordon scan` versus GuardDog over the same real packages from PyPI, in one
# run; prints both times and the ratio, the import time of the PyPA advisory snapshot, and the
# peak RSS of each tool.
#
# Usage: bench/scan.sh   (needs PyPI; caches downloads in .build/bench-packages and GuardDog in
#                         .build/guarddog-venv)
#        BASELINE=DIR [RUNS=N] bench/scan.sh   also scans the same files against the same database
#                         with DIR/cordon-scan (an earlier build) and this build's, alternately, N
#                         times each (default 11), and prints both medians, wall clock and CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SHARED:-$(cd .. && pwd)/shared/data/pypa-advisory-database}"
CACHE=.build/bench-packages
VENV=.build/guarddog-venv
PACKAGES=(requests==2.31.0 requests==2.19.0 urllib3==2.2.1 numpy==1.26.4 django==4.2.11 flask==3.0.2
          cryptography==42.0.5 idna==3.6 certifi==2024.2.2 charset-normalizer==3.3.2 six==1.16.0
          python-dateutil==2.9.0 pyyaml==6.0.1 jinja2==3.1.3 markupsafe==2.1.5 click==8.1.7
          itsdangerous==2.1.2 werkzeug==3.0.1 packaging==24.0 attrs==23.2.0 setuptools==69.2.0 toml==0.10.2)

make -s release >/dev/null
CORDON="$PWD/.build/release/cordon"
mkdir -p "$CACHE"
if [ "$(ls "$CACHE" | wc -l)" -lt "${#PACKAGES[@]}" ]; then
  for p in "${PACKAGES[@]}"; do python3 -m pip download -q --no-deps -d "$CACHE" "$p"; done
  # sdists too, for the packages that publish them
  python3 -m pip download -q --no-deps --no-binary :all: -d "$CACHE" requests==2.31.0 six==1.16.0 idna==3.6 toml==0.10.2 || true
fi
if [ ! -x "$VENV/bin/guarddog" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q guarddog
fi
STATE="$(mktemp -d)"
trap 'rm -rf "$STATE"' EXIT
FILES=("$CACHE"/*)

echo "packages: ${#FILES[@]} files from PyPI"
/usr/bin/time -f "%e s, peak RSS %M KiB" -o "$STATE/import.time" "$CORDON" db import --state-dir "$STATE" "$SHARED" >/dev/null
echo "cordon db import (PyPA snapshot): $(cat "$STATE/import.time")"

start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$STATE/cordon.rss" "$CORDON" scan --state-dir "$STATE" --format json "${FILES[@]}" > "$STATE/cordon.json"
cordon_s=$(echo "$(date +%s.%N) - $start" | bc)

start=$(date +%s.%N)
peak=0
for f in "${FILES[@]}"; do
  /usr/bin/time -f "%M" -o "$STATE/gd.rss" "$VENV/bin/guarddog" pypi scan "$f" > /dev/null 2>&1 || true
  r=$(tail -1 "$STATE/gd.rss"); [ "$r" -gt "$peak" ] && peak=$r
done
guarddog_s=$(echo "$(date +%s.%N) - $start" | bc)
# GuardDog scans one package per invocation; give it both cores too, as cordon scan uses them.
start=$(date +%s.%N)
printf '%s\n' "${FILES[@]}" | xargs -P "$(nproc)" -I{} sh -c '"$0" pypi scan "{}" > /dev/null 2>&1 || true' "$VENV/bin/guarddog"
guarddog_par_s=$(echo "$(date +%s.%N) - $start" | bc)

printf "cordon scan:   %8.2f s   peak RSS %s KiB\n" "$cordon_s" "$(tail -1 "$STATE/cordon.rss")"
printf "guarddog scan: %8.2f s   peak RSS %s KiB (largest single run), one package at a time\n" "$guarddog_s" "$peak"
printf "guarddog scan: %8.2f s   with %s packages in parallel\n" "$guarddog_par_s" "$(nproc)"
printf "ratio guarddog/cordon: %.1fx (serial guarddog), %.1fx (parallel guarddog)\n" \
  "$(echo "$guarddog_s / $cordon_s" | bc -l)" "$(echo "$guarddog_par_s / $cordon_s" | bc -l)"
if [ -n "${BASELINE:-}" ]; then
  python3 - "$BASELINE/cordon-scan" "$PWD/.build/release/cordon-scan" "${RUNS:-11}" "$STATE" "${FILES[@]}" <<'PY'
import resource, statistics, subprocess, sys, time
baseline, current, runs, state, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
wall, cpu = {"baseline": [], "this build": []}, {"baseline": [], "this build": []}
for i in range(runs):
    # Alternating, and in the other order every second run, so that load on a shared machine
    # falls on both alike.
    order = [("baseline", baseline), ("this build", current)]
    for name, binary in order if i % 2 == 0 else order[::-1]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        status = subprocess.run([binary, "scan", "--state-dir", state, "--format", "json", *files], stdout=subprocess.DEVNULL).returncode
        wall[name].append(time.monotonic() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if status not in (0, 1):
            sys.exit(f"{binary} scan exited {status}")
m = {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in wall}
print(f"cordon-scan scan, {runs} alternating runs each (medians):")
for name, (w, c) in m.items():
    print(f"  {name:10}  wall {w:6.2f} s   cpu {c:6.2f} s")
print(f"  this build / baseline: wall {m['this build'][0] / m['baseline'][0]:.3f}, cpu {m['this build'][1] / m['baseline'][1]:.3f}")
PY
fi
python3 - "$STATE/cordon.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
high = [(p["name"], f["rule"]) for p in report["packages"] for f in p["findings"] if f["severity"] in ("high", "critical")]
vulns = {p["name"] + " " + p["version"]: [v["id"] for v in p["vulnerabilities"]] for p in report["packages"] if p["vulnerabilities"]}
print("findings at high or above:", high or "none")
print("packages with advisories:", vulns)
PY
