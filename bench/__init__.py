"""TruckLLM benchmarks: ``python -m bench`` (the load benchmark) and pytest-benchmark micro-benchmarks.

Modules: :mod:`bench.run` (the lanes and the report), :mod:`bench.loadgen` (the open-loop load
generator), :mod:`bench.upstream` (the lean fake upstream), :mod:`bench.procs` (processes, CPU
pinning, RSS), :mod:`bench.report` (percentiles and tables). ``make bench`` runs both.
"""
