"""The floor for `benchmarks/run.py`: a bare hello-world server on the same `mcp` SDK, one tool.

Its one tool does no work, so a call to it measures the SDK and transport alone (the "no-op" baseline).
`python benchmarks/hello_server.py` serves stdio; `--http PORT` serves streamable HTTP on 127.0.0.1:PORT.
"""

import sys

from mcp.server.mcpserver import MCPServer

app = MCPServer("hello")


@app.tool()
def hello(name: str = "world") -> str:
    """Say hello."""
    return f"Hello, {name}!"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        app.run()
