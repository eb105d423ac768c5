"""Drives `cordon mcp serve` with the official MCP client (mcp 2.3.0) and prints one JSON line
of what it saw. argv: MODE CORDON SOCKET [MANIFEST] (MODE: legacy, auto, 2026-07-28).

With MANIFEST (a path in cordond's tools/), the client then waits for the tools' list to change
(a 2026-07-28 `subscriptions/listen` stream, or the 2025-11-25 session's notification), writes a
manifest there, and lists the tools again once told."""
import json
import os
import sys

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.subscriptions import ListenNotSupportedError

NEW_TOOL = """[tool]
kind = "command"
description = "Echoes its arguments"
policy = "code"
argv = ["/usr/bin/python3", "-I", "-c", "import sys; print(sys.stdin.read(), end='')"]
input_schema = '{"type": "object", "properties": {"said": {"type": "string"}}}'
"""


def text(r):
    return "".join(getattr(c, "text", "") for c in r.content)


def add_manifest(path):
    # Root's, 0644, in place at once: what cordond reads (a half-written file is never seen).
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(NEW_TOOL)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


async def main(mode, cordon, socket, manifest=None):
    seen = {}
    changed = anyio.Event()

    async def on_message(message):
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            changed.set()

    params = StdioServerParameters(command=cordon, args=["mcp", "serve", "--socket", socket])
    async with Client(params, mode=mode, message_handler=on_message) as client:
        tools = await client.list_tools()
        seen["tools"] = sorted(t.name for t in tools.tools)
        r = await client.call_tool("time.get_current_time", {"timezone": "UTC"})
        seen["time"] = {"isError": r.is_error, "text": text(r)}
        r = await client.call_tool("python", {"code": "print(6 * 7)"})
        seen["python"] = {"isError": r.is_error, "text": text(r)}
        r = await client.call_tool("python", {"script": 1})
        seen["invalid"] = {"isError": r.is_error, "text": text(r)}
        if manifest:
            try:
                async with client.listen(tools_list_changed=True) as sub:
                    seen["listen"] = True
                    add_manifest(manifest)
                    with anyio.fail_after(20):
                        async for event in sub:
                            seen["event"] = type(event).__name__
                            break
            except ListenNotSupportedError:
                seen["listen"] = False
                add_manifest(manifest)
                with anyio.fail_after(20):
                    await changed.wait()
                seen["event"] = "notifications/tools/list_changed"
            tools = await client.list_tools()
            seen["after"] = sorted(t.name for t in tools.tools)
            r = await client.call_tool("echo", {"said": "hi"})
            seen["echo"] = {"isError": r.is_error, "text": text(r)}
    print(json.dumps(seen))


anyio.run(main, *sys.argv[1:5])
