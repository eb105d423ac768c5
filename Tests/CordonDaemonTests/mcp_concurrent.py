"""Drives `cordon mcp serve` with the official MCP client (mcp 2.3.0): a slow `python` call, and
while it runs, quick `time.get_current_time` calls; then ten calls in a row. Prints one JSON line
of what it saw. argv: CORDON SOCKET [MODE] (MODE: legacy, 2026-07-28, auto; default legacy)."""
import json
import sys
import time

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters


def text(r):
    return "".join(getattr(c, "text", "") for c in r.content)


async def main(cordon, socket, mode="legacy"):
    seen = {"quick": []}
    params = StdioServerParameters(command=cordon, args=["mcp", "serve", "--socket", socket])
    async with Client(params, mode=mode) as client:
        await client.call_tool("time.get_current_time", {"timezone": "UTC"})
        t0 = time.monotonic()

        async def slow():
            r = await client.call_tool("python", {"code": "import time; time.sleep(3); print('slept')"})
            seen["slow"] = {"isError": r.is_error, "text": text(r), "ended": time.monotonic() - t0}

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow)
            await anyio.sleep(0.3)
            for _ in range(3):
                r = await client.call_tool("time.get_current_time", {"timezone": "UTC"})
                seen["quick"].append({"isError": r.is_error, "ended": time.monotonic() - t0})
        row = []
        for _ in range(10):
            r = await client.call_tool("time.get_current_time", {"timezone": "UTC"})
            row.append(not r.is_error and "UTC" in text(r))
        seen["row"] = row
    print(json.dumps(seen))


anyio.run(main, *sys.argv[1:4])
