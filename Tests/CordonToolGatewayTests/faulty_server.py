"""A real MCP server (the official SDK's MCPServer, stdio) whose tools misbehave on purpose, for
the gateway's fault tests: hang, die mid-call, write garbage into the protocol stream, eat
memory. `ok` answers."""
import os
import sys
import time

import anyio
from mcp.server.mcpserver import MCPServer

server = MCPServer("faulty", version="1")


@server.tool(name="ok", description="Answers")
def ok(text: str) -> str:
    return f"ok: {text}"


@server.tool(name="hang", description="Never answers")
def hang() -> str:
    time.sleep(3600)
    return "late"


@server.tool(name="die", description="Exits in the middle of the call")
def die() -> str:
    sys.stderr.write("dying on purpose\n")
    sys.stderr.flush()
    os._exit(9)


@server.tool(name="garbage", description="Writes lines that are not JSON-RPC, then answers")
def garbage() -> str:
    os.write(1, b"this is not JSON\n{\"jsonrpc\": \"2.0\", \"id\": 987654, \"result\": {}}\n")
    return "after garbage"


@server.tool(name="hog", description="Allocates memory until stopped")
def hog() -> str:
    blocks = []
    while True:
        blocks.append(bytearray(16 << 20))


anyio.run(server.run_stdio_async)
