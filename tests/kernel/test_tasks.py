"""stop_task: cancel a background task and wait for its end."""

from __future__ import annotations

import asyncio

from truckllm._internal.tasks import stop_task


async def test_a_running_task_is_cancelled_and_awaited_to_its_end() -> None:
    cleaned = asyncio.Event()

    async def worker() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits still runs to its end
            cleaned.set()

    task = asyncio.ensure_future(worker())
    await asyncio.sleep(0)
    await stop_task(task)
    assert task.cancelled() and cleaned.is_set()


async def test_none_and_finished_tasks_are_fine() -> None:
    await stop_task(None)
    done = asyncio.ensure_future(asyncio.sleep(0))
    await done
    await stop_task(done)
    assert done.done() and not done.cancelled()
