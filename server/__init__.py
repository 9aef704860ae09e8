"""bugdrill's command line and its MCP server (app.py; the tools are in tools/)."""
