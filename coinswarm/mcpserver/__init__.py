"""The MCP server: coinswarm's research and paper-trading tools for an assistant (``coinswarm mcp``)."""
