#!/usr/bin/env python3
"""A stdio MCP server whose tool list changes on request, to see how a client reacts to
`notifications/tools/list_changed`. Built on the SDK's MCPServer, like the reference servers.

    .build/pydeps/mcp/bin/python3 tools/mcp-probe/list_changed_server.py

Tools: `echo(text)`, and `change()`, which adds a tool `added_N` and then announces it both ways
the SDK offers: `notifications/tools/list_changed` on the connection (what a 2025-11-25 session
gets, sent before change's own result), and a ToolsListChanged event to `subscriptions/listen`
streams (the 2026-07-28 way). It declares tools.listChanged = true.
"""
from __future__ import annotations

import itertools
import logging
import sys

from mcp.server.mcpserver import Context, MCPServer

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

server = MCPServer("probe-list-changed", version="0")
counter = itertools.count(1)


@server.tool()
def echo(text: str) -> str:
    """Returns its argument."""
    return text


@server.tool()
async def change(ctx: Context) -> str:
    """Adds a tool, then announces the new list."""
    name = f"added_{next(counter)}"

    def added() -> str:
        return name

    server.add_tool(added, name=name, description="Added by change().")
    sent = []
    try:
        await ctx.session.send_tool_list_changed()
        sent.append("notifications/tools/list_changed on the connection")
    except Exception as error:  # the era may have no connection-wide channel
        sent.append(f"connection notification failed: {type(error).__name__}: {error}")
    await ctx.notify_tools_changed()
    sent.append("ToolsListChanged to listen streams")
    return f"added {name}; " + "; ".join(sent)


def main() -> None:
    # Advertise listChanged: MCPServer derives capabilities from its options.
    original = server._lowlevel_server.create_initialization_options  # noqa: SLF001

    def with_list_changed(*args, **kwargs):
        options = original(*args, **kwargs)
        if options.capabilities.tools is not None:
            options.capabilities.tools.list_changed = True
        return options

    server._lowlevel_server.create_initialization_options = with_list_changed  # noqa: SLF001
    server.run("stdio")


if __name__ == "__main__":
    main()
