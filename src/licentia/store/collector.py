"""Pausing Python's cycle collector while a large state is built, or while a forked child copies it.

None of the state's records can be in a reference cycle; the collector's passes over them only cost time
(each pass walks the large lists being built) or memory (walking objects after a fork copies every page they
are on, which the child then no longer shares). Pausing it, rather than freezing objects and unfreezing them
after, leaves alone what `licentia serve` froze when it loaded its state.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The collector does not run inside; it runs again after if it did before (pauses nest)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
