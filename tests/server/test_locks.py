"""TargetLocks: one writer per key, overlapping key sets never deadlock, nothing is left behind."""

from __future__ import annotations

import anyio

from poolpilot.server.kernel.locks import TargetLocks


async def test_locks_serialise_writers_of_one_key() -> None:
    locks = TargetLocks()
    inside = 0
    most = 0

    async def writer() -> None:
        nonlocal inside, most
        async with locks.hold("pool:a"):
            inside += 1
            most = max(most, inside)
            await anyio.lowlevel.checkpoint()
            await anyio.lowlevel.checkpoint()
            inside -= 1

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(writer)
    assert most == 1
    assert locks.held() == 0


async def test_locks_of_other_keys_run_together() -> None:
    locks = TargetLocks()
    both = anyio.Event()
    entered = 0

    async def writer(key: str) -> None:
        nonlocal entered
        async with locks.hold(key):
            entered += 1
            if entered == 2:
                both.set()
            await both.wait()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer, "pool:a")
            tg.start_soon(writer, "pool:b")
    assert locks.held() == 0


async def test_locks_with_overlapping_key_sets_do_not_deadlock() -> None:
    locks = TargetLocks()
    done = 0

    async def writer(keys: tuple[str, ...]) -> None:
        nonlocal done
        async with locks.hold(*keys):
            await anyio.lowlevel.checkpoint()
            done += 1

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(writer, ("b", "a"))
                tg.start_soon(writer, ("a", "b"))
    assert done == 10
    assert locks.held() == 0
