"""The `serve` fixture: any number of fresh sandboxes on real loopback ports, all stopped at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.support import Sandbox, Serve, served


@pytest.fixture
def serve() -> Iterator[Serve]:
    """`serve(Sandbox(...))` -> its base URL; a fresh sandbox per call, so tests never share state."""
    with ExitStack() as stack:

        def start(sandbox: Sandbox) -> str:
            return stack.enter_context(served(sandbox))

        yield start
