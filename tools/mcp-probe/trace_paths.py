#!/usr/bin/env python3
"""What an MCP server touches at run time: files, directories, programs, sockets.

    .build/pydeps/mcp/bin/python3 tools/mcp-probe/trace_paths.py [--servers time,git,fetch]
        [--keep DIR] [--env-home DIR]

Runs each server under `strace -ff -e trace=file,network,process` (strace must be installed;
run as root or where ptrace is allowed), drives it through initialize, tools/list and one
harmless call (time: get_current_time and convert_time; git: git_status and git_log on a
throwaway repository; fetch: a fetch of http://127.0.0.1:PORT/ served by this script, with
--allow-private-ips, so the traffic stays on loopback), then sums up from the trace:
  - the paths it opened that exist, grouped by where they are (the venv, /usr, /etc, ...);
  - the paths it looked for and did not find, grouped the same way (harmless misses, but they
    say what a sandbox can leave out);
  - everything it opened for writing, created, renamed or removed;
  - the programs it executed, and its socket/connect calls.
--keep DIR keeps the raw strace output there. The servers get HOME=--env-home (default: a fresh
empty directory), so anything they would put under ~ shows.
"""
from __future__ import annotations

import argparse
import glob
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import defaultdict
from pathlib import Path

import common
from common import Peer, initialize_params

SYSCALL = re.compile(r'^(?P<pid>\d+)\s+(?P<name>\w+)\((?P<args>.*)\)\s+=\s+(?P<ret>-?\d+|\?)(?:\s+(?P<err>E\w+))?')
PATH_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")
NETWORK_SYSCALLS = {"socket", "connect", "bind", "listen", "accept", "accept4", "socketpair", "getsockname",
                    "getpeername", "setsockopt", "getsockopt", "shutdown"}


def serve_loopback_page() -> tuple[http.server.ThreadingHTTPServer, int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            body = (b"User-agent: *\nAllow: /\n" if self.path == "/robots.txt"
                    else b"<html><head><title>probe</title></head><body><p>hello from loopback</p></body></html>")
            self.send_response(200)
            self.send_header("Content-Type", "text/plain" if self.path == "/robots.txt" else "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def drive(server: str, argv: list[str], env: dict[str, str], repository: str | None, port: int | None) -> list[str]:
    notes = []
    with Peer(argv, env=env, cwd="/") as peer:
        peer.request("initialize", initialize_params(), timeout=120)
        peer.notify("notifications/initialized")
        peer.request("tools/list", timeout=60)
        calls = {
            "time": [("get_current_time", {"timezone": "Europe/Paris"}),
                     ("convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"})],
            "git": [("git_status", {"repo_path": repository}), ("git_log", {"repo_path": repository, "max_count": 1})],
            "fetch": [("fetch", {"url": f"http://127.0.0.1:{port}/", "max_length": 200})],
        }[server]
        for name, arguments in calls:
            reply = peer.request("tools/call", {"name": name, "arguments": arguments}, timeout=60)
            result = reply.get("result", {})
            text = (result.get("content") or [{}])[0].get("text", "") if result else str(reply.get("error"))
            notes.append(f"{name}: isError={result.get('isError')} {text[:100]!r}")
    return notes


def where(path: str, venv: str, home: str) -> str:
    if path.startswith(venv + "/") or path == venv:
        return "<venv>"
    if path.startswith(home + "/") or path == home:
        return "<HOME>"
    for prefix in ("/usr/lib/python3.11", "/usr/lib/python3", "/usr/share/zoneinfo", "/usr/lib/x86_64-linux-gnu",
                   "/usr/lib/git-core", "/usr/share/git-core", "/usr/bin", "/usr/share", "/usr/lib", "/usr/local",
                   "/etc/ssl", "/etc", "/proc", "/sys", "/dev", "/tmp", "/lib", "/lib64", "/root"):
        if path == prefix or path.startswith(prefix + "/"):
            return prefix
    return path


def analyse(trace: str, venv: str, home: str, repository: str | None) -> dict[str, object]:
    found: dict[str, set[str]] = defaultdict(set)
    missing: dict[str, set[str]] = defaultdict(set)
    writes: set[str] = set()
    execs: list[str] = []
    network: list[str] = []
    cwd_relative: set[str] = set()
    lines = (f"{path.rsplit('.', 1)[1]} {line}" for path in sorted(glob.glob(trace + ".*"))
             for line in open(path, errors="replace"))
    for line in lines:
        match = SYSCALL.match(line)
        if not match:
            continue
        name, args, ret, err = match["name"], match["args"], match["ret"], match["err"]
        if name in NETWORK_SYSCALLS or name.startswith(("send", "recv")):
            if name in ("socket", "connect", "bind", "listen"):
                network.append(f"{name}({args[:110]}) = {ret}{' ' + err if err else ''}")
            continue
        paths = PATH_ARG.findall(args)
        if not paths:
            continue
        path = paths[0]
        if name in ("execve", "execveat"):
            execs.append(f"{path} = {ret}{' ' + err if err else ''}")
        if not path.startswith("/"):
            cwd_relative.add(path)
            continue
        if repository and path.startswith(repository):
            path = "<repo>" + path[len(repository):]
            found["<repo>"].add(path)
            if any(flag in args for flag in WRITE_FLAGS) or name in ("mkdir", "rename", "renameat2", "unlink", "unlinkat"):
                writes.add(f"{name} {path}")
            continue
        group = where(path, venv, home)
        if err:
            missing[group].add(path)
        else:
            found[group].add(path)
        if name in ("mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir", "symlink", "link"):
            writes.add(f"{name} {path}{' ' + err if err else ''}")
        elif name in ("open", "openat", "creat") and any(flag in args for flag in WRITE_FLAGS):
            writes.add(f"{name} {path} ({','.join(f for f in WRITE_FLAGS if f in args)}){' ' + err if err else ''}")
    return {"found": found, "missing": missing, "writes": sorted(writes), "execs": execs, "network": network,
            "cwd_relative": sorted(cwd_relative)}


def show(label: str, groups: dict[str, set[str]]) -> None:
    print(f"   {label}:")
    for group in sorted(groups):
        paths = sorted(groups[group])
        if group in ("<venv>", "/usr/lib/python3.11", "/usr/lib/python3", "/proc", "/sys", "/usr/share/zoneinfo") and len(paths) > 3:
            print(f"     {group}: {len(paths)} paths, e.g. {', '.join(paths[:2])}")
        else:
            print(f"     {group}: {', '.join(paths[:12])}{' ...' if len(paths) > 12 else ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(common.SERVERS))
    parser.add_argument("--keep", help="keep the raw strace output in this directory")
    parser.add_argument("--env-home", help="HOME for the servers (default: a fresh empty directory)")
    args = parser.parse_args()
    strace = shutil.which("strace")
    if not strace:
        print("trace_paths: strace is not installed (apt-get install strace)", file=sys.stderr)
        return 1
    # Under /tmp, like a sandbox's HOME: a path under the venv or the repository would blur the groups.
    scratch = tempfile.mkdtemp(prefix="mcp-trace-")
    home = args.env_home or os.path.join(scratch, "home")
    os.makedirs(home, exist_ok=True)
    venv = str(common.VENV)
    page, port = serve_loopback_page()
    try:
        for server in args.servers.split(","):
            repository = common.make_git_repository() if server == "git" else None
            # -ff: one file per process (trace.PID), so no call is split into unfinished/resumed halves.
            trace = os.path.abspath(os.path.join(args.keep or scratch, f"{server}.strace"))
            server_argv = common.server_argv(server, repository=repository)
            if server == "fetch":
                server_argv += ["--allow-private-ips"]
            argv = [strace, "-ff", "-qq", "-e", "trace=file,network,process", "-o", trace, *server_argv]
            # A minimal environment, as in a sandbox: no PYTHON* from the caller, HOME empty.
            env = common.server_env(server, {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8"})
            try:
                notes = drive(server, argv, env, repository, port)
                report = analyse(trace, venv, home, repository)
            finally:
                if repository:
                    shutil.rmtree(repository, ignore_errors=True)
            extra = " ".join(f"{k}={v}" for k, v in common.SERVER_ENV.get(server, {}).items())
            print(f"== {server}: {extra + ' ' if extra else ''}{' '.join(server_argv)}")
            for note in notes:
                print(f"   call {note}")
            show("opened (exists)", report["found"])
            show("looked for, missing", report["missing"])
            print(f"   written/created/removed: {report['writes'] or 'nothing'}")
            print(f"   executed: {report['execs']}")
            print(f"   network calls: {report['network'] or 'none'}")
            if report["cwd_relative"]:
                print(f"   relative paths: {report['cwd_relative'][:10]}")
            sys.stdout.flush()
    finally:
        page.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
