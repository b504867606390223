"""Building blocks for balancing strategies (``select_provider`` implementations).

Pure functions over :class:`~truckllm.types.Candidate` lists: no I/O, no clock, randomness only
from the source passed in (``context.random``).

- :func:`tiers`: candidates grouped by ``deployment.priority``; :func:`rank_tiers`: the usual
  shape of a ranking strategy (rank each tier, adjust the first tier's lead).
- :func:`sort_by`, :func:`shuffle_ties`, :func:`jitter`: orders with stable or random ties;
  :data:`TIE_RESOLUTION`: the resolution for latencies in seconds (``1e-9``).
- :func:`effective_weight`: ``deployment.weight * key.weight * stats.weight_factor``;
  :func:`slow_start_demote`: a slow-starting candidate leads only with probability
  ``stats.weight_factor``.
- :func:`key_id`: a candidate's key as ``provider/name``; :func:`per_key`: a per-key figure read
  once per key; :func:`state_table`: a table kept in ``context.state``, pruned past
  ``2 * len(candidates) +`` :data:`PRUNE_SLACK` entries.
- :class:`RandomSource`: what strategies use of ``context.random``.
"""

from truckllm._internal.selection import PRUNE_SLACK as PRUNE_SLACK
from truckllm._internal.selection import TIE_RESOLUTION as TIE_RESOLUTION
from truckllm._internal.selection import RandomSource as RandomSource
from truckllm._internal.selection import effective_weight as effective_weight
from truckllm._internal.selection import jitter as jitter
from truckllm._internal.selection import key_id as key_id
from truckllm._internal.selection import per_key as per_key
from truckllm._internal.selection import rank_tiers as rank_tiers
from truckllm._internal.selection import shuffle_ties as shuffle_ties
from truckllm._internal.selection import slow_start_demote as slow_start_demote
from truckllm._internal.selection import sort_by as sort_by
from truckllm._internal.selection import state_table as state_table
from truckllm._internal.selection import tiers as tiers

__all__ = [
    "PRUNE_SLACK",
    "TIE_RESOLUTION",
    "RandomSource",
    "effective_weight",
    "jitter",
    "key_id",
    "per_key",
    "rank_tiers",
    "shuffle_ties",
    "slow_start_demote",
    "sort_by",
    "state_table",
    "tiers",
]
