"""A JSON Schema ``pattern`` as a regex over the *encoded* JSON string contents.

``pattern`` constrains the decoded string, but the model writes the encoded one: characters that JSON must
escape (``"``, ``\\`` and control characters) appear as escapes. The pattern is parsed with the engine's
own parser and printed back with each character set widened to the JSON spellings of its members: the raw
character where JSON allows it, otherwise its escape in the form ``json.dumps`` writes (``\\"``, ``\\\\``,
``\\n``, ``\\t``, ``\\r``, ``\\b``, ``\\f``, ``\\u00XX`` with either case of hex digits). So a decoded string
matches the pattern exactly when its canonical encoding matches the result.

``pattern`` has search semantics in JSON Schema: unless it starts with ``^`` (ends with ``$``) any text may
come before (after) the match. As in ECMA-262, ``$`` is the end of the string (Python's ``re`` would also
accept a final newline before it). ``.`` and the class escapes take only the characters every common
validator's dialect agrees on (ECMA-262, Python's ``re`` behind jsonschema, Rust's ``regex`` behind Pydantic;
``parse(..., portable_classes=True, ecma_dot=True)``): ``\\d \\w`` are ASCII, ``\\W \\D`` ASCII too, ``\\s`` the whitespace all
three count, ``\\S`` nothing any of them counts as whitespace, ``.`` no line terminator. Anchors elsewhere,
lookarounds and backreferences are refused by the parser.
"""

from __future__ import annotations

from ..errors import RegexSyntaxError, SchemaError
from ..regex import parse
from ..regex.ast import Alternation, CharSet, Concat, Repeat

#: One character (code point) of JSON string contents in any spelling: a raw character, a short escape, a
#: ``\\u`` escape outside the surrogates, or a surrogate pair (one code point written as two escapes; lone
#: surrogates are left out, as UTF-8 cannot hold them). So ``{m,n}`` of it counts code points.
JSON_STRING_CHAR = (
    r'(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]'
    r"|\\u(?:[0-9a-cA-Ce-fE-F][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2})"
    r"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2})"
)
_SHORT_ESCAPES = {0x22: r"\\\"", 0x5C: r"\\\\", 0x08: r"\\b", 0x09: r"\\t", 0x0A: r"\\n", 0x0C: r"\\f", 0x0D: r"\\r"}
_MUST_ESCAPE = CharSet.of([(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C)])


def pattern_in_json_string(pattern: str, pointer: str = "#", min_length: int = 0, max_length: int | None = None) -> str | None:
    """The regex of JSON string contents (between the quotes) whose decoded value ``re.search``-matches
    ``pattern`` and has between ``min_length`` and ``max_length`` characters; None when no string does.

    Length bounds are honoured when they follow from the pattern (an anchored pattern whose matches all
    have admissible lengths), or when the anchored pattern is one repeated character class
    (``^[a-z]+$``: the repetition bounds are tightened); otherwise ``SchemaError`` (the intersection of a
    general pattern with a length range is not built). Raises ``SchemaError`` (pointer
    ``{pointer}/pattern``) for patterns outside the dialect."""
    if not isinstance(pattern, str):
        raise SchemaError("'pattern' must be a string", f"{pointer}/pattern")
    body = pattern
    anchored_start = body.startswith("^")
    anchored_end = body.endswith("$") and not _escaped_at(body, len(body) - 1)
    body = body[1 if anchored_start else 0 : len(body) - 1 if anchored_end else len(body)]
    try:
        tree = parse(body, portable_classes=True, ecma_dot=True)
    except RegexSyntaxError as error:
        raise SchemaError(f"'pattern' is not supported: {error.reason}", f"{pointer}/pattern") from error
    if min_length > 0 or max_length is not None:
        lengths = length_range(tree)
        implied = anchored_start and anchored_end and lengths[0] >= min_length and (
            max_length is not None and lengths[1] is not None and lengths[1] <= max_length or max_length is None)
        if not implied:
            repeat = tree.items[0] if isinstance(tree, Concat) and len(tree.items) == 1 else tree
            if not (anchored_start and anchored_end and isinstance(repeat, Repeat) and isinstance(repeat.item, CharSet)):
                raise SchemaError(
                    "'pattern' combined with 'minLength'/'maxLength' is supported when the pattern is anchored "
                    "('^...$') and either implies the lengths or is one repeated character class",
                    f"{pointer}/pattern",
                )
            low = max(repeat.min, min_length)
            high = max_length if repeat.max is None else repeat.max if max_length is None else min(repeat.max, max_length)
            if high is not None and low > high:
                return None
            tree = Repeat(repeat.item, low, high)
    printed = _print(tree)
    if printed is None:
        raise SchemaError("'pattern' matches no string that JSON can hold", f"{pointer}/pattern")
    prefix = "" if anchored_start else f"{JSON_STRING_CHAR}*"
    suffix = "" if anchored_end else f"{JSON_STRING_CHAR}*"
    return f"{prefix}(?:{printed}){suffix}"


def length_range(node) -> tuple[int, int | None]:
    """Fewest and most characters of the strings ``node`` matches (None: unbounded)."""
    if isinstance(node, CharSet):
        return 1, 1
    if isinstance(node, Concat):
        low, high = 0, 0
        for item in node.items:
            item_low, item_high = length_range(item)
            low += item_low
            high = None if high is None or item_high is None else high + item_high
        return low, high
    if isinstance(node, Alternation):
        ranges = [length_range(option) for option in node.options]
        highs = [h for _, h in ranges]
        return min(low for low, _ in ranges), None if None in highs else max(highs)
    if isinstance(node, Repeat):
        item_low, item_high = length_range(node.item)
        if node.max == 0:
            return 0, 0
        high = None if node.max is None or item_high is None else node.max * item_high
        return node.min * item_low, high
    raise TypeError(f"unexpected regex node {node!r}")  # pragma: no cover


def _escaped_at(text: str, index: int) -> bool:
    backslashes = 0
    while index - 1 - backslashes >= 0 and text[index - 1 - backslashes] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def _print(node) -> str | None:
    """The regex of the JSON spellings of ``node``'s strings, or None when it matches nothing."""
    if isinstance(node, CharSet):
        return _print_charset(node)
    if isinstance(node, Concat):
        parts = []
        for item in node.items:
            printed = _print(item)
            if printed is None:
                return None
            parts.append(f"(?:{printed})" if isinstance(item, Alternation) else printed)
        return "".join(parts)
    if isinstance(node, Alternation):
        options = [p for p in (_print(o) for o in node.options) if p is not None]
        if not options:
            return None
        return "(?:" + "|".join(options) + ")"
    if isinstance(node, Repeat):
        item = _print(node.item)
        if item is None:
            return "" if node.min == 0 else None
        if node.max == 0:
            return ""
        upper = "" if node.max is None else str(node.max)
        return f"(?:{item}){{{node.min},{upper}}}"
    raise TypeError(f"unexpected regex node {node!r}")  # pragma: no cover


def _print_charset(charset: CharSet) -> str | None:
    raw_ranges = []
    escapes = []
    for lo, hi in charset.ranges:
        raw_ranges.extend(_subtract(lo, hi))
        for code in range(lo, min(hi, 0x5C) + 1):
            if code < 0x20 or code in (0x22, 0x5C):
                escapes.append(_escape(code))
    raw = ""
    if raw_ranges:
        if sum(hi - lo + 1 for lo, hi in raw_ranges) > 0x8000:
            # Large sets are printed negated (the complement, surrogates included, is short).
            complement = []
            next_lo = 0
            for lo, hi in raw_ranges:
                if lo > next_lo:
                    complement.append((next_lo, lo - 1))
                next_lo = hi + 1
            if next_lo <= 0x10FFFF:
                complement.append((next_lo, 0x10FFFF))
            raw = f"[^{_ranges(complement)}]"
        else:
            raw = f"[{_ranges(raw_ranges)}]"
    options = ([raw] if raw else []) + escapes
    if not options:
        return None
    return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"


def _subtract(lo: int, hi: int):
    """The parts of [lo, hi] that JSON strings may hold unescaped."""
    current = lo
    for bad_lo, bad_hi in _MUST_ESCAPE.ranges:
        if bad_hi < current:
            continue
        if bad_lo > hi:
            break
        if bad_lo > current:
            yield current, min(hi, bad_lo - 1)
        current = max(current, bad_hi + 1)
    if current <= hi:
        yield current, hi


def _ranges(ranges) -> str:
    return "".join(_char(lo) if lo == hi else f"{_char(lo)}-{_char(hi)}" for lo, hi in ranges)


def _char(code: int) -> str:
    if chr(code).isascii() and chr(code).isalnum():
        return chr(code)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape(code: int) -> str:
    if code in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[code]
    high, low = f"{code:04x}"[2], f"{code:04x}"[3]
    return r"\\u00" + high + (f"[{low}{low.upper()}]" if low.isalpha() else low)
