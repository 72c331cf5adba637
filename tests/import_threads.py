"""Which thread imported each module, in a fresh Python process (this one imported everything long ago)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap

WATCH = textwrap.dedent(
    """
    import sys, threading

    imported_on = {}  # module name -> the name of the thread that imported it

    class _Watch:
        def find_spec(self, name, path=None, target=None):
            if name not in sys.modules:
                imported_on.setdefault(name, threading.current_thread().name)
            return None

    def watch_imports():
        sys.meta_path.insert(0, _Watch())
    """
)
"""Script text defining `imported_on` and `watch_imports()`: put it before a script's own text."""


def last_line_printed(script: str) -> str:
    """Run `WATCH` and then `script` (dedented) in a new interpreter; the last line it printed."""
    done = subprocess.run([sys.executable, "-c", WATCH + textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=120, check=False, cwd=tempfile.mkdtemp())
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]
