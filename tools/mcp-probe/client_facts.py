#!/usr/bin/env python3
"""What the official Python client (`mcp`, the pinned 2.3.0) does on the wire over stdio.

    .build/pydeps/mcp/bin/python3 tools/mcp-probe/client_facts.py [--modes legacy,auto,2026-07-28]
        [--json FILE] [--idle SECONDS]

The protocol revision is chosen by `mcp.Client(server, mode=...)`:
  mode="legacy"      the 2025-11-25 `initialize` handshake (then `notifications/initialized`);
  mode="auto"        (the default) `server/discover` at 2026-07-28 first, falling back to the
                     handshake when the server does not answer it as a 2026-07-28 server;
  mode="2026-07-28"  no opening exchange at all: every request carries the per-request `_meta`
                     envelope (protocolVersion, clientInfo, clientCapabilities).
A stdio server is given as `mcp.client.stdio.StdioServerParameters(command=..., args=[...])`.

For each mode, through tools/mcp-probe/stdio_tap.py (which records every line each way):
  1. against mcp-server-time: connect, call get_current_time once, stay idle --idle seconds; the
     lines the client sent, in order, with the server's answers (what it sends first, whether it
     pings or sends anything else on its own);
  2. `client.send_ping()`: answered, or the error;
  3. against tools/mcp-probe/list_changed_server.py: list_tools, call `change` (the server adds
     a tool and sends `notifications/tools/list_changed`), wait, list_tools again: whether the
     notification reached `message_handler`, whether the client sent anything by itself in
     reaction, and whether the second list_tools went to the server or came from the client's
     cache; on 2026-07-28 connections also `client.listen(tools_list_changed=True)`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import anyio

import common

from mcp import Client  # noqa: E402  (after common: the venv's SDK)
from mcp.client.stdio import StdioServerParameters

HERE = Path(__file__).resolve().parent


def tapped(log: str, argv: list[str]) -> StdioServerParameters:
    command = [common.PYTHON, common.TAP, "--log", log, "--", *argv]
    return StdioServerParameters(command=command[0], args=command[1:])


def read_log(log: str) -> list[dict[str, Any]]:
    if not os.path.exists(log):  # the tap has not started yet (mode="2026-07-28" sends nothing first)
        return []
    with open(log) as lines:
        return [json.loads(line) for line in lines]


def method_of(entry: dict[str, Any]) -> str:
    message = entry.get("json") or {}
    if "method" in message:
        return message["method"]
    return "response" if "result" in message else "error" if "error" in message else "?"


async def first_messages(mode: str, log: str, idle: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with Client(tapped(log, common.server_argv("time")), mode=mode) as client:
        out["protocol_version"] = client.protocol_version
        out["server_info"] = client.server_info.model_dump(exclude_none=True) if client.server_info else None
        connected_at = len(read_log(log))
        result = await client.call_tool("get_current_time", {"timezone": "UTC"})
        out["call_ok"] = not result.is_error
        before_idle = len(read_log(log))
        await anyio.sleep(idle)
        idle_lines = read_log(log)[before_idle:]
        out["sent_while_idle"] = [e["line"] for e in idle_lines if e["dir"] == "c2s"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                await client.send_ping()
                out["ping"] = "answered {}"
            except Exception as error:  # noqa: BLE001 - the error is the fact
                out["ping"] = f"{type(error).__name__}: {error}"
    entries = read_log(log)
    out["opening"] = [f"{e['dir']} {e['line']}" for e in entries[:connected_at]]
    out["exchange"] = [f"{e['dir']} {e['line']}" for e in entries]
    out["ping_sent"] = [e["line"] for e in entries if e["dir"] == "c2s" and method_of(e) == "ping"]
    return out


async def list_changed(mode: str, log: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    seen: list[str] = []

    async def on_message(message: Any) -> None:
        seen.append(type(message).__name__ + (f" {message.method}" if hasattr(message, "method") else ""))

    server = [common.PYTHON, str(HERE / "list_changed_server.py")]
    async with Client(tapped(log, server), mode=mode, message_handler=on_message) as client:
        out["protocol_version"] = client.protocol_version
        caps = client.server_capabilities
        out["server_tools_listChanged"] = bool(caps.tools and caps.tools.list_changed)
        first = await client.list_tools()
        mark = len(read_log(log))
        changed = await client.call_tool("change", {})
        out["change_result"] = changed.content[0].text if changed.content else None
        await anyio.sleep(1.0)
        after_notification = read_log(log)[mark:]
        out["server_sent"] = [e["line"] for e in after_notification if e["dir"] == "s2c" and "method" in (e["json"] or {})]
        out["client_sent_by_itself"] = [e["line"] for e in after_notification if e["dir"] == "c2s"
                                        and method_of(e) not in ("tools/call",)]
        mark = len(read_log(log))
        second = await client.list_tools()
        out["second_list_tools_on_wire"] = any(e["dir"] == "c2s" and method_of(e) == "tools/list" for e in read_log(log)[mark:])
        out["tools_before"] = [t.name for t in first.tools]
        out["tools_after"] = [t.name for t in second.tools]
        out["message_handler_saw"] = list(seen)
        if client.protocol_version == common.MODERN_VERSION:
            mark = len(read_log(log))
            try:
                with anyio.fail_after(10):
                    async with client.listen(tools_list_changed=True) as subscription:
                        out["listen_honored"] = subscription.honored.model_dump(exclude_none=True, by_alias=True) if subscription.honored else None
                        await client.call_tool("change", {})
                        with anyio.fail_after(5):
                            async for event in subscription:
                                out["listen_event"] = type(event).__name__
                                break
            except Exception as error:  # noqa: BLE001 - the error is the fact
                out["listen_error"] = f"{type(error).__name__}: {error}"
            # The listen request, its acknowledgement, the change call and the tagged notification.
            out["listen_exchange"] = [f"{e['dir']} {e['line']}" for e in read_log(log)[mark:]
                                      if method_of(e) not in ("response", "tools/call", "tools/list")]
            out["message_handler_saw_during_listen"] = seen[len(out["message_handler_saw"]):]
    return out


async def run(modes: list[str], idle: float) -> list[dict[str, Any]]:
    reports = []
    with tempfile.TemporaryDirectory(prefix="mcp-client-facts-") as scratch:
        for mode in modes:
            report: dict[str, Any] = {"mode": mode}
            report["time_server"] = await first_messages(mode, os.path.join(scratch, f"time-{mode}.jsonl"), idle)
            report["list_changed"] = await list_changed(mode, os.path.join(scratch, f"lc-{mode}.jsonl"))
            reports.append(report)
    return reports


def print_report(report: dict[str, Any]) -> None:
    t, lc = report["time_server"], report["list_changed"]
    print(f"== mode={report['mode']!r}: negotiated {t['protocol_version']}, serverInfo {t['server_info']}")
    print("   opening exchange (before Client's __aenter__ returned):")
    for line in t["opening"] or ["(nothing: the client sent nothing before the first call)"]:
        print(f"     {line}")
    print("   whole exchange with one get_current_time call:")
    for line in t["exchange"]:
        print(f"     {line[:400]}{' ...' if len(line) > 400 else ''}")
    print(f"   sent by itself while idle: {t['sent_while_idle'] or 'nothing'}")
    print(f"   send_ping(): {t['ping']}; ping lines sent: {t['ping_sent']}")
    print(f"   list_changed server (tools.listChanged={lc['server_tools_listChanged']}, {lc['protocol_version']}):")
    print(f"     change -> {lc['change_result']}")
    print(f"     server sent: {lc['server_sent']}")
    print(f"     message_handler saw (before any listen): {lc['message_handler_saw']}")
    print(f"     client sent by itself after it: {lc['client_sent_by_itself'] or 'nothing'}")
    print(f"     second list_tools went to the server: {lc['second_list_tools_on_wire']}; tools {lc['tools_before']} -> {lc['tools_after']}")
    for key in ("listen_honored", "listen_event", "message_handler_saw_during_listen", "listen_error"):
        if key in lc:
            print(f"     {key}: {lc[key]}")
    for line in lc.get("listen_exchange", []):
        print(f"     listen: {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="legacy,auto,2026-07-28")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds to stay connected and idle")
    parser.add_argument("--json", help="also write the reports to this file")
    args = parser.parse_args()
    reports = anyio.run(run, args.modes.split(","), args.idle)
    for report in reports:
        print_report(report)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(reports, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
