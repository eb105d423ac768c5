#!/usr/bin/env bash
# Egress through the allowlist versus a direct connection, in one run: the same Python client
# fetches a two-byte reply over N fresh connections (connect, request, whole reply: the setup
# cost a short API call pays) and then one bulk download, once directly from the host and once
# from a sandbox whose policy allows only the server's name (DNS, redirect, SNI/Host check and
# the splice relay on the way). Prints p50/p95 setup time, the added p50, and throughput with
# the allowlist's share of direct.
#
# The server listens on 198.51.100.7 (TEST-NET-2), added to the host's loopback for the run.
#
# Usage: bench/egress.sh [CONNECTIONS] [BULK_MIB] [ROUNDS]   (root; defaults 300, 1024, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS="${1:-300}"
BULK_MIB="${2:-1024}"
ROUNDS="${3:-3}"
ADDR=198.51.100.7
[ "$(id -u)" = 0 ] || { echo "bench/egress.sh: needs root (cordon run, and an address on lo)" >&2; exit 1; }
command -v nft >/dev/null || { echo "bench/egress.sh: nftables is not installed (apt-get install nftables)" >&2; exit 1; }

make -s release >/dev/null
CORDON="$PWD/.build/release/cordon"
SCRATCH="$(mktemp -d /tmp/cordon-bench.XXXXXX)"
chmod 755 "$SCRATCH"
ADDED=0
case "$(ip -4 addr show dev lo)" in *" $ADDR/32 "*) ;; *) ip addr add "$ADDR/32" dev lo; ADDED=1 ;; esac
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
  [ "$ADDED" = 1 ] && ip addr del "$ADDR/32" dev lo || true
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

head -c "$((BULK_MIB << 20))" /dev/zero > "$SCRATCH/bulk"
cp bench/egress.py "$SCRATCH/egress.py"
python3 bench/egress.py serve "$ADDR" "$SCRATCH/bulk" > "$SCRATCH/port" &
SERVER=$!
for _ in $(seq 50); do [ -s "$SCRATCH/port" ] && break; sleep 0.1; done
PORT="$(cat "$SCRATCH/port")"
echo "$ADDR api.bench.test" > "$SCRATCH/hosts"
cat > "$SCRATCH/policy.toml" <<TOML
[policy]
extends = ["default"]
[filesystem]
read_only = [{ path = "/bench/egress.py", source = "$SCRATCH/egress.py" }]
[limits]
wall_time = "10m"
# Two cores, as the direct client may use: this measures the egress path, not the cpu limit.
cpu = 2.0
[network]
mode = "allowlist"
allow = ["api.bench.test:$PORT"]
TOML

for round in $(seq "$ROUNDS"); do
  python3 bench/egress.py client "$ADDR" "$PORT" api.bench.test "$CONNECTIONS" > "$SCRATCH/direct.$round"
  "$CORDON" run --policy "$SCRATCH/policy.toml" --dns-hosts "$SCRATCH/hosts" --state-dir "$SCRATCH/state" --runtime-dir "$SCRATCH/run" \
    -- python3 /bench/egress.py client api.bench.test "$PORT" api.bench.test "$CONNECTIONS" > "$SCRATCH/cordon.$round"
done

python3 - "$SCRATCH" "$ROUNDS" "$CONNECTIONS" "$BULK_MIB" <<'PY'
import json, statistics, sys
scratch, rounds, connections, mib = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def load(kind):
    runs = [json.load(open(f"{scratch}/{kind}.{r}")) for r in range(1, rounds + 1)]
    setups = sorted(t for run in runs for t in run["setup_ms"])
    return {"p50": statistics.median(setups), "p95": setups[int(0.95 * (len(setups) - 1))],
            "MBps": statistics.median(run["bulk_MBps"] for run in runs), "lookup": statistics.median(run["lookup_ms"] for run in runs)}
d, c = load("direct"), load("cordon")
print(f"egress: {connections} connections x {rounds} rounds, {mib} MiB bulk x {rounds}")
print(f"{'':24} {'setup p50':>10} {'setup p95':>10} {'bulk':>12} {'lookup':>9}")
for name, r in [("direct (host)", d), ("cordon allowlist", c)]:
    print(f"{name:24} {r['p50']:8.3f}ms {r['p95']:8.3f}ms {r['MBps']:8.0f}MB/s {r['lookup']:7.3f}ms")
print(f"added setup p50: {c['p50'] - d['p50']:.3f} ms (target <= 1 ms); throughput: {100 * c['MBps'] / d['MBps']:.0f}% of direct (target >= 80%)")
PY
