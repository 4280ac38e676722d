"""``Regex``: a user regex as an output type, with combinators to build bigger ones."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UnsupportedTypeError


@dataclass(frozen=True)
class Regex:
    """Output that fully matches ``pattern`` (the engine's dialect: Python ``re`` syntax without anchors,
    lookarounds or backreferences; ``\\d \\w \\s`` are ASCII)."""

    pattern: str

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str):
            raise TypeError(f"Regex pattern must be a str, got {type(self.pattern).__name__}")

    def __add__(self, other: "Regex | str") -> "Regex":
        """Concatenation; a plain ``str`` is taken literally."""
        return Regex(f"(?:{self.pattern})(?:{_as_pattern(other)})")

    def __radd__(self, other: str) -> "Regex":
        return Regex(f"(?:{_as_pattern(other)})(?:{self.pattern})")

    def __or__(self, other: "Regex | str") -> "Regex":
        """Alternation."""
        return Regex(f"(?:{self.pattern})|(?:{_as_pattern(other)})")

    def optional(self) -> "Regex":
        return Regex(f"(?:{self.pattern})?")

    def zero_or_more(self) -> "Regex":
        return Regex(f"(?:{self.pattern})*")

    def one_or_more(self) -> "Regex":
        return Regex(f"(?:{self.pattern})+")

    def repeat(self, min_count: int, max_count: int | None = None) -> "Regex":
        """Between ``min_count`` and ``max_count`` repetitions (unbounded when ``max_count`` is None)."""
        if min_count < 0 or (max_count is not None and max_count < min_count):
            raise ValueError(f"invalid repetition bounds {min_count}..{max_count}")
        upper = "" if max_count is None else str(max_count)
        return Regex(f"(?:{self.pattern}){{{min_count},{upper}}}")


def _as_pattern(value: "Regex | str") -> str:
    if isinstance(value, Regex):
        return value.pattern
    if isinstance(value, str):
        return re.escape(value)
    raise TypeError(f"cannot combine a Regex with {type(value).__name__}")


def to_regex(output_type) -> str:
    """The regex string of ``output_type``: a ``Regex``, a JSON Schema (``JsonSchema``, or a dict), a
    Pydantic model, a Python type, a ``Choice``, ``Literal``/``Enum``, or a function (its arguments).

    Raises
    ------
    UnsupportedTypeError
        For output types this engine cannot express as a regex (named in the message).
    SchemaError
        For JSON Schemas with keywords that cannot be honoured.
    """
    if isinstance(output_type, Regex):
        return output_type.pattern
    if isinstance(output_type, str):
        raise UnsupportedTypeError(
            f"a plain string {output_type[:40]!r} is ambiguous as an output type: wrap a regex in "
            "types.Regex(...) or a JSON Schema text in types.JsonSchema(...)"
        )
    from ..grammars import CFG

    if isinstance(output_type, CFG):
        raise UnsupportedTypeError(
            "a CFG (Lark grammar) has no regex form: it is compiled to a GrammarIndex instead "
            "(generator.index_for does this; backends that take only regexes cannot enforce it)"
        )
    from .python_types import python_type_to_regex

    return python_type_to_regex(output_type)
