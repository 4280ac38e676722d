"""Output types: what users pass to ``Generator`` and how each becomes a regex.

``Regex(pattern)`` is the building block; ``to_regex(output_type)`` turns any supported output type into
the regex string the ``Index`` compiles.
"""

from __future__ import annotations

from .regex import Regex, to_regex

__all__ = ["Regex", "to_regex"]
