#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of Fuzz/Package.swift (docs/fuzzing.md).
#
#   fuzz.sh run SECONDS [TARGET...]  each target in turn for SECONDS (`make fuzz`); a crash is
#                                    kept and fuzzing goes on (-fork=1 -ignore_crashes=1), so
#                                    every target gets its whole time; exits 1 if any crashed
#   fuzz.sh smoke SECONDS            each target briefly, stopping at the first crash, then the
#                                    inputs in Fuzz/regressions/<target>/ (`make fuzz-smoke`, CI)
#
# One fuzzer process at a time. Everything generated (build, seeds, the corpus each run grows,
# crashes, logs) lives in .build-fuzz/, so a later run continues from the corpus of the last.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$root/.build-fuzz
work=$scratch/work
SWIFT=${SWIFT:-swift}
# Allocation stacks are not recorded: Swift allocates on every string and array, and recording
# them took half the time. Rerun a crash with ASAN_OPTIONS= unset for the allocation stack.
export ASAN_OPTIONS=${ASAN_OPTIONS:-malloc_context_size=0}
# Swift's own crash backtracer reads memory ASan calls wild and reports that instead of the
# failed check: libFuzzer prints the stack.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}
OSV_DATA=${OSV_DATA:-$root/../shared/data/pypa-advisory-database/vulns}
[ -d "$OSV_DATA" ] || OSV_DATA=/work/shared/data/pypa-advisory-database/vulns

# target, product, -max_len (past each parser's own limit where it has one), dictionary.
targets="policy json schema rpc archive osv dns clienthello http httprequest models packaging"
product() { case $1 in policy) echo FuzzPolicy;; json) echo FuzzJSON;; schema) echo FuzzSchema;; rpc) echo FuzzRPC;; archive) echo FuzzArchive;; osv) echo FuzzOSV;;
                       dns) echo FuzzDNS;; clienthello) echo FuzzClientHello;; http) echo FuzzHTTP;; httprequest) echo FuzzHTTPRequest;; models) echo FuzzModels;; packaging) echo FuzzPackaging;;
                       *) echo "unknown target $1 (one of: $targets)" >&2; exit 2;; esac; }
maxlen() { case $1 in policy|osv|json|schema) echo 8192;; rpc) echo 4096;; archive) echo 32768;; dns) echo 600;; *) echo 17408;; esac; }
dict() { [ -f "$root/Fuzz/dicts/$1.dict" ] && echo "-dict=$root/Fuzz/dicts/$1.dict" || true; }

build() {
    # -enable-testing: FuzzOSV reaches the internal OSVDecoder. lld: gold fails to link ASan
    # binaries here (an internal error in format_file_lineno).
    mkdir -p "$work/logs"
    echo "building the fuzz targets in $scratch (log: $work/logs/build.log)"
    "$SWIFT" build -c release --package-path "$root/Fuzz" --scratch-path "$scratch" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -use-ld=lld >"$work/logs/build.log" 2>&1 \
        || { grep -v "Cannot export local symbol" "$work/logs/build.log" | tail -30 >&2; exit 1; }
    rm -rf "$work/seeds"
    python3 "$root/Fuzz/seeds.py" "$work/seeds" "$root" "$OSV_DATA"
}

# One target: fuzz.sh-style summary line "target seconds execs exec/s corpus crashes".
fuzz_one() {
    local t=$1 secs=$2 mode=$3 bin corpus crashes log before start status=0
    bin=$scratch/release/$(product "$t")
    corpus=$work/corpus/$t crashes=$work/crashes/$t log=$work/logs/$t.log
    mkdir -p "$corpus" "$crashes" "$work/logs"
    before=$(ls "$crashes" | wc -l)
    local flags=(-max_total_time="$secs" -print_final_stats=1 -max_len="$(maxlen "$t")" -timeout=10 -rss_limit_mb=4096
                 -artifact_prefix="$crashes/" $(dict "$t"))
    [ "$mode" = run ] && flags+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    start=$(date +%s)
    "$bin" "${flags[@]}" "$corpus" "$work/seeds/$t" >"$log" 2>&1 || status=$?
    local elapsed=$(( $(date +%s) - start )) execs rate
    if [ "$mode" = run ]; then
        # Fork mode: the parent's last "#RUNS: cov: … exec/s: N … time: Ts" line counts every
        # job's runs; its exec/s is not the run's average (a job's), so the rate is RUNS / T.
        local last secs_run; last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1)
        execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last"); secs_run=$(sed -E 's/.* time: ([0-9]+)s.*/\1/' <<<"$last")
        rate=$(( execs / (secs_run > 0 ? secs_run : 1) ))
    else
        execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log"); rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log")
    fi
    local found=$(( $(ls "$crashes" | wc -l) - before ))
    printf '%-12s %7s %12s %8s %7s %7s\n' "$t" "$elapsed" "${execs:-?}" "${rate:-?}" "$(ls "$corpus" | wc -l)" "$found"
    if [ "$found" -gt 0 ] || [ "$status" -ne 0 ]; then
        echo "  $t: exit $status, $found new input(s) in $crashes; log $log" >&2
        grep -E 'ERROR: |Fatal error|SUMMARY' "$log" | head -5 | sed 's/^/  /' >&2
        return 1
    fi
}

header() { printf '%-12s %7s %12s %8s %7s %7s\n' target seconds execs exec/s corpus crashes; }

cmd=${1:-}; shift || true
case $cmd in
run)
    secs=${1:?seconds}; shift
    build
    failed=0
    header | tee "$work/results.txt"
    for t in ${*:-$targets}; do fuzz_one "$t" "$secs" run | tee -a "$work/results.txt" || failed=1; done
    exit $failed
    ;;
smoke)
    secs=${1:?seconds}
    start=$(date +%s)
    build
    failed=0
    header
    for t in $targets; do
        fuzz_one "$t" "$secs" smoke || failed=1
        # Every input that once crashed, replayed: libFuzzer runs the files it is given once each.
        dir=$root/Fuzz/regressions/$t
        if [ -d "$dir" ] && [ -n "$(ls "$dir")" ]; then
            "$scratch/release/$(product "$t")" "$dir"/* >"$work/logs/$t-regressions.log" 2>&1 \
                || { echo "  $t: a regression input crashes again (log $work/logs/$t-regressions.log)" >&2; failed=1; }
        fi
    done
    echo "fuzz smoke: $(( $(date +%s) - start )) s in all, $([ $failed = 0 ] && echo no crash || echo CRASHED)"
    exit $failed
    ;;
*)
    sed -n '2,11p' "$0" >&2; exit 2 ;;
esac
