#!/usr/bin/env bash
# Scanning speed and memory, in two parts.
#
# packages: `cordon scan` versus GuardDog over the same real packages from PyPI, in one run;
# prints both times and the ratio, the import time of the PyPA advisory snapshot, and the peak
# RSS of each tool.
#
# images: generated container images of 1,000 MiB (5 × 200 MiB layers, half random and half
# text, with real inventory files; bench/make-image.py) as a docker save tar and as an OCI
# layout directory with gzip layers, and images whose package databases are blank lines (dpkg
# status of 1 MiB and 4 MiB, ten 1 MiB node_modules package.json files); prints wall clock, CPU
# and peak RSS (wait4's rusage of each scan) as medians. GuardDog has no image scanning, so
# there is no peer row. Needs about 2.2 GB free in $TMPDIR (default /tmp), removed at the end.
#
# Usage: bench/scan.sh [packages|images]   (both when neither is named; packages needs PyPI and
#                         caches downloads in .build/bench-packages and GuardDog in
#                         .build/guarddog-venv)
#        BASELINE=DIR [RUNS=N] bench/scan.sh   also scans the same files against the same database
#                         (the same images) with DIR/cordon-scan (an earlier build) and this
#                         build's, alternately, N times each (default 11; 5 for the 1 GB images),
#                         and prints both medians and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
PART="${1:-all}"
case "$PART" in packages|images|all) ;; *) echo "usage: bench/scan.sh [packages|images]" >&2; exit 2 ;; esac
if [ "$PART" = images ]; then
  swift build -c release --static-swift-stdlib --product cordon-scan >/dev/null
else
  make -s release >/dev/null
fi

if [ "$PART" != packages ]; then
  IMAGES="$(mktemp -d "${TMPDIR:-/tmp}/cordon-bench-images.XXXXXX")"
  trap 'rm -rf "$IMAGES"' EXIT
  free_kib=$(df -Pk "$IMAGES" | awk 'NR == 2 { print $4 }')
  [ "$free_kib" -gt $((2300 * 1024)) ] || { echo "bench/scan.sh: needs 2.3 GB free in $IMAGES" >&2; exit 1; }
  echo "generating images in $IMAGES ..."
  python3 bench/make-image.py "$IMAGES/docker.tar" --format docker --layers 5 --layer-mib 200
  python3 bench/make-image.py "$IMAGES/oci" --format oci-dir --gzip --layers 5 --layer-mib 200
  python3 - "$IMAGES" <<'PY'
import io, json, sys, tarfile
def image(out, files):
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        for name, data in files:
            i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
    with tarfile.open(out, "w") as t:
        for name, data in [("l0/layer.tar", layer.getvalue()), ("manifest.json", json.dumps([{"Layers": ["l0/layer.tar"]}]).encode())]:
            i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
head = b"Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2\n"
for mib in (1, 4):
    image(f"{sys.argv[1]}/dpkg-{mib}mib.tar", [("var/lib/dpkg/status", head + b"\n" * ((mib << 20) - len(head)))])
pkg = b'{"name": "x", "version": "1.0.0"'
image(f"{sys.argv[1]}/npm-10x1mib.tar", [(f"app/node_modules/p{k}/package.json", pkg + b"\n" * ((1 << 20) - len(pkg) - 1) + b"}") for k in range(10)])
PY
  du -sh "$IMAGES/docker.tar" "$IMAGES/oci"
  python3 - "$IMAGES" "$PWD/.build/release/cordon-scan" "${BASELINE:+$BASELINE/cordon-scan}" "${RUNS:-}" <<'PY'
import os, statistics, subprocess, sys, time
images, current, baseline, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
builds = [("this build", current)] + ([("baseline", baseline)] if baseline else [])

def scan(binary, target):
    """One scan: wall s, CPU s, peak RSS MiB, from wait4 on that child alone."""
    start = time.monotonic()
    child = subprocess.Popen([binary, "scan", "--state-dir", images, "--format", "json", target],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = start + 900
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            child.kill()
            sys.exit(f"{binary} scan {target}: no result after 900 s")
        time.sleep(0.02)
    wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        sys.exit(f"{binary} scan {target} exited {code}: {child.stderr.read().decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024

def measure(target, n):
    results = {name: [] for name, _ in builds}
    for i in range(n):
        # Alternating, and in the other order every second run, so that load on a shared
        # machine falls on both alike.
        for name, binary in builds if i % 2 == 0 else builds[::-1]:
            results[name].append(scan(binary, f"{images}/{target}"))
    return {name: tuple(statistics.median(r[k] for r in rows) for k in range(3)) for name, rows in results.items()}

def show(title, target, n):
    m = measure(target, n)
    print(f"{title}, {n} runs each (medians):")
    for name, (wall, cpu, rss) in m.items():
        print(f"  {name:10}  wall {wall:7.2f} s   cpu {cpu:7.2f} s   peak RSS {rss:7.1f} MiB")
    if baseline:
        t, b = m["this build"], m["baseline"]
        print(f"  this build / baseline: wall {t[0] / b[0]:.3f}, cpu {t[1] / b[1]:.3f}, peak RSS {t[2] / b[2]:.3f}")
    return m

big = int(runs or 5)
show("docker save tar, 1,000 MiB (5 x 200 MiB layers)", "docker.tar", big)
show("OCI layout directory, 5 x 200 MiB layers gzip", "oci", big)
small = int(runs or 11)
one = show("dpkg status of 1 MiB of blank lines", "dpkg-1mib.tar", small)
four = show("dpkg status of 4 MiB of blank lines", "dpkg-4mib.tar", small)
for name in one:
    print(f"  {name}: cpu for 4 MiB / cpu for 1 MiB = {four[name][1] / one[name][1]:.2f} (4 = linear)")
show("ten 1 MiB node_modules package.json of blank lines", "npm-10x1mib.tar", small)
PY
fi
[ "$PART" = images ] && exit 0

SHARED="${SHARED:-$(cd .. && pwd)/shared/data/pypa-advisory-database}"
CACHE=.build/bench-packages
VENV=.build/guarddog-venv
PACKAGES=(requests==2.31.0 requests==2.19.0 urllib3==2.2.1 numpy==1.26.4 django==4.2.11 flask==3.0.2
          cryptography==42.0.5 idna==3.6 certifi==2024.2.2 charset-normalizer==3.3.2 six==1.16.0
          python-dateutil==2.9.0 pyyaml==6.0.1 jinja2==3.1.3 markupsafe==2.1.5 click==8.1.7
          itsdangerous==2.1.2 werkzeug==3.0.1 packaging==24.0 attrs==23.2.0 setuptools==69.2.0 toml==0.10.2)

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
trap 'rm -rf "$STATE" "${IMAGES:-}"' EXIT
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
