"""bench/tools.sh's measurements, with the official MCP client (mcp 2.3.0, `make pydeps`).

Usage: tools.py SOCKET CORDON BWRAP_ARGV_JSON [CALLS] [ROUNDS]

Rows, all from one run:
- warm `get_current_time` latency, p50/p95, the client calling mcp-server-time directly
  (unsandboxed) and through `cordon mcp serve` -> cordond -> the sandboxed server, in rounds
  that alternate the two (a change in the machine's load falls on both);
- the first call (cold): a fresh direct server, a fresh server under bubblewrap given the same
  kind of root, and a tool whose instance cordond has not started yet (a new user's first call
  is the same path: instances are per uid);
- calls per second from 8 concurrent clients through the gateway;
- a command-tool call (`python`, a fresh sandbox per call), p50.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "mcp-probe"))
import common  # noqa: E402

SOCKET, CORDON, BWRAP = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
CALLS = int(sys.argv[4]) if len(sys.argv) > 4 else 300
ROUNDS = int(sys.argv[5]) if len(sys.argv) > 5 else 3
ARGS = {"timezone": "UTC"}
DIRECT = common.server_argv("time")
GATEWAY = [CORDON, "mcp", "serve", "--socket", SOCKET]


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p * (len(s) - 1))))]


async def warm(argv, tool, calls):
    async with Client(StdioServerParameters(command=argv[0], args=argv[1:]), mode="legacy") as client:
        for _ in range(20):
            await client.call_tool(tool, ARGS)
        out = []
        for _ in range(calls):
            t0 = time.perf_counter()
            r = await client.call_tool(tool, ARGS)
            out.append((time.perf_counter() - t0) * 1000)
            if r.is_error:
                raise RuntimeError(f"{tool}: {r.content}")
        return out


async def first_call(argv, tool):
    t0 = time.perf_counter()
    async with Client(StdioServerParameters(command=argv[0], args=argv[1:]), mode="legacy") as client:
        r = await client.call_tool(tool, ARGS)
        if r.is_error:
            raise RuntimeError(f"{tool}: {r.content}")
        return (time.perf_counter() - t0) * 1000


async def throughput(clients, seconds):
    done = 0
    stop = time.perf_counter() + seconds

    async def one():
        nonlocal done
        async with Client(StdioServerParameters(command=GATEWAY[0], args=GATEWAY[1:]), mode="legacy") as client:
            await client.call_tool("time.get_current_time", ARGS)
            while time.perf_counter() < stop:
                await client.call_tool("time.get_current_time", ARGS)
                done += 1

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(one)
    return done / (time.perf_counter() - t0)


async def command_tool(calls):
    async with Client(StdioServerParameters(command=GATEWAY[0], args=GATEWAY[1:]), mode="legacy") as client:
        out = []
        for _ in range(calls):
            t0 = time.perf_counter()
            r = await client.call_tool("python", {"code": "print(1)"})
            out.append((time.perf_counter() - t0) * 1000)
            if r.is_error:
                raise RuntimeError(f"python: {r.content}")
        return out


async def main():
    # Cold first: cordond has not started the time server for anyone yet.
    cold_gateway = await first_call(GATEWAY, "time.get_current_time")
    cold_direct = statistics.median([await first_call(DIRECT, "get_current_time") for _ in range(5)])
    cold_bwrap = statistics.median([await first_call(BWRAP + DIRECT, "get_current_time") for _ in range(5)])
    direct, gateway = [], []
    for _ in range(ROUNDS):
        direct += await warm(DIRECT, "get_current_time", CALLS)
        gateway += await warm(GATEWAY, "time.get_current_time", CALLS)
    rate = await throughput(8, 10)
    command = await command_tool(50)
    d50, g50 = statistics.median(direct), statistics.median(gateway)
    print(f"{'warm get_current_time (ms)':40} {'p50':>8} {'p95':>8}   ({ROUNDS} rounds of {CALLS})")
    print(f"{'direct, unsandboxed':40} {d50:8.3f} {pct(direct, 0.95):8.3f}")
    print(f"{'cordon mcp serve -> cordond -> sandbox':40} {g50:8.3f} {pct(gateway, 0.95):8.3f}")
    print(f"added by Cordon at p50: {g50 - d50:.3f} ms (target <= 0.5 ms)")
    print(f"\n{'first call, cold (ms)':40} {'median':>8}")
    print(f"{'direct server (5 starts)':40} {cold_direct:8.1f}")
    print(f"{'bubblewrap, same kind of root (5 starts)':40} {cold_bwrap:8.1f}")
    print(f"{'through cordond, no instance yet (1)':40} {cold_gateway:8.1f}")
    print(f"\nthrough cordond, 8 concurrent clients: {rate:.0f} calls/s")
    print(f"command tool python (a sandbox per call), p50: {statistics.median(command):.1f} ms, p95 {pct(command, 0.95):.1f} ms")


anyio.run(main)
