"""Progress bars for compiles that take a while (tqdm, shown only once the work has lasted
``config.PROGRESS_DELAY_SECONDS``, so the common sub-second compile prints nothing).

``OUTLINES_CORE_PROGRESS=0`` turns them off (servers, CI logs); without tqdm installed they are no-ops.
Callers update in chunks (every few hundred units), so the bar costs nothing measurable on the hot loop.
"""

from __future__ import annotations

import os
import time

from . import config


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc) -> None:
        pass


class _LazyBar:
    """Counts silently and opens a tqdm bar only once the work has lasted the delay: creating one costs
    about 0.1 ms, a tenth of a small regex's whole compile."""

    def __init__(self, description: str, unit: str, total: int | None) -> None:
        self._arguments = {"desc": description, "unit": unit, "total": total, "leave": False, "mininterval": 0.5}
        self._started = time.perf_counter()
        self._count = 0
        self._bar = None

    def update(self, n: int = 1) -> None:
        self._count += n
        if self._bar is not None:
            self._bar.update(n)
        elif time.perf_counter() - self._started >= config.PROGRESS_DELAY_SECONDS:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self._started = float("inf")  # never try again
                return
            self._bar = tqdm(initial=self._count, **self._arguments)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "_LazyBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(description: str, unit: str, total: int | None = None):
    """A context-managed bar with ``update(n)``; silent when disabled, when tqdm is missing, or until the
    work has lasted ``config.PROGRESS_DELAY_SECONDS``."""
    if os.environ.get("OUTLINES_CORE_PROGRESS", "1").strip().lower() in ("0", "false", "no", "off"):
        return _Silent()
    return _LazyBar(description, unit, total)
