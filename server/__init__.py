"""poolpilot: the MCP server (app factory, CLI, config, guard, audit, transports, upstream HTTP, sandbox)."""
