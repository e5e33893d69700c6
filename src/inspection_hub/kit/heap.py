"""The startup heap is kept out of the cyclic garbage collector's full collections (D32).

A started process holds some 160,000 container objects that live as long as it does: modules,
routes, pydantic and SQLAlchemy models, the policy, the pools. Every full (generation 2)
collection walks all of them, about 100 ms on these machines, and under load one happened every
few seconds: a request that waited behind it took ~100 ms instead of ~5 ms. Frozen, they are
skipped; objects made afterwards are collected as before, and reference counting still frees a
frozen object that is no longer referenced.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def frozen_startup_heap(enabled: bool = True) -> Iterator[None]:
    """Collect once, then freeze every object alive now (``gc.freeze``) for the body's duration;
    unfrozen again on exit, so a process that starts and stops apps (the tests) keeps no cycle
    frozen past its app. The freeze is process-wide: the last app to stop unfreezes."""
    if not enabled:
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
