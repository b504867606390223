"""A lean ``asyncio.timeout`` for the request path: one timer handle per use, nothing else."""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["deadline"]


class deadline:
    """``with deadline(seconds):`` cancels the block's task after ``seconds`` and raises
    :class:`TimeoutError` in its place, like ``async with asyncio.timeout(seconds)``.

    The timer
    cancels the task, and ``Task.uncancel`` tells this cancellation from any other (a client
    disconnect, a shutdown), which propagates untouched (the same rule as ``asyncio.timeout``).
    """

    __slots__ = ("_cancelling", "_delay", "_expired", "_handle", "_task")

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._expired = False
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0

    def __enter__(self) -> deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("deadline() is used outside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._handle = asyncio.get_running_loop().call_later(self._delay, self._expire)
        return self

    def _expire(self) -> None:
        self._expired = True
        assert self._task is not None
        self._task.cancel()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._handle is not None and self._task is not None
        self._handle.cancel()
        if self._expired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc
