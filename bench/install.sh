#!/usr/bin/env bash
# The install gate (issue 20), one run, cold: `cordon install` of a real set from PyPI against
# `pip install --target` and `uv pip install --target` of the same set, each with no cache
# (pip --no-cache-dir, uv --no-cache, cordon a fresh store), rounds interleaved. cordon resolves
# in its sandbox (with uv, --uv; and with pip, --uv none), fetches, copies, hashes, checks
# (identity, RECORD, advisories, heuristics) and unpacks every file in sandboxes; pip and uv
# verify hashes only when asked and scan nothing. Prints each one's median and the ratios (issue
# 20's target: cordon at most 0.5x pip's time and 3x uv's).
#
# Usage: bench/install.sh [ROUNDS] [REQUIREMENT...]   (root; 3, requests rich flask)
# CORDON_BIN_DIR=DIR uses the binaries in DIR instead of building this tree. uv is the pinned
# one of tools/pydeps/uv.lock (.build/pydeps/uv).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
shift || true
REQS=("$@")
[ ${#REQS[@]} -gt 0 ] || REQS=(requests rich flask)
[ "$(id -u)" = 0 ] || { echo "bench/install.sh: needs root (cordon install makes sandboxes)" >&2; exit 1; }
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || { echo "bench/install.sh: pip for /usr/bin/python3 is missing (apt-get install python3-pip)" >&2; exit 1; }
if [ -n "${CORDON_BIN_DIR:-}" ]; then
  BIN="$CORDON_BIN_DIR"
else
  make -s release >/dev/null
  BIN="$PWD/.build/release"
fi
tools/pydeps.sh uv >/dev/null
UV="$PWD/.build/pydeps/uv/bin/uv"
SCRATCH="$(mktemp -d /tmp/cordon-bench.XXXXXX)"
chmod 755 "$SCRATCH"
trap 'rm -rf "$SCRATCH"' EXIT
mkdir -p "$SCRATCH/run" "$SCRATCH/db"
# The advisories, imported once: a database is the gate's input, not a cache of the install.
"$BIN/cordon-scan" db import --state-dir "$SCRATCH/db" ../shared/data/pypa-advisory-database >/dev/null
echo "$("$BIN/cordon" --version), pip $(/usr/bin/python3 -m pip --version | cut -d' ' -f2), $("$UV" --version), $(nproc) cores; set: ${REQS[*]}"

now() { date +%s.%N; }
declare -A TIMES
files=0
for round in $(seq "$ROUNDS"); do
  for tool in cordon cordon-pip pip uv; do
    out="$SCRATCH/$tool-$round"
    rm -rf "$out"
    case $tool in
      cordon|cordon-pip)
        mkdir -p "$out" && cp "$SCRATCH/db/vulndb.sqlite" "$out/"
        if [ $tool = cordon ]; then resolver="$UV"; else resolver=none; fi
        t0=$(now)
        "$BIN/cordon" install --state-dir "$out" --runtime-dir "$SCRATCH/run" --uv "$resolver" --json "${REQS[@]}" > "$out.json" 2> "$out.err" \
          || { echo "cordon install failed:"; cat "$out.err"; exit 1; }
        t1=$(now)
        files=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["files"]))' "$out.json") ;;
      pip)
        t0=$(now)
        /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-cache-dir --isolated --target "$out" "${REQS[@]}" > "$out.log" 2>&1 \
          || { echo "pip failed:"; cat "$out.log"; exit 1; }
        t1=$(now) ;;
      uv)
        t0=$(now)
        "$UV" pip install --quiet --no-cache --no-config --python /usr/bin/python3 --target "$out" "${REQS[@]}" > "$out.log" 2>&1 \
          || { echo "uv failed:"; cat "$out.log"; exit 1; }
        t1=$(now) ;;
    esac
    TIMES[$tool]+="$(python3 -c "print($t1 - $t0)") "
    rm -rf "$out"
  done
done
python3 - "${TIMES[cordon]}" "${TIMES[cordon-pip]}" "${TIMES[pip]}" "${TIMES[uv]}" "$files" <<'PY'
import statistics, sys
names = ("cordon", "cordon-pip", "pip", "uv")
runs = {k: [float(x) for x in s.split()] for k, s in zip(names, sys.argv[1:5])}
m = {k: statistics.median(v) for k, v in runs.items()}
print(f"files installed by cordon: {sys.argv[5]}")
for k in names:
    label = {"cordon": "cordon (uv resolving)", "cordon-pip": "cordon (pip resolving)"}.get(k, k)
    print(f"{label:24s} median {m[k]:6.2f} s   runs {' '.join(f'{x:.2f}' for x in runs[k])}")
print(f"cordon / pip = {m['cordon'] / m['pip']:.2f}x (target <= 0.5x)   cordon / uv = {m['cordon'] / m['uv']:.2f}x (target <= 3x)")
print(f"cordon resolving with pip: / pip = {m['cordon-pip'] / m['pip']:.2f}x, / uv = {m['cordon-pip'] / m['uv']:.2f}x")
PY
# Where cordon's time went, from the last round's records.
for tool in cordon cordon-pip; do
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], "steps (s):", ", ".join(f"{k} {v:.2f}" for k, v in r["timings"].items()))' "$SCRATCH/$tool-$ROUNDS.json" "$tool"
done
