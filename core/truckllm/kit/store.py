"""The runtime-store interface (``register_stores``): what the gateway keeps beyond one process.

- :class:`Store`: what a store plugin's class implements (besides a ``store_usage`` hookimpl);
  :class:`CooldownPush`: optional, for stores shared by several processes, pushing cooldown
  marks as they happen; :class:`StateStore`: optional, opaque values with a time to live
  (a stateful dialect's stored conversations); :class:`StateCreate`: optional beside it, a value
  stored only where none is (atomic across processes).
- One request's admission: :class:`Admission` (its :class:`RateCheck` and :class:`BudgetCheck`
  list), answered by a :class:`Decision`, corrected later by a :class:`Settlement`.
- Cooldowns shared by every process: :class:`CooldownMark`, :class:`CooldownClear`.
- Usage: :class:`UsageQuery` (grouped by some of :data:`GroupBy`), answered by a
  :class:`UsageReport` of :class:`UsageRow`; :data:`USAGE_FIELDS`: the grouping fields, in
  bucket-key order; :data:`USAGE_TOTALS`: a row's totals; :data:`USAGE_COUNTERS`: those that are
  counts (every total but ``cost_usd``); :data:`DEFAULT_USAGE_RETENTION`: seconds a day's usage
  is kept by default (400 days).
- :func:`usage_key`, :func:`usage_groups`: the grouping values of one record;
  :func:`usage_keys`: every usage row one record counts in (its own, and one per tag:
  :data:`NO_TAG` / :data:`TAGGED` mark the own row's ``tag``; :func:`is_tag_row` tells them
  apart); :func:`utc_day`: the UTC date of a unix time; :func:`budget_window`: the id of the
  budget window of a :data:`Period` (``day``, ``week``, ``month``, ``total``) containing a unix time.
"""

from truckllm._internal.store import DEFAULT_USAGE_RETENTION as DEFAULT_USAGE_RETENTION
from truckllm._internal.store import NO_TAG as NO_TAG
from truckllm._internal.store import TAGGED as TAGGED
from truckllm._internal.store import USAGE_COUNTERS as USAGE_COUNTERS
from truckllm._internal.store import USAGE_FIELDS as USAGE_FIELDS
from truckllm._internal.store import USAGE_TOTALS as USAGE_TOTALS
from truckllm._internal.store import Admission as Admission
from truckllm._internal.store import BudgetCheck as BudgetCheck
from truckllm._internal.store import CooldownClear as CooldownClear
from truckllm._internal.store import CooldownMark as CooldownMark
from truckllm._internal.store import CooldownPush as CooldownPush
from truckllm._internal.store import Decision as Decision
from truckllm._internal.store import GroupBy as GroupBy
from truckllm._internal.store import Period as Period
from truckllm._internal.store import RateCheck as RateCheck
from truckllm._internal.store import Settlement as Settlement
from truckllm._internal.store import StateCreate as StateCreate
from truckllm._internal.store import StateStore as StateStore
from truckllm._internal.store import Store as Store
from truckllm._internal.store import UsageQuery as UsageQuery
from truckllm._internal.store import UsageReport as UsageReport
from truckllm._internal.store import UsageRow as UsageRow
from truckllm._internal.store import budget_window as budget_window
from truckllm._internal.store import is_tag_row as is_tag_row
from truckllm._internal.store import usage_groups as usage_groups
from truckllm._internal.store import usage_key as usage_key
from truckllm._internal.store import usage_keys as usage_keys
from truckllm._internal.store import utc_day as utc_day

__all__ = [
    "DEFAULT_USAGE_RETENTION",
    "NO_TAG",
    "TAGGED",
    "USAGE_COUNTERS",
    "USAGE_FIELDS",
    "USAGE_TOTALS",
    "Admission",
    "BudgetCheck",
    "CooldownClear",
    "CooldownMark",
    "CooldownPush",
    "Decision",
    "GroupBy",
    "Period",
    "RateCheck",
    "Settlement",
    "StateCreate",
    "StateStore",
    "Store",
    "UsageQuery",
    "UsageReport",
    "UsageRow",
    "budget_window",
    "is_tag_row",
    "usage_groups",
    "usage_key",
    "usage_keys",
    "utc_day",
]
