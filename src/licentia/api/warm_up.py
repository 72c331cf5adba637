"""What a server prepares in a worker thread once it serves, so that no request waits for it on the event loop.

- The console's templates (`console.views.compile_templates`): compiled on a page's first view instead, each took
  the loop for up to 30 ms.
- The modules a request imports the first time it needs them, not at start: anyio's asyncio backend, which Starlette
  imports at the first answer it streams or work it hands to a thread (a console page, a CSV export). Imported on
  the loop, that was ~20 modules in one turn: 57 and 66 ms with a 300k site's clients waiting (`bench/scale.py`,
  a 2-core machine running about three times slower than usual).

In the thread, an import holds the interpreter a switch interval (5 ms) at a time, so the loop keeps answering.
What the process does once that is done (`licentia serve` freezes what start-up made: `cli.serving`) runs after it,
in the same thread.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from licentia.console.views import compile_templates

IMPORTED_ON_FIRST_USE = ("anyio._backends._asyncio",)


def warm_up(then: Callable[[], None] | None = None) -> int:
    """Compile the console's templates and import the modules requests import on first use, then call `then`.
    Returns how many templates were compiled."""
    compiled = compile_templates()
    for name in IMPORTED_ON_FIRST_USE:
        importlib.import_module(name)
    if then is not None:
        then()
    return compiled
