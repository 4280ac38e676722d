"""Progress bars for compiles that take a while (tqdm, shown only once the work has lasted
``config.PROGRESS_DELAY_SECONDS``, so the common sub-second compile prints nothing).

``OUTLINES_CORE_PROGRESS=0`` turns them off (servers, CI logs); without tqdm installed they are no-ops.
Callers update in chunks (every few hundred units), so the bar costs nothing measurable on the hot loop.
"""

from __future__ import annotations

import os

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


def progress(description: str, unit: str, total: int | None = None):
    """A context-managed bar with ``update(n)``; silent when disabled or tqdm is missing."""
    if os.environ.get("OUTLINES_CORE_PROGRESS", "1").strip().lower() in ("0", "false", "no", "off"):
        return _Silent()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Silent()
    return tqdm(
        total=total, desc=description, unit=unit, leave=False,
        delay=config.PROGRESS_DELAY_SECONDS, mininterval=0.5,
    )
