"""Background tasks of stores and loggers.

- :func:`stop_task`: cancel a task (if any) and wait until it has finished, without re-raising
  its cancellation: the one shutdown step every long-lived worker task needs.
"""

from truckllm._internal.tasks import stop_task as stop_task

__all__ = ["stop_task"]
