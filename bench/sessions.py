#!/usr/bin/env python3
"""Load for bench/sessions.sh: JSON-RPC clients on cordond's socket, each on its own connection.

  sessions.py SOCKET BWRAP latency ROUNDS      -> interleaved rounds, one of each per round, the
                                                 order rotating: session.exec /bin/true in an open
                                                 session, task.submit+wait /bin/true of policy
                                                 "warm" (a warm sandbox) and of the default
                                                 policy (a cold one), same-root bubblewrap and
                                                 plain fork/exec of /bin/true; median and p95
  sessions.py SOCKET BWRAP throughput N CLIENTS -> CLIENTS processes, each in its own session doing
                                                 N session.exec /bin/true; against the same number
                                                 of processes each running N same-root bubblewraps
BWRAP is the bubblewrap command line (space-separated), without the program.
"""
import json, os, socket, statistics, subprocess, sys, time

# Seconds of quiet before each latency measurement (SESSIONS_GAP; 0: back to back).
GAP = float(os.environ.get("SESSIONS_GAP", "0.02"))

def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s, s.makefile("rwb")

def call(f, ident, method, params):
    f.write(json.dumps({"jsonrpc": "2.0", "id": ident, "method": method, "params": params}).encode() + b"\n")
    f.flush()
    while True:
        reply = json.loads(f.readline())
        if "id" in reply:
            return reply

def ok(reply, what):
    if "error" in reply:
        sys.stderr.write(f"sessions.py: {what}: {reply['error']}\n")
        os._exit(1)
    result = reply["result"]
    if what != "session.create" and result.get("exitCode") != 0:
        sys.stderr.write(f"sessions.py: {what} did not exit 0: {result}\n")
        os._exit(1)
    return result

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]

def latency(path, bwrap, rounds):
    _, f = connect(path)
    session = ok(call(f, 1, "session.create", {}), "session.create")["id"]
    n = [10]
    def exec_true():
        n[0] += 1
        ok(call(f, n[0], "session.exec", {"id": session, "argv": ["/bin/true"]}), "session.exec")
    def submit_true():
        n[0] += 1
        ok(call(f, n[0], "task.submit", {"argv": ["/bin/true"], "wait": True}), "task.submit")
    def submit_warm():
        n[0] += 1
        result = ok(call(f, n[0], "task.submit", {"argv": ["/bin/true"], "policy": "warm", "wait": True}), "task.submit")
        warm[0] += 1 if result.get("result", {}).get("warm") else 0
    warm = [0]
    def run(argv):
        def go():
            if subprocess.call(argv) != 0:
                sys.stderr.write(f"sessions.py: {argv} failed\n")
                os._exit(1)
        return go
    kinds = [("session.exec /bin/true (open session)", exec_true),
             ("task.submit+wait /bin/true (warm sandbox)", submit_warm),
             ("task.submit+wait /bin/true (cold sandbox)", submit_true),
             ("bubblewrap, same root", run(bwrap + ["/bin/true"])),
             ("fork/exec /bin/true", run(["/bin/true"]))]
    for _, go in kinds * 5:  # warm-up
        go()
    times = {name: [] for name, _ in kinds}
    for r in range(rounds):
        for i in range(len(kinds)):
            name, go = kinds[(r + i) % len(kinds)]
            # Each measurement starts on a quiet machine: what a warm task's pool rebuilds in
            # the background (or a cold sandbox's teardown) is not charged to the next row.
            time.sleep(GAP)
            start = time.perf_counter()
            go()
            times[name].append(time.perf_counter() - start)
    call(f, 2, "session.close", {"id": session})
    print(f"{'latency (' + str(rounds) + ' interleaved rounds, ' + str(int(GAP * 1000)) + ' ms apart)':44} {'median':>9} {'p95':>9}")
    for name, t in times.items():
        print(f"{name:44} {statistics.median(t) * 1e3:7.2f}ms {pct(t, 0.95) * 1e3:7.2f}ms")
    bw = statistics.median(times['bubblewrap, same root'])
    s = statistics.median(times[kinds[0][0]])
    w = statistics.median(times[kinds[1][0]])
    print(f"warm tasks served warm: {warm[0]} of {rounds + 5}")
    print(f"ratio warm task / same-root bubblewrap (median): {w / bw:.2f}")
    print(f"ratio session.exec / same-root bubblewrap (median): {s / bw:.2f}")
    print(f"ratio cold task / same-root bubblewrap (median): {statistics.median(times[kinds[2][0]]) / bw:.2f}")

def throughput(path, bwrap, count, clients):
    def sessions_client(w):
        _, f = connect(path)
        session = ok(call(f, 1, "session.create", {}), "session.create")["id"]
        call(f, 2, "session.exec", {"id": session, "argv": ["/bin/true"]})
        os.write(w, b"r")  # ready
        os.read(go_r, 1)
        for i in range(count):
            ok(call(f, 10 + i, "session.exec", {"id": session, "argv": ["/bin/true"]}), "session.exec")
        call(f, 3, "session.close", {"id": session})
    def bwrap_client(w):
        os.write(w, b"r")
        os.read(go_r, 1)
        for _ in range(count):
            if subprocess.call(bwrap + ["/bin/true"]) != 0:
                os._exit(1)
    results = {}
    for name, body in [(f"session.exec, {clients} clients in own sessions", sessions_client),
                       (f"same-root bubblewrap, {clients} parallel loops", bwrap_client)]:
        global go_r
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        pids = []
        for _ in range(clients):
            pid = os.fork()
            if pid == 0:
                try:
                    body(ready_w)
                    os._exit(0)
                except Exception as e:
                    sys.stderr.write(f"sessions.py: {e}\n")
                    os._exit(1)
            pids.append(pid)
        for _ in range(clients):
            os.read(ready_r, 1)
        start = time.perf_counter()
        os.write(go_w, b"g" * clients)
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            if status != 0:
                sys.stderr.write(f"sessions.py: a client of {name} failed\n")
                sys.exit(1)
        seconds = time.perf_counter() - start
        results[name] = clients * count / seconds
        print(f"{name:44} {results[name]:8.0f}/s   ({clients * count} in {seconds:.2f}s)")
    names = list(results)
    print(f"ratio session.exec / bubblewrap throughput: {results[names[0]] / results[names[1]]:.2f}")

if __name__ == "__main__":
    path, bwrap, mode = sys.argv[1], sys.argv[2].split(), sys.argv[3]
    if mode == "latency":
        latency(path, bwrap, int(sys.argv[4]))
    else:
        throughput(path, bwrap, int(sys.argv[4]), int(sys.argv[5]))
