"""Drives `cordon mcp serve` with the official MCP client (mcp 2.3.0) and prints one JSON line
of what it saw. argv: MODE CORDON SOCKET (MODE: legacy, auto, 2026-07-28)."""
import json
import sys

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters


async def main(mode, cordon, socket):
    seen = {}
    params = StdioServerParameters(command=cordon, args=["mcp", "serve", "--socket", socket])
    async with Client(params, mode=mode) as client:
        tools = await client.list_tools()
        seen["tools"] = sorted(t.name for t in tools.tools)
        r = await client.call_tool("time.get_current_time", {"timezone": "UTC"})
        seen["time"] = {"isError": r.is_error, "text": "".join(getattr(c, "text", "") for c in r.content)}
        r = await client.call_tool("python", {"code": "print(6 * 7)"})
        seen["python"] = {"isError": r.is_error, "text": "".join(getattr(c, "text", "") for c in r.content)}
        r = await client.call_tool("python", {"script": 1})
        seen["invalid"] = {"isError": r.is_error, "text": "".join(getattr(c, "text", "") for c in r.content)}
    print(json.dumps(seen))


anyio.run(main, *sys.argv[1:4])
