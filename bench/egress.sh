#!/usr/bin/env bash
# Egress through the allowlist versus a direct connection, in one run: the same Python client
# fetches a two-byte reply over N fresh connections (connect, request, whole reply: the setup
# cost a short API call pays) and then one bulk download, once directly from the host and once
# from a sandbox whose policy allows only the server's name (DNS, sk_lookup steering, SNI/Host check and
# the splice relay on the way). Prints p50/p95 setup time, the added p50, and throughput with
# the allowlist's share of direct.
#
# With haproxy installed (apt-get install haproxy), the host client also goes through an HAProxy
# TCP relay on 127.0.0.1 (one thread, splice forced both ways, 1 MiB pipes) in each round: the
# peer for what a TCP-terminating splice relay costs on this machine, without the allowlist's
# decisions, namespace or sk_lookup steering on its path.
#
# Two network namespaces made for the run and joined by a veth pair stand in for the host and
# the network: the server listens on 198.51.100.7 (TEST-NET-2) in the "network" one; the direct
# client, the HAProxy relay and cordon run in the "host" one, whose default route leads there
# (cordon joins it with nsenter --net, as `ip netns exec` would also remount /sys and hide the
# cgroups it needs). Every path crosses the same veth hop; nothing is added to the real host's
# interfaces, whose addresses the egress engine refuses behind a name by design.
#
# Usage: bench/egress.sh [CONNECTIONS] [BULK_MIB] [ROUNDS]   (root; defaults 300, 1024, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS="${1:-300}"
BULK_MIB="${2:-1024}"
ROUNDS="${3:-3}"
ADDR=198.51.100.7
[ "$(id -u)" = 0 ] || { echo "bench/egress.sh: needs root (cordon run, and network namespaces)" >&2; exit 1; }

make -s release >/dev/null
CORDON="$PWD/.build/release/cordon"
SCRATCH="$(mktemp -d /tmp/cordon-bench.XXXXXX)"
chmod 755 "$SCRATCH"
HOST_NS="cordon-bench-host-$$"
NET_NS="cordon-bench-net-$$"
SERVER=""
HAPROXY=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
  [ -n "$HAPROXY" ] && kill "$HAPROXY" 2>/dev/null || true
  for ns in "$HOST_NS" "$NET_NS"; do [ -e "/run/netns/$ns" ] && ip netns del "$ns" || true; done
  rm -rf "$SCRATCH"
}
trap cleanup EXIT
in_host() { ip netns exec "$HOST_NS" "$@"; }

ip netns add "$HOST_NS"
ip netns add "$NET_NS"
ip -n "$HOST_NS" link add veth0 type veth peer name veth0 netns "$NET_NS"
ip -n "$HOST_NS" addr add 203.0.113.1/24 dev veth0
ip -n "$NET_NS" addr add 203.0.113.2/24 dev veth0
ip -n "$NET_NS" addr add "$ADDR/32" dev lo
for ns in "$HOST_NS" "$NET_NS"; do ip -n "$ns" link set lo up; ip -n "$ns" link set veth0 up; done
ip -n "$HOST_NS" route add default via 203.0.113.2

head -c "$((BULK_MIB << 20))" /dev/zero > "$SCRATCH/bulk"
cp bench/egress.py "$SCRATCH/egress.py"
# `ip netns exec` execs the command: $! is the server's pid.
ip netns exec "$NET_NS" python3 bench/egress.py serve "$ADDR" "$SCRATCH/bulk" > "$SCRATCH/port" &
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

PEER_PORT=""
if command -v haproxy >/dev/null; then
  PEER_PORT="$(in_host python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  cat > "$SCRATCH/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4096
    maxpipes 64
    tune.pipesize 1048576
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option splice-request
    option splice-response
listen relay
    bind 127.0.0.1:$PEER_PORT
    server bench $ADDR:$PORT
CFG
  ip netns exec "$HOST_NS" haproxy -f "$SCRATCH/haproxy.cfg" -db -q &  # execs haproxy: $! is its pid
  HAPROXY=$!
  for _ in $(seq 50); do in_host python3 -c "import socket; socket.create_connection(('127.0.0.1', $PEER_PORT)).close()" 2>/dev/null && break; sleep 0.1; done
fi

for round in $(seq "$ROUNDS"); do
  in_host python3 bench/egress.py client "$ADDR" "$PORT" api.bench.test "$CONNECTIONS" > "$SCRATCH/direct.$round"
  [ -z "$PEER_PORT" ] || in_host python3 bench/egress.py client 127.0.0.1 "$PEER_PORT" api.bench.test "$CONNECTIONS" > "$SCRATCH/haproxy.$round"
  nsenter --net="/run/netns/$HOST_NS" -- "$CORDON" run --policy "$SCRATCH/policy.toml" --dns-hosts "$SCRATCH/hosts" --state-dir "$SCRATCH/state" --runtime-dir "$SCRATCH/run" \
    -- python3 /bench/egress.py client api.bench.test "$PORT" api.bench.test "$CONNECTIONS" > "$SCRATCH/cordon.$round"
done

CC="$(in_host cat /proc/sys/net/ipv4/tcp_congestion_control)"
python3 - "$SCRATCH" "$ROUNDS" "$CONNECTIONS" "$BULK_MIB" "$CC" <<'PY'
import json, statistics, sys
scratch, rounds, connections, mib, cc = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def load(kind):
    runs = [json.load(open(f"{scratch}/{kind}.{r}")) for r in range(1, rounds + 1)]
    setups = sorted(t for run in runs for t in run["setup_ms"])
    return {"p50": statistics.median(setups), "p95": setups[int(0.95 * (len(setups) - 1))],
            "MBps": statistics.median(run["bulk_MBps"] for run in runs), "lookup": statistics.median(run["lookup_ms"] for run in runs)}
import os
d, c = load("direct"), load("cordon")
rows = [("direct (host)", d), ("cordon allowlist", c)]
if os.path.exists(f"{scratch}/haproxy.1"):
    rows.append(("haproxy relay (peer)", load("haproxy")))
print(f"egress: {connections} connections x {rounds} rounds, {mib} MiB bulk x {rounds}, over a veth pair between two namespaces; host congestion control {cc} (direct, haproxy and the upstream hop; the sandbox's loopback hop runs cubic)")
print(f"{'':24} {'setup p50':>10} {'setup p95':>10} {'bulk':>12} {'of direct':>10} {'lookup':>9}")
for name, r in rows:
    print(f"{name:24} {r['p50']:8.3f}ms {r['p95']:8.3f}ms {r['MBps']:8.0f}MB/s {100 * r['MBps'] / d['MBps']:9.0f}% {r['lookup']:7.3f}ms")
print(f"added setup p50: {c['p50'] - d['p50']:.3f} ms (target <= 1 ms); throughput: {100 * c['MBps'] / d['MBps']:.0f}% of direct (target >= 80%)")
if len(rows) > 2:
    h = rows[2][1]
    print(f"haproxy peer: added setup p50 {h['p50'] - d['p50']:.3f} ms, {100 * h['MBps'] / d['MBps']:.0f}% of direct; cordon/haproxy bulk {c['MBps'] / h['MBps']:.2f}")
else:
    print("haproxy peer: not installed (apt-get install haproxy)")
PY
