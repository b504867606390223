"""Shared fixtures for the kernel's tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_leaked_tasks() -> Iterator[None]:
    """Fail a test that leaves asyncio tasks running on the test's loop (goleak-style)."""
    yield
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    pending = [t for t in asyncio.all_tasks(loop) if not t.done() and t is not asyncio.current_task()]
    assert not pending, f"tasks left running: {pending}"
