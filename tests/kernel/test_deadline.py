"""deadline(): asyncio.timeout's contract with one timer handle."""

from __future__ import annotations

import asyncio

import pytest

from truckllm._internal.deadline import deadline


async def test_a_block_that_ends_in_time_is_left_alone() -> None:
    with deadline(10):
        await asyncio.sleep(0)
    await asyncio.sleep(0)  # no late cancellation reaches the task after the block
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_an_expired_block_raises_timeout_error_and_the_task_goes_on() -> None:
    with pytest.raises(TimeoutError), deadline(0.001):
        await asyncio.Event().wait()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # still runnable: the cancellation was consumed


async def test_a_cancellation_from_outside_is_not_turned_into_a_timeout() -> None:
    entered = asyncio.Event()

    async def guarded() -> None:
        with deadline(10):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.ensure_future(guarded())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_outside_cancellation_racing_the_expiry_still_propagates() -> None:
    held: list[deadline] = []
    entered = asyncio.Event()

    async def guarded() -> None:
        with deadline(10) as limit:
            held.append(limit)
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.ensure_future(guarded())
    await entered.wait()
    held[0]._expire()  # the timer fires ...
    task.cancel()  # ... in the same loop turn as a cancellation from outside
    with pytest.raises(asyncio.CancelledError):
        await task


def test_outside_a_task_is_an_error() -> None:
    with pytest.raises(RuntimeError), deadline(1):
        pass
