#!/usr/bin/env bash
# The model gateway against LiteLLM's proxy, from one run (bench/models.py says what each row is):
# (a) overhead of a chat completion (p50/p95, calls/s) direct to a stand-in, through LiteLLM,
# through Cordon; (b) total reward and regret on a scripted non-stationary workload of three
# stand-ins, Cordon's selector with feedback against LiteLLM's simple-shuffle,
# latency-based-routing and least-busy, each run for real. (c), local model servers, is not
# here yet.
#
# Usage: bench/models.sh [CALLS] [PHASE_CALLS] [SEEDS]   (defaults 1000, 300, 1)
#        bench/models.sh cordon-config                   the models.toml cordond needs for the Cordon rows
#        bench/models.sh script                          part (b)'s phases and expected rewards
#
# Needs root (a network namespace) and `tools/pydeps.sh models` (run here; PyPI the first time).
# The stand-ins and LiteLLM run inside a network namespace of their own whose only links are
# loopback and a veth pair to this host (MODELS_SUBNET, default 10.231.0: host .1, namespace .2):
# nothing in it can reach beyond this machine, and LiteLLM is started with
# LITELLM_LOCAL_MODEL_COST_MAP=True so it does not try to. The client runs on the host.
#
# The Cordon rows run when cordond's OpenAI-compatible endpoint is given: CORDON_URL (a base URL
# such as http://127.0.0.1:8089/v1) with CORDON_TOKEN, or CORDON_SOCKET (cordond's Unix socket).
# That cordond must be configured with `bench/models.sh cordon-config` (it names the stand-ins'
# fixed addresses) and start from an empty state directory. Without one they print "not run:
# no endpoint".
#
# Sizes: MODELS_CALLS, MODELS_ROUNDS (3), MODELS_SECONDS (10 s of 8 concurrent clients per
# path), MODELS_PHASE_CALLS, MODELS_SEEDS, MODELS_LITELLM_RETRIES (0), MODELS_PARTS (ab).
set -euo pipefail
cd "$(dirname "$0")/.."
subnet=${MODELS_SUBNET:-10.231.0}
case ${1:-} in
  cordon-config) MODELS_ADDR=$subnet.2 exec python3 bench/models.py cordon-config ;;
  script) MODELS_PHASE_CALLS=${MODELS_PHASE_CALLS:-${2:-300}} exec python3 bench/models.py script ;;
esac
[ "$(id -u)" = 0 ] || { echo "bench/models.sh: needs root (a network namespace for the stand-ins and LiteLLM)" >&2; exit 1; }
command -v ip >/dev/null || { echo "bench/models.sh: needs ip (apt-get install iproute2)" >&2; exit 1; }
tools/pydeps.sh models >/dev/null
VENV="$PWD/.build/pydeps/models"
NS=cordon-models-bench
if ip netns list | grep -qw "$NS"; then
  echo "bench/models.sh: network namespace $NS exists: another run, or a stale one (ip netns pids $NS; ip netns del $NS)" >&2
  exit 1
fi
cleanup() {
  # Whatever is still running in the namespace was started by this run.
  for pid in $(ip netns pids "$NS" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  sleep 0.2
  for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip link del cmb-host 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip link add cmb-host type veth peer name cmb-ns
ip link set cmb-ns netns "$NS"
ip addr add "$subnet.1/24" dev cmb-host
ip link set cmb-host up
ip netns exec "$NS" ip addr add "$subnet.2/24" dev cmb-ns
ip netns exec "$NS" ip link set cmb-ns up
for _ in $(seq 50); do ping -c1 -W1 "$subnet.2" >/dev/null 2>&1 && break; sleep 0.1; done
echo "bench/models.sh: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); stand-ins and LiteLLM in netns $NS at $subnet.2"
MODELS_NETNS=$NS MODELS_ADDR=$subnet.2 MODELS_PYTHON="$VENV/bin/python3" \
  MODELS_CALLS=${MODELS_CALLS:-${1:-1000}} MODELS_PHASE_CALLS=${MODELS_PHASE_CALLS:-${2:-300}} MODELS_SEEDS=${MODELS_SEEDS:-${3:-1}} \
  "$VENV/bin/python3" bench/models.py run
