"""What the MCP probes share: the pinned venv, each server's command line, a git repository for
mcp-server-git, and a minimal synchronous JSON-RPC peer over a child's stdio.

The venv is the one `make pydeps` (tools/pydeps.sh) builds: .build/pydeps/mcp, or
$MCP_PROBE_VENV. Its python3 runs the probes (they import the `mcp` SDK) and the servers:

    .build/pydeps/mcp/bin/python3 -m mcp_server_time [--local-timezone ZONE]
    .build/pydeps/mcp/bin/python3 -m mcp_server_git [--repository DIR]
    PATH=/nonexistent .build/pydeps/mcp/bin/python3 -m mcp_server_fetch [--allow-private-ips]

`-m` rather than the venv's bin/mcp-server-* scripts: those carry the install path in their
shebangs, `-m` works wherever the venv is bound. The PATH for mcp-server-fetch: see SERVER_ENV.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("MCP_PROBE_VENV", ROOT / ".build" / "pydeps" / "mcp"))
PYTHON = str(VENV / "bin" / "python3")
TAP = str(Path(__file__).resolve().parent / "stdio_tap.py")

HANDSHAKE_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"
CLIENT_INFO = {"name": "cordon-mcp-probe", "version": "0"}


def server_argv(name: str, *, python: str = PYTHON, repository: str | None = None) -> list[str]:
    """The command line that starts server `name` ('time', 'git' or 'fetch') over stdio."""
    if name == "time":
        # A fixed zone: the default is the host's /etc/localtime, which a sandbox may not have.
        return [python, "-m", "mcp_server_time", "--local-timezone", "UTC"]
    if name == "git":
        return [python, "-m", "mcp_server_git"] + (["--repository", repository] if repository else [])
    if name == "fetch":
        return [python, "-m", "mcp_server_fetch"]
    raise ValueError(f"unknown server {name!r}")


SERVERS = ("time", "git", "fetch")

# Environment each server needs on top of the caller's. mcp-server-fetch extracts pages with
# readabilipy, which on the first HTML page runs `node -v` and, when Node.js is on PATH and the
# venv has no readabilipy/javascript/node_modules, runs `npm install` there: it writes into the
# venv and ~/.npm and asks registry.npmjs.org. A PATH without node keeps it on its pure-Python
# extractor; the server itself runs no other program.
SERVER_ENV = {"fetch": {"PATH": "/nonexistent"}}


def server_env(name: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with what server `name` needs over it."""
    return {**(os.environ if base is None else base), **SERVER_ENV.get(name, {})}


def make_git_repository() -> str:
    """A throwaway repository with one commit, for mcp-server-git (the caller removes it)."""
    path = tempfile.mkdtemp(prefix="mcp-probe-git-")
    env = {**os.environ, "GIT_AUTHOR_NAME": "probe", "GIT_AUTHOR_EMAIL": "probe@localhost",
           "GIT_COMMITTER_NAME": "probe", "GIT_COMMITTER_EMAIL": "probe@localhost"}
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        subprocess.run(["git", "-C", path, *args], check=True, env=env)
    return path


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float:
    return statistics.median(values)


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB, from /proc (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def envelope(version: str = MODERN_VERSION, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Request params carrying the 2026-07-28 per-request `_meta` envelope, as the SDK sends it."""
    out = dict(params or {})
    out["_meta"] = {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
        "io.modelcontextprotocol/clientCapabilities": {},
        **out.get("_meta", {}),
    }
    return out


def initialize_params(version: str = HANDSHAKE_VERSION) -> dict[str, Any]:
    return {"protocolVersion": version, "capabilities": {}, "clientInfo": CLIENT_INFO}


class Peer:
    """A server child on pipes, spoken to in newline-delimited JSON-RPC, synchronously.

    Every line received is kept in `received` (notifications included); `request` returns the
    response to its own id, or raises TimeoutError. The child leads a process group of its own;
    always `close()` it (or use `with`): that closes stdin, waits up to 2 s for the child, then
    kills what is left of its group (a server's own children included).
    """

    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
                 stderr: Any = subprocess.DEVNULL) -> None:
        self.argv = argv
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                     env=env, cwd=cwd, bufsize=0, start_new_session=True)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.buffer = b""
        self.next_id = 1
        self.received: list[dict[str, Any]] = []

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send(self, message: dict[str, Any]) -> None:
        self.proc.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def read_message(self, deadline: float) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            remaining = deadline - time.perf_counter()
            if remaining <= 0 or not self.selector.select(remaining):
                raise TimeoutError(f"no complete line from {self.argv[:3]} in time")
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                raise EOFError(f"{self.argv[:3]} closed its stdout (exit {self.proc.poll()})")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        message = json.loads(line)
        self.received.append(message)
        return message

    def request(self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 10.0) -> dict[str, Any]:
        """Sends a request and returns the whole response object (with "result" or "error")."""
        ident = self.next_id
        self.next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": ident, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        deadline = time.perf_counter() + timeout
        while True:
            reply = self.read_message(deadline)
            if reply.get("id") == ident and ("result" in reply or "error" in reply):
                return reply

    def close(self) -> int | None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.selector.close()
            self.proc.stdout.close()
