"""The coinswarm MCP server: research tools, memory through the quorum, and paper (or, with
``--live`` and keys, live) orders inside hard limits — see :mod:`coinswarm.mcpserver.server`."""

from coinswarm.mcpserver.config import OrderLimits, ServerConfig
from coinswarm.mcpserver.server import CoinswarmMCP, build_server

__all__ = ["CoinswarmMCP", "OrderLimits", "ServerConfig", "build_server"]
