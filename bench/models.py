"""bench/models.sh's measurements, with the official `openai` client (2.x, tools/pydeps/models.in).

Usage: models.py run           (bench/models.sh runs it inside a network namespace of its own)
       models.py cordon-config (prints the models.toml the bench's cordond starts with; part (a)'s
                               adds an [endpoint] with a generated tokens file)
       models.py script        (prints part (b)'s phases and the expected reward of every arm)

Everything listens on 127.0.0.1 at fixed ports (the stand-ins 9100-9103, LiteLLM 4000, Cordon's
TCP endpoint 8089), so `run` belongs in a network namespace whose only link is its loopback:
bench/models.sh makes one and runs this script in it with nsenter, and every process it starts
inherits the namespace.

Environment: BIN (the directory of cordond and cordon-model-worker, .build/release),
MODELS_PYTHON (the venv's python3), MODELS_CALLS, MODELS_ROUNDS, MODELS_SECONDS,
MODELS_PHASE_CALLS, MODELS_SEEDS, MODELS_LITELLM_RETRIES, MODELS_PARTS (any of a, b, c, p; abc),
MODELS_LLAMA (the llama venv), MODELS_LOCAL_ROUNDS, MODELS_LOCAL_CALLS,
MODELS_CORDON_MODEL (auto:chat).

Cordon: a cordond of this run (BIN/cordond) with fresh config, state and runtime directories
under the run's scratch directory, models.toml from `cordon-config`; the client reaches its
OpenAI-compatible endpoint on the Unix socket RUNTIME/openai.sock (the caller is root, as
SO_PEERCRED says) and, in part (a), on loopback TCP with a bearer token too. Part (a) and every
seed of part (b) each get a cordond of their own, so the selector starts from nothing.

(a) Gateway overhead. One stand-in that answers at once (127.0.0.1:9100). The client calls it
    directly, through LiteLLM's proxy (one deployment) and through Cordon (model
    "bench-overhead", on the Unix socket and on TCP), MODELS_CALLS sequential non-streaming
    calls per path in each of MODELS_ROUNDS rounds that
    alternate the paths (a change in the machine's load falls on all), after 50 warm-up calls;
    p50/p95 and the latency each gateway adds at p50 over direct. Then calls per second from 8
    concurrent clients (AsyncOpenAI, one process) for MODELS_SECONDS per path.

(p) Where Cordon's added time goes (only with MODELS_PARTS containing p): MODELS_CALLS
    sequential calls through Cordon's Unix socket after 100 warm-up calls, and, per call, the
    CPU time of cordond and everything under it (the worker, the egress relay: /proc/PID/stat)
    and each of their threads' voluntary and involuntary context switches (by thread name,
    /proc/PID/task/TID/status), beside the p50 of the same number of direct calls.

(b) Selection on a non-stationary workload. Three stand-ins (fast 127.0.0.1:9101, steady :9102,
    large :9103), behaviour changed by phase through their /control endpoint (`models.py script`
    prints the phases). Every call asks "what is A+B?"; the client judges the answer itself,
    and tells Cordon (POST /v1/feedback {"id", "success", "score"}); LiteLLM has no such input.
    Reward of a call, the objective of Cordon's [selector] (docs/models.md):
      0.6·success + 0.3·(1 − min(1, latency/L_ref)) + 0.1·(1 − min(1, cost/C_ref)),
    success = answered and right, L_ref = 100 ms (the scripted latencies are 10–90 ms; Cordon's
    default 10 s would make latency count for nothing here), C_ref = 0.01 (about the dearest
    scripted call). Prices per 1k tokens are fixed per stand-in (configuration, as a real
    price list is); the cost of a call changes by phase through the tokens a stand-in reports.
    Oracle per phase = the arm of highest expected reward, computed from the script (success
    and cost exactly, the latency term by Monte Carlo from the scripted log-normal latency).
    Regret = Σ over calls of (oracle's expected reward − the expected reward of the arm that
    served the call): the chosen arm's expected reward, not the sampled one, to cut noise. The
    arm that served a call is read from the stand-ins' own logs (a tag in the prompt), so it
    does not depend on what a gateway reports; a call no stand-in saw has reward 0, and every
    upstream attempt of a retried call counts as a call of its own. The realised reward (what
    the dice gave, latency as the stand-in timed it) is shown beside it.
    Each strategy gets the same workload (questions and stand-in seeds) from a fresh start:
    LiteLLM a fresh proxy per strategy (`simple-shuffle`, `latency-based-routing`,
    `least-busy`; deployments in the order fast, steady, large; num_retries
    MODELS_LITELLM_RETRIES, 0 by default, and no client retries: this measures choices, not
    failover); Cordon asks for "auto:chat" (over the Unix socket) from a fresh cordond.
    After each phase, Cordon's row shows what `model.explain` said then (cordond's JSON-RPC
    socket): each arm's chance of being the best and its effective sample size, or why it was
    not eligible (an open breaker).

(c) Local model server. llama.cpp's server (`python3 -m llama_cpp.server` from the llama venv,
    MODELS_LLAMA) on a tiny GGUF this run writes (tools/make-tiny-gguf.py), one thread: run
    directly on 127.0.0.1:9110 (the peer) and as a `kind = "local"` provider of a cordond (in its
    model-server sandbox, reached by its worker inside that sandbox). Rows, MODELS_LOCAL_ROUNDS
    rounds each: cold start to ready (direct: from exec until GET /v1/models answers 200 and a
    one-token completion has answered, polling every 20 ms; Cordon: a call to the unloaded model
    until its answer, which includes the sandbox, the same readiness check and the call);
    warm time to first token (a streaming call, max_tokens 8, MODELS_LOCAL_CALLS sequential
    calls per path, p50/p95); crash to ready (the server's processes killed with SIGKILL, then
    calls until one answers: Cordon's pool notices the death and starts a new sandbox on the next
    call, after its backoff; the peer has no supervisor, so its row is the cold start a restart
    script would pay). Cordon's server has keep_alive 1 s, which unloads it between rounds.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STANDIN = os.path.join(ROOT, "tools", "model-standin.py")

ADDR = "127.0.0.1"
BIN = os.path.abspath(os.environ.get("BIN") or os.path.join(ROOT, ".build", "release"))
PYTHON = os.environ.get("MODELS_PYTHON", sys.executable)
CALLS = int(os.environ.get("MODELS_CALLS", "1000"))
ROUNDS = int(os.environ.get("MODELS_ROUNDS", "3"))
SECONDS = float(os.environ.get("MODELS_SECONDS", "10"))
PHASE_CALLS = int(os.environ.get("MODELS_PHASE_CALLS", "300"))
SEEDS = int(os.environ.get("MODELS_SEEDS", "1"))
RETRIES = int(os.environ.get("MODELS_LITELLM_RETRIES", "0"))
PARTS = os.environ.get("MODELS_PARTS", "abc")
LLAMA = os.environ.get("MODELS_LLAMA", os.path.join(ROOT, ".build", "pydeps", "llama"))
LOCAL_ROUNDS = int(os.environ.get("MODELS_LOCAL_ROUNDS", "5"))
LOCAL_CALLS = int(os.environ.get("MODELS_LOCAL_CALLS", "200"))
LOCAL_PORT = 9110
CORDON_MODEL = os.environ.get("MODELS_CORDON_MODEL", "auto:chat")

OVERHEAD_PORT = 9100
ARM_PORTS = [9101, 9102, 9103]
LITELLM_PORT = 4000
CORDON_PORT = 8089

# --- part (b)'s script ---------------------------------------------------------------------

WEIGHTS = (0.6, 0.3, 0.1)          # success, latency, cost: Cordon's [selector] defaults
LATENCY_REFERENCE_MS = 100.0
COST_REFERENCE = 0.01
PROMPT_TOKENS = 500
SPREAD = 0.3                       # standard deviation of ln(latency)
ARMS = ["fast", "steady", "large"]
PRICES = {"fast": (0.0005, 0.0015), "steady": (0.003, 0.006), "large": (0.004, 0.012)}  # per 1k in, out


def arm(error, wrong, latency_ms, tokens):
    return {"error_rate": error, "correctness": round(1 - wrong, 6), "latency_ms": latency_ms, "completion_tokens": tokens}


# Phase 1: steady is best; fast is quick and cheap but wrong 40 % of the time; large is slow
# and verbose. Phase 2: steady degrades (30 % errors, 87.5 ms), large gets quick and terse:
# large is best. Phase 3: fast is fixed (3 % wrong): fast is best, an arm a learner that
# forgets nothing has learnt to avoid. (DiscountedThompsonSimulationTests' workload, its
# seconds scaled to milliseconds by 1/40, price changes carried by token counts.)
PHASES = [
    {"fast": arm(0.01, 0.40, 10.0, 200), "steady": arm(0.02, 0.05, 37.5, 300), "large": arm(0.05, 0.05, 75.0, 800)},
    {"fast": arm(0.01, 0.40, 10.0, 200), "steady": arm(0.30, 0.05, 87.5, 300), "large": arm(0.03, 0.05, 25.0, 300)},
    {"fast": arm(0.01, 0.03, 15.0, 200), "steady": arm(0.30, 0.05, 87.5, 300), "large": arm(0.03, 0.05, 25.0, 300)},
]


def call_cost(name, completion_tokens):
    p_in, p_out = PRICES[name]
    return (PROMPT_TOKENS * p_in + completion_tokens * p_out) / 1000


def reward(success, latency_ms, cost):
    w_s, w_l, w_c = WEIGHTS
    return w_s * success + w_l * (1 - min(1.0, latency_ms / LATENCY_REFERENCE_MS)) + w_c * (1 - min(1.0, cost / COST_REFERENCE))


def expected_rewards():
    """μ[phase][arm] from the script; the latency term by Monte Carlo (fixed seed, 200000 draws)."""
    rng = random.Random(0xACE)
    draws = [rng.gauss(0, 1) for _ in range(200_000)]
    table = []
    for phase in PHASES:
        row = {}
        for name in ARMS:
            s = phase[name]
            success = (1 - s["error_rate"]) * s["correctness"]
            latency = sum(1 - min(1.0, s["latency_ms"] * math.exp(SPREAD * z) / LATENCY_REFERENCE_MS) for z in draws) / len(draws)
            cost = call_cost(name, s["completion_tokens"])
            row[name] = WEIGHTS[0] * success + WEIGHTS[1] * latency + WEIGHTS[2] * (1 - min(1.0, cost / COST_REFERENCE))
        table.append(row)
    return table


# --- processes -----------------------------------------------------------------------------

class Processes:
    """Everything this run starts, stopped by pid (each in its own process group) at the end."""

    def __init__(self):
        self.procs = []

    def start(self, argv, env=None, stdout=subprocess.PIPE, log=None):
        p = subprocess.Popen(argv, env=env, stdout=stdout, stderr=log or subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self, p, group=True):
        """SIGTERM, 10 s, then SIGKILL: to p's process group, or to p alone (`group` false: a
        daemon that stops its own children)."""
        kill = os.killpg if group else os.kill
        if p.poll() is None:
            try:
                kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                try:
                    kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(10)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(reversed(self.procs)):
            self.stop(p, group=getattr(p, "group_stop", True))


PROCS = Processes()


def start_standin(name, port, **behaviour):
    argv = [sys.executable, STANDIN, "--host", ADDR, "--port", str(port), "--name", name, "--models", name,
            "--prompt-tokens", str(PROMPT_TOKENS)]
    for k, v in behaviour.items():
        argv += ["--" + k.replace("_", "-"), str(v)]
    p = PROCS.start(argv)
    line = p.stdout.readline().strip()
    if not line.isdigit():
        raise RuntimeError(f"stand-in {name} did not start (is {ADDR}:{port} free?)")
    return f"http://{ADDR}:{port}"


def http_json(url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def litellm_version():
    out = subprocess.run([PYTHON, "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


class LiteLLM:
    """A fresh LiteLLM proxy (one worker) on ADDR:4000 with the given deployments and strategy."""

    def __init__(self, scratch, group, deployments, strategy="simple-shuffle"):
        self.key = "sk-" + secrets.token_hex(24)
        self.dir = tempfile.mkdtemp(prefix="litellm.", dir=scratch)
        config = os.path.join(self.dir, "config.yaml")
        lines = ["model_list:"]
        for ident, base, upstream in deployments:
            lines += [f"  - model_name: {group}",
                      f"    litellm_params: {{model: openai/{upstream}, api_base: \"{base}/v1\", api_key: dummy}}",
                      f"    model_info: {{id: {ident}}}"]
        lines += ["router_settings:", f"  routing_strategy: {strategy}", f"  num_retries: {RETRIES}",
                  "general_settings:", "  master_key: os.environ/LITELLM_MASTER_KEY",
                  ]
        with open(config, "w") as f:
            f.write("\n".join(lines) + "\n")
        env = dict(os.environ, LITELLM_MASTER_KEY=self.key, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR",
                   HOME=self.dir, NO_PROXY="*", PYTHONDONTWRITEBYTECODE="1")
        for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            env.pop(k, None)
        self.log = open(os.path.join(self.dir, "proxy.log"), "w")
        started = time.perf_counter()
        self.proc = PROCS.start([PYTHON, "-m", "litellm.proxy.proxy_cli", "--config", config, "--host", ADDR,
                                 "--port", str(LITELLM_PORT), "--num_workers", "1"], env=env,
                                stdout=self.log, log=self.log)
        self.url = f"http://{ADDR}:{LITELLM_PORT}"
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"LiteLLM exited ({self.proc.returncode}); its log: {self.log.name}")
            try:
                urllib.request.urlopen(self.url + "/health/liveliness", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"LiteLLM did not answer in 180 s; its log: {self.log.name}")
                time.sleep(0.2)
        self.startup = time.perf_counter() - started

    def stop(self):
        PROCS.stop(self.proc)
        self.log.close()


class Cordond:
    """A cordond of this run (BIN/cordond) with fresh config, state and runtime directories under
    scratch and models.toml from `cordon_config()`; with `tcp`, also its endpoint on
    127.0.0.1:CORDON_PORT with a bearer token of its own (a root-only tokens file, token -> root).
    Ready once openai.sock answers GET /v1/models."""

    def __init__(self, scratch, label, tcp=False, local=None):
        # cordond's rules: models.toml root's and not writable by others, in a directory root
        # owns that others cannot write; the runtime directory 755 inside one others may search.
        self.dir = tempfile.mkdtemp(prefix=f"cordond-{label}.", dir=scratch)
        os.chmod(self.dir, 0o755)
        config, state, run = (os.path.join(self.dir, d) for d in ("config", "state", "run"))
        for d, mode in ((config, 0o755), (state, 0o700), (run, 0o755)):
            os.mkdir(d)
            os.chmod(d, mode)
        self.token = None
        tokens = None
        if tcp:
            self.token = "cordon-bench-" + secrets.token_hex(16)
            tokens = os.path.join(self.dir, "endpoint-tokens")
            fd = os.open(tokens, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"{self.token} root\n")
        toml = os.path.join(config, "models.toml")
        with open(toml, "w") as f:
            f.write(cordon_config(tokens, local))
        os.chmod(toml, 0o644)
        if local:
            # The server's policy: model-server plus the llama venv, read-only.
            os.mkdir(os.path.join(config, "policies"))
            os.chmod(os.path.join(config, "policies"), 0o755)
            policy = os.path.join(config, "policies", "bench-llama.toml")
            with open(policy, "w") as f:
                f.write(f'[policy]\nname = "bench-llama"\nextends = ["model-server"]\n\n[filesystem]\nread_only = ["{LLAMA}"]\n')
            os.chmod(policy, 0o644)
        self.socket = os.path.join(run, "openai.sock")
        self.rpc_socket = os.path.join(run, "cordon.sock")
        self.url = f"http://{ADDR}:{CORDON_PORT}/v1" if tcp else None
        self.log = open(os.path.join(self.dir, "cordond.log"), "w")
        started = time.perf_counter()
        self.proc = PROCS.start([os.path.join(BIN, "cordond"), "--config-dir", config, "--state-dir", state,
                                 "--runtime-dir", run], stdout=self.log, log=self.log)
        self.proc.group_stop = False  # cordond stops its workers itself on SIGTERM
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cordond exited ({self.proc.returncode}): {self.tail()}")
            try:
                if uds_get(self.socket, "/v1/models")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"cordond's {self.socket} did not answer in 60 s: {self.tail()}")
            time.sleep(0.05)
        self.startup = time.perf_counter() - started

    def tail(self):
        self.log.flush()
        with open(self.log.name) as f:
            return " | ".join(f.read().strip().splitlines()[-5:])

    def rpc(self, method, params):
        """One JSON-RPC call on cordond's own socket (one line each way)."""
        import socket
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(10)
            c.connect(self.rpc_socket)
            c.sendall((json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}) + "\n").encode())
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = c.recv(65536)
                if not chunk:
                    break
                buf += chunk
        answer = json.loads(buf)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def stop(self):
        PROCS.stop(self.proc, group=False)
        self.log.close()


def uds_get(path, target):
    """(status, body) of GET target on the HTTP server at Unix socket path."""
    import http.client
    import socket

    class Connection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(path)

    c = Connection("localhost", timeout=5)
    try:
        c.request("GET", target, headers={"Authorization": "Bearer cordon"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


# --- clients -------------------------------------------------------------------------------

def make_client(base_url, key, uds=None, asynchronous=False):
    import httpx
    import openai
    kw = dict(base_url=base_url, api_key=key, max_retries=0, timeout=60)
    if asynchronous:
        transport = httpx.AsyncHTTPTransport(uds=uds) if uds else None
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        return openai.AsyncOpenAI(**kw, http_client=httpx.AsyncClient(transport=transport, limits=limits))
    transport = httpx.HTTPTransport(uds=uds) if uds else None
    return openai.OpenAI(**kw, http_client=httpx.Client(transport=transport))


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p * (len(s) - 1))))]


MESSAGES = [{"role": "user", "content": "Say ok."}]


def sequential(client, model, calls):
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        r = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=8)
        out.append((time.perf_counter() - t0) * 1000)
        if not r.choices or r.choices[0].message.content is None:
            raise RuntimeError(f"{model}: no answer")
    return out


async def throughput(client, model, clients, seconds):
    done = 0
    failed = 0

    async def one(stop):
        nonlocal done, failed
        while time.perf_counter() < stop:
            try:
                await client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=8)
                done += 1
            except Exception:
                failed += 1

    await client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=8)
    t0 = time.perf_counter()
    await asyncio.gather(*(one(t0 + seconds) for _ in range(clients)))
    rate = done / (time.perf_counter() - t0)
    await client.close()
    return rate, failed


def part_a(scratch):
    base = start_standin("overhead", OVERHEAD_PORT)
    lite = LiteLLM(scratch, "bench-overhead", [("overhead", base, "overhead")])
    cordon = Cordond(scratch, "a", tcp=True)
    paths = [("direct to the stand-in", base + "/v1", "dummy", None, "overhead"),
             (f"LiteLLM {litellm_version()} proxy", lite.url + "/v1", lite.key, None, "bench-overhead"),
             ("Cordon, Unix socket", "http://localhost/v1", "cordon", cordon.socket, "bench-overhead"),
             ("Cordon, TCP + bearer token", cordon.url, cordon.token, None, "bench-overhead")]
    clients = [make_client(url, key, uds) for _, url, key, uds, _ in paths]
    failed = {}
    for c, p in zip(clients, paths):
        try:
            sequential(c, p[4], 50)
        except Exception as e:  # a gateway under test that fails is a result, not a crash
            if not p[0].startswith("Cordon"):
                raise
            failed[p[0]] = f"{type(e).__name__}: {str(e)[:200]} (cordond's log: {cordon.tail()})"
    kept = [i for i, p in enumerate(paths) if p[0] not in failed]
    paths, clients = [paths[i] for i in kept], [clients[i] for i in kept]
    samples = [[] for _ in paths]
    for _ in range(ROUNDS):
        for i, (c, p) in enumerate(zip(clients, paths)):
            samples[i] += sequential(c, p[4], CALLS)
    rates = []
    for _, url, key, uds, model in paths:
        rates.append(asyncio.run(throughput(make_client(url, key, uds, asynchronous=True), model, 8, SECONDS)))
    lite.stop()
    cordon.stop()
    d50 = statistics.median(samples[0])
    print(f"(a) gateway overhead: openai {openai_version()} client, non-streaming chat completion, "
          f"{ROUNDS} alternating rounds of {CALLS} sequential calls; 8 concurrent clients for {SECONDS:g} s")
    print(f"{'path':34} {'p50 ms':>8} {'p95 ms':>8} {'added p50':>10} {'calls/s (8)':>12}")
    added = {}
    for i, (name, *_rest) in enumerate(paths):
        p50 = statistics.median(samples[i])
        added[name] = p50 - d50
        extra = "" if rates[i][1] == 0 else f"  ({rates[i][1]} failed)"
        print(f"{name:34} {p50:8.3f} {pct(samples[i], 0.95):8.3f} {'' if i == 0 else f'{p50 - d50:+10.3f}':>10} {rates[i][0]:12.0f}{extra}")
    for name, why in failed.items():
        print(f"{name:34} failed: {why}")
    lite_added = added[paths[1][0]]
    for name in added:
        if name.startswith("Cordon"):
            print(f"{name}: added {added[name]:.3f} ms at p50 (target <= 1 ms and below LiteLLM's {lite_added:.3f} ms): "
                  f"ratio Cordon/LiteLLM {added[name] / lite_added:.3f}")
    print(f"LiteLLM proxy start to ready: {lite.startup:.1f} s; cordond start to ready: {cordon.startup:.2f} s")


# --- part (p) ---

def cpu_seconds(pids):
    """User plus system CPU time of the processes `pids`, in seconds."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def switches(pids):
    """{thread name: [voluntary, involuntary]} context switches, summed over the threads of `pids`."""
    out = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    status = f.read()
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    name = f.read().strip()
            except OSError:
                continue
            v = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
            n = int(status.split("nonvoluntary_ctxt_switches:")[1].split()[0])
            counts = out.setdefault(name, [0, 0])
            counts[0] += v
            counts[1] += n
    return out


def part_p(scratch):
    base = start_standin("overhead", OVERHEAD_PORT)
    cordon = Cordond(scratch, "p")
    through = make_client("http://localhost/v1", "cordon", cordon.socket)
    direct = make_client(base + "/v1", "dummy", None)
    sequential(through, "bench-overhead", 100)
    sequential(direct, "overhead", 100)
    pids = [cordon.proc.pid] + descendants(cordon.proc.pid)
    before_cpu, before = cpu_seconds(pids), switches(pids)
    samples = sequential(through, "bench-overhead", CALLS)
    after_cpu, after = cpu_seconds(pids), switches(pids)
    direct_samples = sequential(direct, "overhead", CALLS)
    cordon.stop()
    print(f"(p) where Cordon's time goes: {CALLS} sequential calls on the Unix socket; cordond and its {len(pids) - 1} "
          f"processes below it (worker, sandboxes)")
    print(f"p50 {statistics.median(samples):.3f} ms, direct {statistics.median(direct_samples):.3f} ms, "
          f"added {statistics.median(samples) - statistics.median(direct_samples):+.3f} ms; "
          f"CPU {1000 * (after_cpu - before_cpu) / CALLS:.3f} ms per call")
    print(f"{'thread':18} {'voluntary':>10} {'involuntary':>12}   switches per call")
    total = 0.0
    for name in sorted(after):
        v = (after[name][0] - before.get(name, [0, 0])[0]) / CALLS
        n = (after[name][1] - before.get(name, [0, 0])[1]) / CALLS
        if v >= 0.01 or n >= 0.01:
            total += v
            print(f"{name:18} {v:10.2f} {n:12.2f}")
    print(f"{'all':18} {total:10.2f}")


# --- part (c) ------------------------------------------------------------------------------

def descendants(pid):
    """The processes below `pid`, by their parents in /proc (a sandbox's server under its init)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out = []
    for p in parent:
        q, hops = p, 0
        while q in parent and parent[q] > 1 and hops < 64:
            if parent[q] == pid:
                out.append(p)
                break
            q, hops = parent[q], hops + 1
    return out


def first_token_ms(client, model):
    t0 = time.perf_counter()
    first = None
    for chunk in client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=8, stream=True):
        if first is None and chunk.choices and chunk.choices[0].delta.content is not None:
            first = (time.perf_counter() - t0) * 1000
    if first is None:
        raise RuntimeError(f"{model}: no token")
    return first


def direct_ready(model_file, client):
    """Starts the peer server; ms from exec until GET /v1/models is 200 and a one-token
    completion has answered (polling every 20 ms)."""
    t0 = time.perf_counter()
    p = PROCS.start(llama_server_argv(model_file, str(LOCAL_PORT)), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        if p.poll() is not None:
            raise RuntimeError("the llama.cpp server exited at start")
        try:
            if urllib.request.urlopen(f"http://{ADDR}:{LOCAL_PORT}/v1/models", timeout=2).status == 200:
                client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=1)
                return p, (time.perf_counter() - t0) * 1000
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError("the llama.cpp server was not ready in 60 s")
            time.sleep(0.02)


def part_c(scratch):
    model_file = os.path.join(scratch, "tiny.gguf")
    subprocess.run([os.path.join(LLAMA, "bin", "python3"), os.path.join(ROOT, "tools", "make-tiny-gguf.py"), model_file],
                   check=True, capture_output=True)
    os.chmod(model_file, 0o644)
    direct = make_client(f"http://{ADDR}:{LOCAL_PORT}/v1", "dummy")
    cold_direct, ttft_direct = [], []
    for r in range(LOCAL_ROUNDS):
        p, ms = direct_ready(model_file, direct)
        cold_direct.append(ms)
        if r == 0:
            ttft_direct = [first_token_ms(direct, "tiny") for _ in range(LOCAL_CALLS)]
        PROCS.stop(p)
    cordon = Cordond(scratch, "c", local=model_file)
    client = make_client("http://localhost/v1", "cordon", cordon.socket)

    def server():
        return next(m for m in cordon.rpc("model.stats", {})["models"] if m["model"] == "local-tiny")["server"]

    def answered_ms(t0):
        deadline = time.monotonic() + 60
        while True:
            try:
                client.chat.completions.create(model="local-tiny", messages=MESSAGES, max_tokens=1)
                return (time.perf_counter() - t0) * 1000
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no answer from the local server in 60 s: {cordon.tail()}")
                time.sleep(0.02)

    cold_cordon, crash_cordon, ttft_cordon = [], [], []
    for r in range(LOCAL_ROUNDS):
        cold_cordon.append(answered_ms(time.perf_counter()))
        if r == 0:
            ttft_cordon = [first_token_ms(client, "local-tiny") for _ in range(LOCAL_CALLS)]
        # Crash: SIGKILL to the server's processes; then calls until one answers.
        pid = server()["pid"]
        victims = descendants(pid)
        if not victims or len(victims) > 8:
            raise RuntimeError(f"the server's processes under {pid}: {victims}")
        t0 = time.perf_counter()
        for v in victims:
            os.kill(v, signal.SIGKILL)
        crash_cordon.append(answered_ms(t0))
        # Unloaded for the next round's cold start: idle for its keep_alive (1 s).
        deadline = time.monotonic() + 30
        while server()["loaded"] or server()["pid"] is not None:
            if time.monotonic() > deadline:
                raise RuntimeError("the idle server was not unloaded in 30 s")
            time.sleep(0.05)
    stats = server()
    cordon.stop()
    print(f"(c) local model server: llama.cpp's server (llama-cpp-python), a {os.path.getsize(model_file)}-byte GGUF, "
          f"one thread; {LOCAL_ROUNDS} rounds, {LOCAL_CALLS} sequential streaming calls for time to first token")
    print(f"{'':34} {'direct':>16} {'Cordon':>16} {'ratio':>7}")

    def row(name, a, b, p=0.5):
        print(f"{name:34} {pct(a, p):13.1f} ms {pct(b, p):13.1f} ms {pct(b, p) / pct(a, p):7.2f}")
    row("cold start to ready, median", cold_direct, cold_cordon)
    row("warm first token, p50", ttft_direct, ttft_cordon)
    row("warm first token, p95", ttft_direct, ttft_cordon, 0.95)
    print(f"{'crash to answering again, median':34} {'(no supervisor)':>16} {pct(crash_cordon, 0.5):13.1f} ms"
          f"   (all: {', '.join(f'{x:.0f}' for x in crash_cordon)} ms)")
    print(f"Cordon's server: {stats['starts']} starts, {stats['failures']} failures counted (the crashes); "
          f"unloaded between rounds by its keep_alive of 1 s; a restart waits the pool's backoff (200 ms base, jittered)")


def openai_version():
    import openai
    return openai.__version__


# --- part (b) ------------------------------------------------------------------------------

NUMBER = re.compile(r"-?\d+")


def set_phase(bases, phase, seed=None):
    for i, name in enumerate(ARMS):
        body = dict(PHASES[phase][name], jitter=SPREAD)
        if seed is not None:
            body.update(reset=True, seed=seed * 1000 + i)
        http_json(bases[name] + "/control", body)


def play(label, bases, client, model, seed, feedback=None, phase_end=None):
    """Plays the workload through one gateway; returns the calls, each with its tag, outcome,
    what the client judged, and latency. `phase_end(phase)` runs after each phase's calls."""
    set_phase(bases, 0, seed)
    questions = random.Random(seed)
    calls = []
    for phase in range(len(PHASES)):
        if phase:
            set_phase(bases, phase)
        for j in range(PHASE_CALLS):
            a, b = questions.randrange(10, 100), questions.randrange(10, 100)
            tag = f"{label}.{seed}.{len(calls)}"
            call = {"phase": phase, "tag": tag, "answered": False, "right": False, "header": None, "error": None}
            t0 = time.perf_counter()
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model=model, max_tokens=16,
                    messages=[{"role": "user", "content": f"What is {a}+{b}? Answer with the number. tag={tag}"}])
                completion = raw.parse()
                call["header"] = raw.headers.get("x-litellm-model-id")
                text = completion.choices[0].message.content or ""
                numbers = NUMBER.findall(text)
                call["answered"] = True
                call["right"] = bool(numbers) and int(numbers[-1]) == a + b
            except Exception as e:  # an error reply is an outcome, not a failure of the bench
                call["error"] = f"{type(e).__name__}: {getattr(e, 'status_code', '')}"
                # Without the call's own ids, so that the same failure counts as one message.
                call["message"] = re.sub(r"chatcmpl-[0-9a-f]+: ", "", str(getattr(e, "message", e)))[:150]
            call["ms"] = (time.perf_counter() - t0) * 1000
            if feedback and call["answered"]:
                feedback(completion.id, call["right"])  # a refused rating stops the bench
            calls.append(call)
        if phase_end:
            phase_end(phase)
    return calls


def collect(bases):
    """tag -> [(arm, status, outcome, right, upstream ms)] from the stand-ins' logs."""
    served = {}
    for name in ARMS:
        for e in http_json(bases[name] + "/log?since=0")["entries"]:
            if e.get("tag"):
                served.setdefault(e["tag"], []).append((name, e["status"], e["outcome"], e["right"], e["ms"]))
    return served


def score(calls, served, mu):
    best = [max(row.values()) for row in mu]
    res = {"reward": 0.0, "oracle": 0.0, "realised": 0.0, "unserved": 0, "pulls": 0, "mismatch": 0,
           "errors": 0, "messages": {}, "by_phase": [0.0] * len(PHASES), "share": [{n: 0 for n in ARMS} for _ in PHASES]}
    for c in calls:
        p = c["phase"]
        pulls = served.get(c["tag"], [])
        if not pulls:
            res["unserved"] += 1
            res["oracle"] += best[p]
            res["by_phase"][p] += best[p]
        for name, status, outcome, right, ms in pulls:
            res["pulls"] += 1
            res["reward"] += mu[p][name]
            res["oracle"] += best[p]
            res["by_phase"][p] += best[p] - mu[p][name]
            res["share"][p][name] += 1
            success = 1.0 if (status == 200 and right is True) else 0.0
            res["realised"] += reward(success, ms, call_cost(name, PHASES[p][name]["completion_tokens"]))
        if c["error"]:
            res["errors"] += 1
            res["messages"][c.get("message") or c["error"]] = res["messages"].get(c.get("message") or c["error"], 0) + 1
        if c["header"] and pulls and c["header"] != pulls[-1][0]:
            res["mismatch"] += 1
    res["regret"] = res["oracle"] - res["reward"]
    return res


def part_b(scratch):
    import httpx
    mu = expected_rewards()
    bases = {name: start_standin(name, port) for name, port in zip(ARMS, ARM_PORTS)}
    rows = []
    beliefs = []
    strategies = ["simple-shuffle", "latency-based-routing", "least-busy"]
    cordon_name = "Cordon " + CORDON_MODEL + ", with feedback"
    for seed in range(1, SEEDS + 1):
        cordon = Cordond(scratch, f"b{seed}")
        client = make_client("http://localhost/v1", "cordon", cordon.socket)
        http = httpx.Client(transport=httpx.HTTPTransport(uds=cordon.socket), timeout=30)

        def feedback(ident, right):
            r = http.post("http://localhost/v1/feedback", json={"id": ident, "success": right, "score": 1.0 if right else 0.0},
                          headers={"Authorization": "Bearer cordon"})
            if r.status_code // 100 != 2:
                raise RuntimeError(f"feedback refused: {r.status_code} {r.text[:200]}")

        def phase_end(phase):
            explained = cordon.rpc("model.explain", {"model": CORDON_MODEL})
            beliefs.append((seed, phase, explained))

        t0 = time.perf_counter()
        calls = play("cordon", bases, client, CORDON_MODEL, seed, feedback, phase_end)
        rows.append((cordon_name, seed, score(calls, collect(bases), mu), time.perf_counter() - t0))
        http.close()
        client.close()
        cordon.stop()
        for strategy in strategies:
            lite = LiteLLM(scratch, "bench", [(name, bases[name], name) for name in ARMS], strategy)
            t0 = time.perf_counter()
            calls = play(strategy, bases, make_client(lite.url + "/v1", lite.key), "bench", seed)
            rows.append(("LiteLLM " + strategy, seed, score(calls, collect(bases), mu), time.perf_counter() - t0))
            lite.stop()
    report_b(rows, mu)
    report_beliefs(beliefs)


def report_beliefs(beliefs):
    """What Cordon's selector believed at the end of each phase (model.explain)."""
    print(f"\nCordon's selector at the end of each phase (model.explain: per arm P(best), mean utility, "
          f"success works x correct, latency median ms, effective calls / feedback; or why it is not eligible):")
    for seed, phase, e in beliefs:
        arms = {c["model"]: c for c in e.get("eligible", [])}
        why = {c["model"]: c["reason"] for c in e.get("ineligible", [])}
        parts = []
        for n in ARMS:
            c = arms.get(n)
            if not c:
                parts.append(f"{n}: {why.get(n, 'not listed')}")
                continue
            pb = c.get("probabilityBest")
            parts.append(f"{n} P {'-' if pb is None else f'{pb:.2f}'} u {c['meanUtility']:.3f} "
                         f"s {c['works']:.2f}x{c['correct']:.2f} {c['latencyMedianSeconds'] * 1000:.0f} ms "
                         f"n {c['calls']:.1f}/{c['feedback']:.1f}")
        print(f"  seed {seed} phase {phase + 1}: " + "; ".join(parts))


def report_b(rows, mu):
    oracle = [max(ARMS, key=lambda n: row[n]) for row in mu]
    print(f"\n(b) selection: {len(PHASES)} phases x {PHASE_CALLS} calls, {SEEDS} seed(s), sequential client; "
          f"reward 0.6 success + 0.3 latency (L_ref {LATENCY_REFERENCE_MS:g} ms) + 0.1 cost (C_ref {COST_REFERENCE:g})")
    print("expected reward per call (oracle *): " + "; ".join(
        f"phase {p + 1} " + " ".join(f"{n} {mu[p][n]:.3f}{'*' if n == oracle[p] else ''}" for n in ARMS) for p in range(len(PHASES))))
    names = []
    for name, *_ in rows:
        if name not in names:
            names.append(name)
    agg = {}
    for name in names:
        rs = [r for n, _, r, _ in rows if n == name]
        secs = [s for n, _, _, s in rows if n == name]
        agg[name] = (rs, secs)
    cordon_name = next((n for n in names if n.startswith("Cordon")), None)
    cordon_regret = statistics.mean(r["regret"] for r in agg[cordon_name][0]) if cordon_name else None
    head = f"{'strategy':34} {'reward':>8} {'regret':>8} {'/Cordon':>8} {'realised':>9} {'regret by phase':>20}  served fast/steady/large by phase"
    print(head)
    calls = len(PHASES) * PHASE_CALLS
    print(f"{'oracle (best arm per phase)':34} {sum(max(r.values()) for r in mu) * PHASE_CALLS:8.1f} {0:8.1f}")
    for name in names:
        rs, secs = agg[name]
        regret = statistics.mean(r["regret"] for r in rs)
        spread = "" if len(rs) == 1 else f" ({min(r['regret'] for r in rs):.1f}-{max(r['regret'] for r in rs):.1f})"
        ratio = f"{regret / cordon_regret:8.2f}" if cordon_regret else f"{'-':>8}"
        by_phase = "/".join(f"{statistics.mean(r['by_phase'][p] for r in rs):.1f}" for p in range(len(PHASES)))
        shares = "  ".join("/".join(str(round(statistics.mean(r["share"][p][n] for r in rs))) for n in ARMS) for p in range(len(PHASES)))
        print(f"{name:34} {statistics.mean(r['reward'] for r in rs):8.1f} {regret:8.1f} {ratio} "
              f"{statistics.mean(r['realised'] for r in rs):9.1f} {by_phase:>20}  {shares}{spread}")
        notes = []
        for key, what in (("errors", "calls failed"), ("unserved", "calls reached no stand-in"), ("mismatch", "x-litellm-model-id disagreed with the stand-ins")):
            v = sum(r[key] for r in rs)
            if v:
                notes.append(f"{v} {what}")
        messages = {}
        for r in rs:
            for m, k in r["messages"].items():
                messages[m] = messages.get(m, 0) + k
        if messages:
            m, k = max(messages.items(), key=lambda x: x[1])
            notes.append(f"most often ({k}x): {m}")
        extra = sum(r["pulls"] for r in rs) - sum(calls - r["unserved"] for r in rs)
        if extra:
            notes.append(f"{extra} upstream retries")
        notes.append(f"{statistics.mean(secs):.0f} s per run")
        print(f"{'':34}   " + "; ".join(notes))
    lite = [statistics.mean(r["regret"] for r in agg[n][0]) for n in names if n.startswith("LiteLLM")]
    if lite:
        verdict = "" if cordon_regret is None else f", Cordon's {cordon_regret:.1f}: {'met' if cordon_regret <= min(lite) / 2 else 'missed'}"
        print(f"best LiteLLM regret {min(lite):.1f}: Cordon's target is <= {min(lite) / 2:.1f}{verdict}")


# --- cordon-config and script ------------------------------------------------------------------

def llama_server_argv(model_file, port):
    return [os.path.join(LLAMA, "bin", "python3"), "-m", "llama_cpp.server", "--model", model_file, "--host", ADDR,
            "--port", port, "--n_threads", "1", "--n_threads_batch", "1", "--n_ctx", "512",
            "--interrupt_requests", "false", "--model_alias", "tiny"]


def cordon_config(tokens=None, local=None):
    """The models.toml of the bench's cordond: the stand-ins on 127.0.0.1, part (b)'s objective,
    with `tokens` (a tokens file's path) the endpoint on 127.0.0.1:CORDON_PORT, and with `local`
    (a GGUF file's path) part (c)'s local llama.cpp server."""
    out = [f"""# models.toml of bench/models.py's cordond (the stand-ins listen on {ADDR} inside the bench's
# network namespace). The selector's statistics persist in the state directory: start each run
# from an empty one.
[[provider]]
name = "bench-overhead"
kind = "openai"
base_url = "http://{ADDR}:{OVERHEAD_PORT}/v1"
"""]
    for name, port in zip(ARMS, ARM_PORTS):
        out.append(f"""[[provider]]
name = "bench-{name}"
kind = "openai"
base_url = "http://{ADDR}:{port}/v1"
""")
    out.append("""[[model]]
name = "bench-overhead"
provider = "bench-overhead"
upstream = "overhead"
task_types = ["bench-overhead"]
""")
    for name in ARMS:
        p_in, p_out = PRICES[name]
        out.append(f"""[[model]]
name = "{name}"
provider = "bench-{name}"
price_input = {p_in}
price_output = {p_out}
task_types = ["chat"]
""")
    out.append(f"""[selector]
success = {WEIGHTS[0]}
latency = {WEIGHTS[1]}
cost = {WEIGHTS[2]}
latency_reference = "{LATENCY_REFERENCE_MS:g}ms"
cost_reference = {COST_REFERENCE}
discount = 0.98
exploration = 0.02
""")
    if local:
        argv = ", ".join(json.dumps(a) for a in llama_server_argv("{model_file}", "{port}"))
        out.append(f"""[[provider]]
name = "bench-local"
kind = "local"
base_url = "http://127.0.0.1:8080/v1"
command = [{argv}]
model_file = "{local}"
server_policy = "bench-llama"
keep_alive = "1s"
service = {{ max_restarts = 100 }}

[[model]]
name = "local-tiny"
provider = "bench-local"
upstream = "tiny"
context_length = 512
max_output_tokens = 8
task_types = ["bench-local"]
""")
    if tokens:
        out.append(f"""[endpoint]
listen = "{ADDR}:{CORDON_PORT}"
tokens = "{tokens}"
""")
    return "\n".join(out)


def script():
    mu = expected_rewards()
    print(f"prices per 1k tokens (in, out): " + ", ".join(f"{n} {PRICES[n]}" for n in ARMS) + f"; {PROMPT_TOKENS} prompt tokens")
    for p, phase in enumerate(PHASES):
        print(f"phase {p + 1} ({PHASE_CALLS} calls):")
        for n in ARMS:
            s = phase[n]
            print(f"  {n:7} errors {s['error_rate']:.2f}  wrong {1 - s['correctness']:.2f}  latency {s['latency_ms']:5.1f} ms "
                  f"(x e^(0.3 N(0,1)))  {s['completion_tokens']:4} tokens out  cost {call_cost(n, s['completion_tokens']):.5f}  "
                  f"expected reward {mu[p][n]:.4f}")


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "run"
    if what == "cordon-config":
        return print(cordon_config(), end="")
    if what == "script":
        return script()
    # SIGTERM (bench/models.sh's clean-up) unwinds through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scratch = tempfile.mkdtemp(prefix="cordon-bench-models.")
    os.chmod(scratch, 0o755)  # cordond's runtime directories are in it: others must search it
    try:
        if "a" in PARTS:
            part_a(scratch)
        if "p" in PARTS:
            part_p(scratch)
        if "b" in PARTS:
            part_b(scratch)
        if "c" in PARTS:
            part_c(scratch)
    finally:
        PROCS.stop_all()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
