#!/usr/bin/env python3
"""Warm tools/call latency against mcp-server-time: one client and one server process, kept warm.

    .build/pydeps/mcp/bin/python3 tools/mcp-probe/latency.py [--calls 500] [--warmup 20]
        [--client sdk|raw] [--mode legacy|auto|2026-07-28] [--wrap 'PREFIX ARGS'] [--json FILE]

--client sdk (default): the official client, `mcp.Client(StdioServerParameters(...), mode=...)`,
  timing `await client.call_tool("get_current_time", {"timezone": "UTC"})`.
--client raw: newline-delimited JSON-RPC written and read synchronously by this script (the
  handshake, then one tools/call at a time; --mode 2026-07-28 sends enveloped calls with no
  handshake), so the client's own cost is nearly nil and what is left is the server and the pipes.
--wrap puts a command in front of the server's command line, e.g. to run the server sandboxed:
  --wrap "cordon run --policy python-tool --ro-bind $PWD/.build/pydeps/mcp --"
Each call is timed alone (time.perf_counter around it) after --warmup untimed calls, which also
cover the SDK's one-off tools/list after a session's first call. Prints p50, p95, p99, mean, min,
max in milliseconds, the time from spawn to a connected client, and the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from typing import Any

import anyio

import common
from common import MODERN_VERSION, Peer, envelope, initialize_params

ARGUMENTS = {"timezone": "UTC"}


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": round(common.percentile(samples, 50), 3),
        "p95": round(common.percentile(samples, 95), 3),
        "p99": round(common.percentile(samples, 99), 3),
        "mean": round(statistics.fmean(samples), 3),
        "min": round(min(samples), 3),
        "max": round(max(samples), 3),
    }


async def sdk(argv: list[str], mode: str, calls: int, warmup: int) -> tuple[list[float], float]:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    started = time.perf_counter()
    async with Client(StdioServerParameters(command=argv[0], args=argv[1:]), mode=mode) as client:
        connected = (time.perf_counter() - started) * 1000
        for _ in range(warmup):
            await client.call_tool("get_current_time", ARGUMENTS)
        samples = []
        for _ in range(calls):
            t0 = time.perf_counter()
            result = await client.call_tool("get_current_time", ARGUMENTS)
            samples.append((time.perf_counter() - t0) * 1000)
            if result.is_error:
                raise RuntimeError(f"get_current_time failed: {result.content}")
    return samples, connected


def raw(argv: list[str], mode: str, calls: int, warmup: int) -> tuple[list[float], float]:
    modern = mode == MODERN_VERSION
    params = {"name": "get_current_time", "arguments": ARGUMENTS}
    if modern:
        params = envelope(params=params)
    with Peer(argv) as peer:
        if modern:
            peer.request("tools/list", envelope(), timeout=60)
        else:
            peer.request("initialize", initialize_params(), timeout=60)
            peer.notify("notifications/initialized")
        connected = (time.perf_counter() - peer.started) * 1000
        for _ in range(warmup):
            peer.request("tools/call", params)
        samples = []
        for _ in range(calls):
            t0 = time.perf_counter()
            reply = peer.request("tools/call", params)
            samples.append((time.perf_counter() - t0) * 1000)
            if "error" in reply or reply["result"].get("isError"):
                raise RuntimeError(f"get_current_time failed: {reply}")
    return samples, connected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--client", choices=("sdk", "raw"), default="sdk")
    parser.add_argument("--mode", default="legacy", help="legacy (2025-11-25), auto, or 2026-07-28")
    parser.add_argument("--wrap", default="", help="a command put in front of the server's (shell words)")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    if args.client == "raw" and args.mode == "auto":
        parser.error("--client raw speaks legacy or 2026-07-28, not auto")
    argv = shlex.split(args.wrap) + common.server_argv("time")
    load_before = os.getloadavg()
    if args.client == "sdk":
        samples, connected = anyio.run(sdk, argv, args.mode, args.calls, args.warmup)
    else:
        samples, connected = raw(argv, args.mode, args.calls, args.warmup)
    result: dict[str, Any] = {
        "client": args.client, "mode": args.mode, "calls": args.calls, "warmup": args.warmup,
        "command": shlex.join(argv), "connected_ms": round(connected, 1), "latency_ms": summary(samples),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    }
    s = result["latency_ms"]
    print(f"{args.client} client, mode {args.mode}, {args.calls} calls after {args.warmup} warm-up: "
          f"p50 {s['p50']} ms, p95 {s['p95']} ms, p99 {s['p99']} ms, mean {s['mean']} ms, "
          f"min {s['min']} ms, max {s['max']} ms; connected in {result['connected_ms']} ms; "
          f"load {load_before[0]:.2f} -> {result['loadavg_after'][0]:.2f}")
    print(f"  server: {result['command']}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
