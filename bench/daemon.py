#!/usr/bin/env python3
"""Load for bench/daemon.sh: JSON-RPC clients on cordond's socket, each on its own connection.

  daemon.py SOCKET throughput TASKS CLIENTS   -> tasks/s and per-task latency (submit+wait)
  daemon.py SOCKET latency TASKS              -> one client, sequential: median and p95 (ms)
  daemon.py SOCKET process PID                -> RSS (KiB) and open descriptors of PID
  daemon.py SOCKET queued PID REQUESTS BYTES  -> fill the running slots, queue REQUESTS tasks with
                                                 BYTES of stdin each, then cancel them all: how
                                                 many were taken, and RSS with them queued and
                                                 after the cancel
"""
import json, os, socket, statistics, sys, threading, time

def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s, s.makefile("rwb")

def submit_wait(f, ident):
    f.write(json.dumps({"jsonrpc": "2.0", "id": ident, "method": "task.submit",
                        "params": {"argv": ["/bin/true"], "wait": True}}).encode() + b"\n")
    f.flush()
    reply = json.loads(f.readline())
    if "error" in reply or reply["result"].get("exitCode") != 0:
        sys.stderr.write(f"daemon.py: task failed: {reply}\n")
        os._exit(1)

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]

def rss(pid):
    return next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))

def call(f, ident, method, params):
    f.write(json.dumps({"jsonrpc": "2.0", "id": ident, "method": method, "params": params}).encode() + b"\n")
    f.flush()
    return json.loads(f.readline())

def queued(path, pid, requests, size):
    _, f = connect(path)
    slots = 64
    blockers = [call(f, i, "task.submit", {"argv": ["sleep", "600"]})["result"]["id"] for i in range(1, slots + 1)]
    time.sleep(1)
    before = rss(pid)
    stdin = "x" * size
    taken, refused = [], 0
    for i in range(requests):
        reply = call(f, 1000 + i, "task.submit", {"argv": ["cat"], "stdin": stdin})
        if "result" in reply and reply["result"]["state"] == "queued":
            taken.append(reply["result"]["id"])
        else:
            refused += 1
    with_queued = rss(pid)
    for n, ident in enumerate(taken + blockers):
        call(f, 5000 + n, "task.cancel", {"id": ident})
    time.sleep(3)
    print(json.dumps({"requests": requests, "bytes": size, "taken": len(taken), "refused": refused,
                      "rss_before_kib": before, "rss_queued_kib": with_queued, "rss_after_cancel_kib": rss(pid)}))

def main():
    path, mode = sys.argv[1], sys.argv[2]
    if mode == "process":
        pid = sys.argv[3]
        print(json.dumps({"rss_kib": rss(pid), "fds": len(os.listdir(f"/proc/{pid}/fd"))}))
        return
    if mode == "queued":
        queued(path, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    tasks = int(sys.argv[3])
    clients = int(sys.argv[4]) if mode == "throughput" else 1
    latencies, lock = [], threading.Lock()
    counter = iter(range(tasks))
    def worker():
        _, f = connect(path)
        mine = []
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            t0 = time.perf_counter()
            submit_wait(f, n)
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads: t.start()
    for t in threads: t.join()
    elapsed = time.perf_counter() - start
    print(json.dumps({"tasks": len(latencies), "clients": clients, "seconds": elapsed,
                      "tasks_per_second": len(latencies) / elapsed,
                      "median_ms": statistics.median(latencies) * 1e3, "p95_ms": pct(latencies, 0.95) * 1e3}))

main()
