"""The floor for `benchmarks/run.py`: a bare hello-world server on the same `mcp` SDK.

Its `hello` tool does no work, so a call to it measures the SDK and transport alone (the "no-op" baseline).
`python benchmarks/hello_server.py` serves stdio with that one tool; `--http PORT` serves streamable HTTP on
127.0.0.1:PORT and adds `wait`, which sleeps as long as the concurrency phase's injected upstream latency before
answering: the bare SDK under the same 50 ms per call, with no upstream to pay for.
"""

import sys

import anyio
from mcp.server.mcpserver import MCPServer

WAIT_S = 0.05  # the concurrency phase's `--fault latency:50ms`

app = MCPServer("hello")


@app.tool()
def hello(name: str = "world") -> str:
    """Say hello."""
    return f"Hello, {name}!"


async def wait(name: str = "world") -> str:
    """Wait 50 ms, as a read waits for its upstream, then say hello."""
    await anyio.sleep(WAIT_S)
    return f"Hello, {name}!"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        app.add_tool(wait)
        app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        app.run()
