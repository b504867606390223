"""The store algorithms in one process: GCRA rate limits, budget reservations, cooldowns, usage.

The memory store is a :class:`LocalState`; the file store one plus an SQLite file; the Redis and
HTTP stores answer from one while their backend is unreachable. A third-party store builds on the
same pieces:

- :class:`LocalState`: rate limits, budgets, cooldowns and usage in this process, with an
  injectable clock; :class:`LocalStore`: the :class:`~truckllm.kit.store.Store` interface over
  one; :class:`UsageBuckets`: usage totals per group, and queries over them.
- :func:`gcra` and :class:`GcraResult`: one GCRA check; :class:`RateState`,
  :class:`BudgetState`: one rate key's and one budget window's persisted state.
- :func:`check_admission`: refuse checks no store can answer; :func:`sane_decision`: a remote
  store's decision clamped to what the admission allows; :func:`settled_cost`: what a settled
  reservation adds to the spent total; :func:`check_retention`: validate a ``usage_retention``.
- :func:`window_end`, :func:`window_close`: when a budget window ends.
- :class:`Outage`: whether a store's shared backend is reachable (warns once per outage);
  :class:`StoreUnavailable`: raised by queries that have no local fallback.
- :data:`Clock`: a source of unix time in seconds (``Callable[[], float]``).
- :data:`EPSILON`: slack in seconds for GCRA comparisons; :data:`RESERVATION_TTL`: seconds after
  which a reservation never settled counts as spent; :data:`WINDOW_KEEP`: seconds a budget
  window's totals outlive the window; :data:`GROUP_FIELDS`: the fields usage is aggregated by,
  in bucket-key order.
"""

from truckllm._internal.localstate import EPSILON as EPSILON
from truckllm._internal.localstate import GROUP_FIELDS as GROUP_FIELDS
from truckllm._internal.localstate import RESERVATION_TTL as RESERVATION_TTL
from truckllm._internal.localstate import WINDOW_KEEP as WINDOW_KEEP
from truckllm._internal.localstate import BudgetState as BudgetState
from truckllm._internal.localstate import Clock as Clock
from truckllm._internal.localstate import GcraResult as GcraResult
from truckllm._internal.localstate import LocalState as LocalState
from truckllm._internal.localstate import LocalStore as LocalStore
from truckllm._internal.localstate import Outage as Outage
from truckllm._internal.localstate import RateState as RateState
from truckllm._internal.localstate import StoreUnavailable as StoreUnavailable
from truckllm._internal.localstate import UsageBuckets as UsageBuckets
from truckllm._internal.localstate import check_admission as check_admission
from truckllm._internal.localstate import check_retention as check_retention
from truckllm._internal.localstate import gcra as gcra
from truckllm._internal.localstate import sane_decision as sane_decision
from truckllm._internal.localstate import settled_cost as settled_cost
from truckllm._internal.localstate import window_close as window_close
from truckllm._internal.localstate import window_end as window_end

__all__ = [
    "EPSILON",
    "GROUP_FIELDS",
    "RESERVATION_TTL",
    "WINDOW_KEEP",
    "BudgetState",
    "Clock",
    "GcraResult",
    "LocalState",
    "LocalStore",
    "Outage",
    "RateState",
    "StoreUnavailable",
    "UsageBuckets",
    "check_admission",
    "check_retention",
    "gcra",
    "sane_decision",
    "settled_cost",
    "window_close",
    "window_end",
]
