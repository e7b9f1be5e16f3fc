"""Process-wide tuning for the long-running server processes (``serve``, ``demo``).

The garbage collector: CPython runs a young-generation collection every 700 allocations of
container objects. A SIP call allocates thousands (messages, headers, transactions, timers)
and keeps about 120 of them alive for the 32 s the transactions linger (timers J, L, M), so
at a few hundred calls per second the collector walks the same young objects again and
again: about a quarter of the B2BUA's CPU (measured with ``gc.callbacks`` in an in-process
harness at 300 calls/s). A larger first threshold makes collections rarer without changing
what is collected; ``gc.freeze()`` after start-up moves the modules, the application and its
configuration out of the generations the collector walks.
"""

from __future__ import annotations

import gc


def tune_gc(threshold0: int) -> None:
    """Freeze what start-up allocated and collect the young generation every ``threshold0``
    allocations (0: leave Python's defaults)."""
    if threshold0 <= 0:
        return
    gc.collect()
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(threshold0, max(g1, 20), max(g2, 20))
