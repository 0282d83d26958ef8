"""The sandbox's listening socket names TCP, so asyncio turns Nagle off on every connection it accepts (issue 23)."""

from __future__ import annotations

import socket

from poolpilot.server.shell.sandboxcmd import _bind
from tests.support import free_port


def test_sandbox_socket_names_tcp_so_accepted_connections_get_nodelay() -> None:
    sock = _bind("127.0.0.1", free_port())
    try:
        # asyncio's transport sets TCP_NODELAY only when proto is IPPROTO_TCP; without it, an answer written as
        # headers then body waits for the client's delayed ACK (~40 ms per request on a kept-alive connection).
        assert sock.proto == socket.IPPROTO_TCP
        sock.listen()
        with socket.create_connection(sock.getsockname()[:2]):
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
