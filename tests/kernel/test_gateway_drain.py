"""Stopping the gateway waits for the requests in flight (up to the grace), then goes on."""

from __future__ import annotations

import asyncio

from truckllm._internal.gateway import Gateway

CONFIG = """
providers:
  demo: {type: mock}
models:
  demo: {deployments: [{provider: demo, model: echo}]}
"""


async def _yield(times: int = 20) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


def test_stop_waits_until_the_last_request_in_flight_leaves() -> None:
    async def run() -> None:
        gateway = Gateway("<t>", config_text=CONFIG, watch_interval=0)
        await gateway.start()
        gateway.enter()
        gateway.enter()
        stopping = asyncio.get_running_loop().create_task(gateway.stop(grace=60))
        await _yield()
        assert not stopping.done() and gateway.draining
        gateway.leave()
        await _yield()
        assert not stopping.done()  # one request is still in flight
        gateway.enter()  # one more starts while draining
        gateway.leave()
        await _yield()
        assert not stopping.done()
        gateway.leave()
        await asyncio.wait_for(stopping, 60)
        assert gateway.in_flight == 0 and not gateway.started

    asyncio.run(run())


def test_stop_with_nothing_in_flight_does_not_wait() -> None:
    async def run() -> None:
        gateway = Gateway("<t>", config_text=CONFIG, watch_interval=0)
        await gateway.start()
        gateway.enter()
        gateway.leave()
        gateway.leave()  # an extra leave never makes in_flight negative
        assert gateway.in_flight == 0
        await asyncio.wait_for(gateway.stop(grace=60), 60)
        assert not gateway.started

    asyncio.run(run())
