"""`cordon mcp serve` when cordond does not answer: prints one JSON line of what it saw.

argv: CORDON SOCKET MODE
- MODE "eof": the first forwarded request is a tools/call cordond takes long to answer (a
  3600 s sleep in the `python` tool); stdin is then closed: how long mcp serve takes to exit.
- MODE "stall": SOCKET is none; a socket that accepts and never reads stands in for a wedged
  cordond; a 2 MiB tools/call is sent, then a ping: how long the ping takes to be answered, and
  how long mcp serve takes to exit once stdin closes."""
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time

cordon, sock_path, mode = sys.argv[1:4]
seen = {}
wedged = None
if mode == "stall":
    tmp = tempfile.mkdtemp(prefix="cordon-wedged-")
    sock_path = os.path.join(tmp, "wedged.sock")
    wedged = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    wedged.bind(sock_path)
    wedged.listen(16)

p = subprocess.Popen([cordon, "mcp", "serve", "--socket", sock_path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL)
pending = b""


def send(message):
    p.stdin.write((json.dumps(message) + "\n").encode())
    p.stdin.flush()


def answer(want_id, seconds):
    """The line answering want_id, or None within seconds."""
    global pending
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            message = json.loads(line)
            if message.get("id") == want_id:
                return message
        ready, _, _ = select.select([p.stdout], [], [], max(0, deadline - time.monotonic()))
        if ready:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                return None
            pending += chunk
    return None


send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
      "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "stalls", "version": "1"}}})
seen["initialized"] = answer(1, 10) is not None
send({"jsonrpc": "2.0", "method": "notifications/initialized"})
if mode == "eof":
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
          "params": {"name": "python", "arguments": {"code": "import time; time.sleep(3600)"}}})
    time.sleep(1)
else:
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
          "params": {"name": "python", "arguments": {"code": "#" + "x" * (2 << 20)}}})
    time.sleep(0.5)
    t0 = time.monotonic()
    send({"jsonrpc": "2.0", "id": 3, "method": "ping"})
    pong = answer(3, 30)
    seen["ping"] = None if pong is None else round(time.monotonic() - t0, 3)
t0 = time.monotonic()
p.stdin.close()
try:
    p.wait(30)
    seen["exit"] = round(time.monotonic() - t0, 3)
except subprocess.TimeoutExpired:
    seen["exit"] = None
    p.kill()
    p.wait()
if wedged is not None:
    wedged.close()
    os.unlink(sock_path)
    os.rmdir(os.path.dirname(sock_path))
print(json.dumps(seen))
