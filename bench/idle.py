#!/usr/bin/env python3
"""Held connections for bench/idle.sh: what N long-lived, mostly silent clients cost cordond.

  idle.py SOCKET PID N open [SAMPLES] [CORDON]
  idle.py SOCKET PID N wait [SAMPLES] [CORDON]

Opens N connections to cordond and keeps them: `open` sends nothing on them (a client between
requests), `wait` sends a `task.wait` on each for one task that sleeps (an agent waiting on a
result; the answer comes only when the task ends). With them held it reads the daemon's RSS,
thread count and descriptors from /proc, then times SAMPLES `system.health` round trips, each
on a fresh connection (connect, request, answer, close), and, with CORDON, SAMPLES/4 runs of
`CORDON status --socket SOCKET` (a new CLI process each). Prints one JSON object.

Every held connection counts against server.max_connections and the per-user caps: the
caller's cordond.toml raises them (bench/idle.sh does). The blocker task is cancelled and the
connections closed before it exits; it never waits longer than 60 s for anything.
"""
import json, os, socket, statistics, subprocess, sys, time

def proc(pid):
    status = {l.split(":")[0]: l.split(":")[1].strip() for l in open(f"/proc/{pid}/status")}
    return {"rss_kib": int(status["VmRSS"].split()[0]), "threads": int(status["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}

retries = 0

def connect(path):
    """A connection; a full listen backlog (EAGAIN on a Unix socket) is retried after 1 ms and
    counted: a daemon that accepts slower than clients connect shows up there."""
    global retries
    deadline = time.time() + 60
    while True:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(60)
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            s.close()
            retries += 1
            if time.time() > deadline:
                raise
            time.sleep(0.001)

def call(sock, ident, method, params):
    sock.sendall(json.dumps({"jsonrpc": "2.0", "id": ident, "method": method, "params": params}).encode() + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"{method}: connection closed")
        data += chunk
    return json.loads(data)

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]

def main():
    path, pid, n, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    samples = int(sys.argv[5]) if len(sys.argv) > 5 else 200
    cordon = sys.argv[6] if len(sys.argv) > 6 else None
    assert mode in ("open", "wait")
    control = connect(path)
    blocker = None
    if mode == "wait":
        reply = call(control, 1, "task.submit", {"argv": ["sleep", "600"]})
        blocker = reply["result"]["id"]
    before = proc(pid)
    held = []
    t0 = time.perf_counter()
    for i in range(n):
        s = connect(path)
        if mode == "wait":
            s.sendall(json.dumps({"jsonrpc": "2.0", "id": i, "method": "task.wait",
                                  "params": {"id": blocker, "timeout": 300}}).encode() + b"\n")
        held.append(s)
    opened = time.perf_counter() - t0
    # Let the daemon take every connection (and read every wait) before measuring it.
    deadline = time.time() + 30
    while time.time() < deadline:
        time.sleep(0.5)
        now = proc(pid)
        if now["fds"] >= before["fds"] + n:
            break
    time.sleep(1)
    loaded = proc(pid)
    # A held connection must still be there: the daemon may have refused it at accept.
    refused = 0
    for s in held:
        s.setblocking(False)
        try:
            if s.recv(65536):
                refused += 1
        except BlockingIOError:
            pass
        s.setblocking(True)
    health = []
    for i in range(samples):
        t = time.perf_counter()
        s = connect(path)
        reply = call(s, i, "system.health", {})
        s.close()
        health.append(time.perf_counter() - t)
        assert "result" in reply, reply
    cli = []
    if cordon:
        for _ in range(max(1, samples // 4)):
            t = time.perf_counter()
            subprocess.run([cordon, "status", "--socket", path], stdout=subprocess.DEVNULL, check=False)
            cli.append(time.perf_counter() - t)
    if blocker is not None:
        call(control, 2, "task.cancel", {"id": blocker})
    for s in held:
        s.close()
    control.close()
    out = {"n": n, "mode": mode, "refused_or_answered": refused, "open_seconds": opened, "connect_retries": retries,
           "before": before, "held": loaded,
           "health_median_ms": statistics.median(health) * 1e3, "health_p95_ms": pct(health, 0.95) * 1e3}
    if cli:
        out["status_median_ms"] = statistics.median(cli) * 1e3
        out["status_p95_ms"] = pct(cli, 0.95) * 1e3
    print(json.dumps(out))

main()
