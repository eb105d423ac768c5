#!/usr/bin/env bash
# The model gateway against LiteLLM's proxy, from one run (bench/models.py says what each row is):
# (a) overhead of a chat completion (p50/p95, calls/s) direct to a stand-in, through LiteLLM,
# through Cordon's OpenAI-compatible endpoint (Unix socket, and TCP with a bearer token);
# (b) total reward and regret on a scripted non-stationary workload of three stand-ins, Cordon's
# selector with feedback against LiteLLM's simple-shuffle, latency-based-routing and
# least-busy, each run for real; (c) a local llama.cpp server through Cordon against the same
# server run directly: cold start to ready, warm time to first token, crash to answering again.
#
# Usage: bench/models.sh [CALLS] [PHASE_CALLS] [SEEDS]   (defaults 1000, 300, 1)
#        bench/models.sh cordon-config                   the models.toml of the bench's cordond
#        bench/models.sh script                          part (b)'s phases and expected rewards
#
# Needs root (a network namespace; cordond). Builds the release (`make release`) unless BIN names
# a directory holding cordond and cordon-model-worker, and installs the opt-in pydeps groups
# `models` (LiteLLM's proxy and the openai client; PyPI the first time) and, for (c), `llama`
# (llama.cpp's server, built from source the first time: about 12 minutes).
#
# Everything runs inside one network namespace of its own whose only interface is its loopback:
# the stand-ins, LiteLLM, cordond (and the sandboxes of its workers, whose egress proxy reaches
# the stand-ins on 127.0.0.1) and the client, all on 127.0.0.1. models.py runs under
# `nsenter --net` (not `ip netns exec`, which remounts /sys and would hide the cgroup hierarchy
# cordond needs), so every process it starts inherits the namespace. Nothing in it can reach
# beyond it, and LiteLLM is started with LITELLM_LOCAL_MODEL_COST_MAP=True so it does not try to.
#
# Sizes: MODELS_CALLS, MODELS_ROUNDS (3), MODELS_SECONDS (10 s of 8 concurrent clients per
# path), MODELS_PHASE_CALLS, MODELS_SEEDS, MODELS_LITELLM_RETRIES (0), MODELS_PARTS (abc; add p
# for where Cordon's added time goes: CPU and thread switches per call), MODELS_LOCAL_ROUNDS (5),
# MODELS_LOCAL_CALLS (200).
set -euo pipefail
cd "$(dirname "$0")/.."
case ${1:-} in
  cordon-config) exec python3 bench/models.py cordon-config ;;
  script) MODELS_PHASE_CALLS=${MODELS_PHASE_CALLS:-${2:-300}} exec python3 bench/models.py script ;;
esac
[ "$(id -u)" = 0 ] || { echo "bench/models.sh: needs root (a network namespace; cordond)" >&2; exit 1; }
for tool in ip nsenter; do
  command -v "$tool" >/dev/null || { echo "bench/models.sh: needs $tool (apt-get install iproute2 util-linux)" >&2; exit 1; }
done
if [ -z "${BIN:-}" ]; then
  make -s release >/dev/null
  BIN="$PWD/.build/release"
fi
for exe in cordond cordon-model-worker; do
  [ -x "$BIN/$exe" ] || { echo "bench/models.sh: no $BIN/$exe (make release, or BIN=DIR)" >&2; exit 1; }
done
tools/pydeps.sh models >/dev/null
case ${MODELS_PARTS:-abc} in *c*) tools/pydeps.sh llama >/dev/null ;; esac
VENV="$PWD/.build/pydeps/models"
NS=cordon-models-bench
if ip netns list | grep -qw "$NS"; then
  echo "bench/models.sh: network namespace $NS exists: another run, or a stale one (ip netns pids $NS; ip netns del $NS)" >&2
  exit 1
fi
RUN=
# Whether any of the given pids is still alive.
alive() { local pid; for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }
# models.py first (SIGTERM: it stops what it started, up to 20 s), then whatever still runs in
# the namespace, all of it started by this run (SIGTERM, up to 5 s, then SIGKILL), by pid; then
# the namespace.
cleanup() {
  local pid
  if [ -n "$RUN" ]; then
    kill "$RUN" 2>/dev/null || true
    for _ in $(seq 200); do alive "$RUN" || break; sleep 0.1; done
  fi
  for pid in $(ip netns pids "$NS" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do alive $RUN $(ip netns pids "$NS" 2>/dev/null) || break; sleep 0.1; done
  for pid in $RUN $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$NS"
ip -n "$NS" link set lo up
echo "bench/models.sh: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); everything in netns $NS (loopback only), cordond from $BIN"
BIN=$BIN MODELS_PYTHON="$VENV/bin/python3" MODELS_LLAMA="$PWD/.build/pydeps/llama" \
  MODELS_CALLS=${MODELS_CALLS:-${1:-1000}} MODELS_PHASE_CALLS=${MODELS_PHASE_CALLS:-${2:-300}} MODELS_SEEDS=${MODELS_SEEDS:-${3:-1}} \
  nsenter --net="/run/netns/$NS" -- "$VENV/bin/python3" bench/models.py run &
RUN=$!
wait "$RUN"
