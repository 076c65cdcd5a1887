"""The MCP server an AI assistant connects to (``coinswarm mcp``); see docs/mcp.md."""

from orchestration.mcp.server import LOOPBACK_HOSTS, build_mcp_server

__all__ = ["LOOPBACK_HOSTS", "build_mcp_server"]
