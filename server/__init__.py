"""bugdrill's command line and (soon) its MCP server."""
