#!/usr/bin/env python3
"""Facts about the real MCP servers over stdio, from raw JSON-RPC (no SDK client in the way).

    .build/pydeps/mcp/bin/python3 tools/mcp-probe/probe_servers.py [--servers time,git,fetch]
        [--startup-runs 10] [--json FILE] [--wrap 'PREFIX ARGS']

For each server:
  - version (serverInfo) and tools: names, and each inputSchema cut down to its properties'
    names and types and the required ones;
  - which protocol revisions it accepts: a sequence of requests in a fresh process per case, since
    the first request fixes a connection's era (2025-11-25 handshake, or 2026-07-28 per-request
    `_meta` envelope), each answer summed up as a result or an error code and message;
  - whether it answers `ping`, before and after the handshake and on a 2026-07-28 connection;
  - start-up: from just before the process is spawned to the `initialize` response, for N fresh
    processes (median, min, max), the CPU time each run took (user + system, start to exit: less
    sensitive than wall time to a busy machine), and the RSS (VmRSS) right after that response
    and after a tools/list.

--wrap puts a command in front of each server's command line (`cordon run --policy python-tool
...  --`, say); RSS is then not read (the pid is the wrapper's). No tool is called on the fetch
server (it would reach out); the time server's get_current_time and the git server's git_status
are called once, stateless, to show a 2026-07-28 call needs no discover first.
"""
from __future__ import annotations

import argparse
import json
import resource
import shlex
import shutil
import sys
import time
from typing import Any

import common
from common import HANDSHAKE_VERSION, MODERN_VERSION, Peer, envelope, initialize_params

UNKNOWN_VERSION = "2099-01-01"


def summarize(method: str, reply: dict[str, Any]) -> str:
    if "error" in reply:
        error = reply["error"]
        data = f" data={json.dumps(error['data'], separators=(',', ':'))}" if "data" in error else ""
        return f"error {error.get('code')}: {error.get('message')}{data}"
    result = reply["result"]
    if method == "initialize":
        return f"ok protocolVersion={result.get('protocolVersion')}"
    if method == "server/discover":
        return f"ok supportedVersions={result.get('supportedVersions')}"
    if method == "tools/list":
        return f"ok tools={[t['name'] for t in result.get('tools', [])]}"
    if method == "tools/call":
        return f"ok isError={result.get('isError')}"
    return "ok " + json.dumps(result, separators=(",", ":"))[:120]


def cases(server: str, repository: str | None) -> list[tuple[str, list[tuple[str, str, dict[str, Any] | None]]]]:
    """(name, steps): each step is (kind, method, params), kind 'req' or 'note'."""
    call: list[tuple[str, str, dict[str, Any] | None]] = []
    if server == "time":
        call = [("req", "tools/call", envelope(params={"name": "get_current_time", "arguments": {"timezone": "UTC"}}))]
    elif server == "git":
        call = [("req", "tools/call", envelope(params={"name": "git_status", "arguments": {"repo_path": repository}}))]
    return [
        ("handshake 2025-11-25, then ping, then an enveloped tools/list", [
            ("req", "ping", None),
            ("req", "initialize", initialize_params(HANDSHAKE_VERSION)),
            ("note", "notifications/initialized", None),
            ("req", "ping", None),
            ("req", "tools/list", None),
            ("req", "tools/list", envelope()),
        ]),
        ("handshake offering 2024-11-05", [("req", "initialize", initialize_params("2024-11-05"))]),
        ("handshake offering 2026-07-28", [("req", "initialize", initialize_params(MODERN_VERSION))]),
        (f"handshake offering an unknown revision ({UNKNOWN_VERSION})", [("req", "initialize", initialize_params(UNKNOWN_VERSION))]),
        ("tools/list before any handshake, no envelope", [("req", "tools/list", None)]),
        ("server/discover at 2026-07-28, then ping, tools/list, initialize", [
            ("req", "server/discover", envelope()),
            ("req", "ping", None),
            ("req", "ping", envelope()),
            ("req", "tools/list", envelope()),
            ("req", "initialize", initialize_params(HANDSHAKE_VERSION)),
        ]),
        ("stateless 2026-07-28: tools/list with no discover first", [("req", "tools/list", envelope()), *call]),
        (f"server/discover at an unknown revision ({UNKNOWN_VERSION})", [("req", "server/discover", envelope(UNKNOWN_VERSION))]),
        (f"tools/list enveloped at an unknown revision ({UNKNOWN_VERSION})", [("req", "tools/list", envelope(UNKNOWN_VERSION))]),
        ("server/discover with no envelope", [("req", "server/discover", None)]),
    ]


def run_case(argv: list[str], env: dict[str, str], steps: list[tuple[str, str, dict[str, Any] | None]]) -> list[dict[str, str]]:
    out = []
    with Peer(argv, env=env) as peer:
        first = True
        for kind, method, params in steps:
            label = method + (" (enveloped)" if params and "_meta" in params else "")
            if kind == "note":
                peer.notify(method, params)
                out.append({"sent": label, "answer": "(notification)"})
                continue
            try:
                reply = peer.request(method, params, timeout=60 if first else 10)
                out.append({"sent": label, "answer": summarize(method, reply)})
            except (TimeoutError, EOFError) as error:
                out.append({"sent": label, "answer": f"no answer: {error}"})
                break
            first = False
    return out


def abbreviate_schema(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", []))
    parts = []
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type") or "|".join(p.get("type", "?") for p in prop.get("anyOf", [])) or "?"
        if kind == "array":
            kind = f"array<{prop.get('items', {}).get('type', '?')}>"
        parts.append(f"{name}{'' if name in required else '?'}: {kind}")
    return "{" + ", ".join(parts) + "}"


def startup(argv: list[str], env: dict[str, str], runs: int, read_rss: bool) -> dict[str, Any]:
    times, tools_times, rss_init, rss_tools, cpu = [], [], [], [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with Peer(argv, env=env) as peer:
            reply = peer.request("initialize", initialize_params(), timeout=60)
            ready = time.perf_counter()
            assert "result" in reply, reply
            times.append((ready - peer.started) * 1000)
            if read_rss:
                rss_init.append(common.rss_kib(peer.proc.pid))
            peer.notify("notifications/initialized")
            peer.request("tools/list")
            tools_times.append((time.perf_counter() - peer.started) * 1000)
            if read_rss:
                rss_tools.append(common.rss_kib(peer.proc.pid))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    result: dict[str, Any] = {
        "runs": runs,
        "initialize_ms": {"median": round(common.median(times), 1), "min": round(min(times), 1), "max": round(max(times), 1)},
        "initialize_then_tools_list_ms": {"median": round(common.median(tools_times), 1)},
        # CPU (user + system) of the whole child process tree that was waited for: the server's
        # start, initialize, tools/list and exit. Less sensitive to a busy machine than wall time;
        # under --wrap it is the wrapper's own, not the sandboxed server's.
        "cpu_ms": {"median": round(common.median(cpu), 1), "min": round(min(cpu), 1)},
    }
    if read_rss:
        result["rss_kib_after_initialize"] = {"median": common.median(rss_init), "min": min(rss_init), "max": max(rss_init)}
        result["rss_kib_after_tools_list"] = {"median": common.median(rss_tools)}
    return result


def probe(server: str, wrap: list[str], runs: int) -> dict[str, Any]:
    repository = common.make_git_repository() if server == "git" else None
    try:
        argv = wrap + common.server_argv(server, repository=repository)
        env = common.server_env(server)
        extra = "".join(f"{k}={v} " for k, v in common.SERVER_ENV.get(server, {}).items())
        command = extra + shlex.join(argv)
        if wrap and extra:
            command += f"   (in a sandbox the server needs {extra.strip()} in its own environment: cordon run --env)"
        report: dict[str, Any] = {"server": server, "command": command}
        with Peer(argv, env=env) as peer:
            init = peer.request("initialize", initialize_params(), timeout=60)["result"]
            peer.notify("notifications/initialized")
            tools = peer.request("tools/list")["result"]["tools"]
        report["serverInfo"] = init["serverInfo"]
        report["capabilities"] = init["capabilities"]
        report["tools"] = [{"name": t["name"], "input": abbreviate_schema(t["inputSchema"]),
                            "annotations": t.get("annotations")} for t in tools]
        report["cases"] = [{"case": name, "exchange": run_case(argv, env, steps)} for name, steps in cases(server, repository)]
        report["startup"] = startup(argv, env, runs, read_rss=not wrap)
        return report
    finally:
        if repository:
            shutil.rmtree(repository, ignore_errors=True)


def print_report(report: dict[str, Any]) -> None:
    info = report["serverInfo"]
    print(f"== {report['server']}: {info['name']} {info['version']}")
    print(f"   command: {report['command']}")
    print(f"   capabilities: {json.dumps(report['capabilities'], separators=(',', ':'))}")
    for tool in report["tools"]:
        print(f"   tool {tool['name']} {tool['input']}")
    for case in report["cases"]:
        print(f"   case: {case['case']}")
        for step in case["exchange"]:
            print(f"     {step['sent']:<28} -> {step['answer']}")
    s = report["startup"]
    line = f"   start-up to initialize response: median {s['initialize_ms']['median']} ms (min {s['initialize_ms']['min']}, max {s['initialize_ms']['max']}) over {s['runs']} runs"
    print(line + f"; to tools/list response: median {s['initialize_then_tools_list_ms']['median']} ms;"
          f" CPU per run (user+sys, start to exit): median {s['cpu_ms']['median']} ms")
    if "rss_kib_after_initialize" in s:
        r = s["rss_kib_after_initialize"]
        print(f"   RSS after initialize: median {r['median'] / 1024:.1f} MiB (min {r['min'] / 1024:.1f}, max {r['max'] / 1024:.1f});"
              f" after tools/list: {s['rss_kib_after_tools_list']['median'] / 1024:.1f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(common.SERVERS))
    parser.add_argument("--startup-runs", type=int, default=10)
    parser.add_argument("--json", help="also write the reports to this file")
    parser.add_argument("--wrap", default="", help="a command put in front of each server's (shell words)")
    args = parser.parse_args()
    reports = []
    for server in args.servers.split(","):
        report = probe(server, shlex.split(args.wrap), args.startup_runs)
        print_report(report)
        sys.stdout.flush()
        reports.append(report)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(reports, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
