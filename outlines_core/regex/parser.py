"""Regex text -> syntax tree (stage 1 of regex compilation).

The dialect is the part of Python's ``re`` syntax that describes a regular language, matched as a full
match. Constructs that are not regular, or that only make sense for searching (anchors, lookarounds,
backreferences, inline flags), are rejected with a ``RegexSyntaxError`` that names the construct and points
at it: silently reinterpreting them would let the model emit text the user's regex rejects.

``\\d``, ``\\w`` and ``\\s`` have their ASCII meanings (as with ``re.ASCII``); ``.`` is any character but
newline. Scoped flags ``(?i:...)`` (case-insensitive), ``(?s:...)`` (``.`` matches newline) and ``(?m:...)``
(meaningless without anchors), their ``(?-i:...)`` negations and the same flags leading the pattern
(``(?i)...``) are supported: Lark writes its terminals' flags that way.
"""

from __future__ import annotations

import functools
import re

from ..errors import RegexSyntaxError
from .ast import EMPTY, MAX_CODE_POINT, Alternation, CharSet, Concat, Node, Repeat

DIGIT = CharSet.of([(0x30, 0x39)])
WORD = CharSet.of([(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)])
SPACE = CharSet.of([(0x09, 0x0D), (0x20, 0x20)])
ANY_BUT_NEWLINE = CharSet.of([(0, 0x09), (0x0B, MAX_CODE_POINT)])

CLASS_ESCAPES = {
    "d": DIGIT,
    "D": DIGIT.negate(),
    "w": WORD,
    "W": WORD.negate(),
    "s": SPACE,
    "S": SPACE.negate(),
}
#: ``portable_classes`` (JSON Schema patterns, grammar terminals): each class escape as the characters it means in every common
#: validator's dialect, ECMA-262 (the JSON Schema spec), Python's ``re`` (jsonschema) and Rust's ``regex``
#: (Pydantic). ``\s`` differs between them beyond ASCII (ECMA-262 counts U+FEFF, Python U+001C to U+001F and
#: U+0085); ``\d`` and ``\w`` are ASCII in ECMA-262 and Unicode in the other two. ``NARROW``: in every dialect
#: inside the class (used outside brackets and in ``[...]``); ``WIDE``: everything any dialect puts in it (used
#: in ``[^...]``, whose complement must be outside the class in every dialect).
_NON_ASCII = CharSet.of([(0x80, MAX_CODE_POINT)])
_SPACE_EVERYWHERE = CharSet.of([
    (0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A), (0x2028, 0x2029),
    (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000),
])
_SPACE_ANYWHERE = CharSet.of([*_SPACE_EVERYWHERE.ranges, (0x1C, 0x1F), (0x85, 0x85), (0xFEFF, 0xFEFF)])
PORTABLE_NARROW_ESCAPES = {
    "d": DIGIT,
    "D": CharSet.of([(0, 0x2F), (0x3A, 0x7F)]),
    "w": WORD,
    "W": CharSet.of([(0, 0x2F), (0x3A, 0x40), (0x5B, 0x5E), (0x60, 0x60), (0x7B, 0x7F)]),
    "s": _SPACE_EVERYWHERE,
    "S": _SPACE_ANYWHERE.negate(),
}
PORTABLE_WIDE_ESCAPES = {
    "d": CharSet.of([*DIGIT.ranges, *_NON_ASCII.ranges]),
    "D": DIGIT.negate(),
    "w": CharSet.of([*WORD.ranges, *_NON_ASCII.ranges]),
    "W": WORD.negate(),
    "s": _SPACE_ANYWHERE,
    "S": _SPACE_EVERYWHERE.negate(),
}
#: ``.`` in every dialect: ECMA-262's excludes the line terminators, the others only the newline.
PORTABLE_DOT = CharSet.of([(0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029)]).negate()
CONTROL_ESCAPES = {"n": 0x0A, "t": 0x09, "r": 0x0D, "f": 0x0C, "v": 0x0B, "a": 0x07}
ANCHOR_ESCAPES = {
    "b": "word boundary '\\b'",
    "B": "non-word-boundary '\\B'",
    "A": "start-of-string anchor '\\A'",
    "Z": "end-of-string anchor '\\Z'",
    "z": "end-of-string anchor '\\z'",
    "G": "anchor '\\G'",
}
ANY = CharSet.of([(0, MAX_CODE_POINT)])
#: ``(?flags)`` or ``(?flags-flags:``: group 1 the flags turned on, group 2 those turned off.
_FLAGS = re.compile(r"\(\?([aiLmsux]*)(?:-([imsx]*))?[:)]")
#: Bound on {m,n} counts: larger counts are almost certainly a mistake and would unroll into huge automata.
MAX_REPEAT = 100_000
#: Parsed groups of at least this many characters are kept and looked up by as many of their first
#: characters (``_Parser.parse_group``).
_GROUP_KEY_LENGTH = 16
#: A run of characters with no meaning outside a class: literals, parsed a run at a time (a JSON schema's
#: regex is mostly its keys and punctuation).
_LITERAL_RUN = re.compile(r"[^\\\[\](){}|.*+?^$]+")
#: A character class's whole text (up to the first unescaped ']' after its first character): a pattern
#: repeats the same classes (a JSON string's characters, hex digits), each parsed once.
_CLASS_TEXT = re.compile(r"\[\^?\]?(?:\\.|[^\]\\])*\]")


def parse(pattern: str, *, portable_classes: bool = False, ecma_dot: bool = False) -> Node:
    """Parse ``pattern`` into a syntax tree.

    ``portable_classes``: the class escapes (``\\d \\s \\w`` and their negations) take only the characters
    that every common dialect (ECMA-262, Python's ``re``, Rust's ``regex``) agrees on
    (``PORTABLE_NARROW_ESCAPES``), so that whichever validator checks the output accepts it: JSON Schema's
    ``pattern`` and Lark's terminals are read so. ``ecma_dot``: ``.`` leaves out ECMA-262's line terminators
    too (``PORTABLE_DOT``; Python's leaves out only the newline).

    Raises
    ------
    RegexSyntaxError
        For malformed patterns and for unsupported constructs, with the position of the problem.
    """
    if not isinstance(pattern, str):
        raise TypeError(f"expected the regex as str, got {type(pattern).__name__}")
    parser = _Parser(pattern, portable_classes, ecma_dot)
    try:
        return parser.parse()
    except RecursionError:  # a few hundred nested groups: the recursive descent runs out of stack
        raise RegexSyntaxError(
            "groups are nested too deeply (a few hundred levels at most)", pattern, parser.pos
        ) from None


class _Parser:
    def __init__(self, pattern: str, portable_classes: bool = False, ecma_dot: bool = False) -> None:
        self.pattern = pattern
        self.portable_classes = portable_classes
        self.ecma_dot = ecma_dot
        self._in_negated_class = False
        self.pos = 0
        self.ignore_case = False
        self.dot_all = False
        self._classes: dict[tuple[str, bool], CharSet] = {}  # a class's text and case flag -> its set
        # Groups parsed so far, by their first characters: (text, flags, node). A JSON
        # schema's regex repeats the same groups (each string field's characters, each integer): a group
        # met again is the same node, which the NFA builder then copies instead of building it again.
        self._groups: dict[str, list[tuple[str, tuple[bool, bool], Node]]] = {}

    # -- helpers -------------------------------------------------------------------------------------
    def error(self, message: str, position: int | None = None) -> RegexSyntaxError:
        return RegexSyntaxError(message, self.pattern, self.pos if position is None else position)

    def peek(self, offset: int = 0) -> str | None:
        index = self.pos + offset
        return self.pattern[index] if index < len(self.pattern) else None

    def at_end(self) -> bool:
        return self.pos >= len(self.pattern)

    # -- grammar: alternation > concatenation > repetition > atom ------------------------------------
    def parse(self) -> Node:
        leading = _FLAGS.match(self.pattern)
        if leading and leading.group(0).endswith(")"):
            self.pos = leading.end()
            self._apply_flags(leading.group(1), leading.group(2), 0)
        node = self.parse_alternation()
        if not self.at_end():
            # The only way to stop early at top level is an unmatched ')'.
            raise self.error("unbalanced parenthesis ')'")
        return node

    def parse_alternation(self) -> Node:
        options = [self.parse_concatenation()]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.parse_concatenation())
        return options[0] if len(options) == 1 else Alternation(tuple(options))

    def parse_concatenation(self) -> Node:
        items: list[Node] = []
        while not self.at_end() and self.peek() not in "|)":
            run = _LITERAL_RUN.match(self.pattern, self.pos)
            if run is not None and run.end() - self.pos > 1:
                # Every literal of the run but the last, which a quantifier may follow (below).
                items.extend(self._cased(_literal(ord(char))) for char in self.pattern[self.pos : run.end() - 1])
                self.pos = run.end() - 1
            atom = self.parse_atom()
            if atom is None:
                continue
            items.append(self.parse_quantifiers(atom))
        if len(items) == 1:
            return items[0]
        return Concat(tuple(items))

    def parse_quantifiers(self, atom: Node) -> Node:
        while True:
            char = self.peek()
            if char == "*":
                self.pos += 1
                atom = Repeat(atom, 0, None)
            elif char == "+":
                self.pos += 1
                atom = Repeat(atom, 1, None)
            elif char == "?":
                self.pos += 1
                atom = Repeat(atom, 0, 1)
            elif char == "{":
                bounds = self.try_parse_braces()
                if bounds is None:
                    return atom  # a '{' that is not a quantifier is a literal, as in Python
                atom = Repeat(atom, *bounds)
            else:
                return atom
            # Lazy forms match the same set of strings; possessive forms are not in Python < 3.11 syntax
            # we target and change matching semantics, so they are refused.
            if self.peek() == "?":
                self.pos += 1
                atom = Repeat(atom.item, atom.min, atom.max, lazy=True)
            elif self.peek() == "+":
                raise self.error("possessive quantifier is not supported", self.pos)
            if self.peek() in ("*", "+", "?") or (self.peek() == "{" and self._looks_like_braces()):
                raise self.error("multiple repeat (a quantifier cannot follow a quantifier)", self.pos)

    def _looks_like_braces(self) -> bool:
        saved = self.pos
        try:
            return self.try_parse_braces() is not None
        finally:
            self.pos = saved

    def try_parse_braces(self) -> tuple[int, int | None] | None:
        """Parse ``{m}``, ``{m,}``, ``{,n}`` or ``{m,n}`` at the cursor, or return None (a literal '{')."""
        start = self.pos
        end = self.pattern.find("}", start)
        if end < 0:
            return None
        body = self.pattern[start + 1 : end]
        low_text, comma, high_text = body.partition(",")
        if not (low_text.isdigit() or (low_text == "" and comma)) or not (high_text == "" or high_text.isdigit()):
            return None
        if not low_text.isascii() or not high_text.isascii():
            return None
        low = int(low_text) if low_text else 0
        high: int | None
        if comma:
            high = int(high_text) if high_text else None
        else:
            high = low
        if high is not None and high < low:
            raise self.error(f"min repeat greater than max repeat in '{{{body}}}'", start)
        if low > MAX_REPEAT or (high is not None and high > MAX_REPEAT):
            raise self.error(f"repeat count in '{{{body}}}' exceeds the limit of {MAX_REPEAT}", start)
        self.pos = end + 1
        return low, high

    def parse_atom(self) -> Node | None:
        char = self.peek()
        if char == "(":
            return self.parse_group()
        if char == "[":
            return self.parse_class()
        if char == ".":
            self.pos += 1
            if self.ecma_dot and not self.dot_all:
                return PORTABLE_DOT
            return ANY if self.dot_all else ANY_BUT_NEWLINE
        if char == "^":
            raise self.error("anchor '^' is not supported (patterns always match the whole output)")
        if char == "$":
            raise self.error("anchor '$' is not supported (patterns always match the whole output)")
        if char in ("*", "+", "?"):
            raise self.error(f"nothing to repeat before '{char}'")
        if char == "{" and self._looks_like_braces():
            raise self.error("nothing to repeat before '{'")
        if char == "\\":
            result = self.parse_escape(in_class=False)
            if not isinstance(result, CharSet):
                result = CharSet.of([(result, result)])
            return self._cased(result)
        self.pos += 1
        return self._cased(_literal(ord(char)))

    def _cased(self, charset: CharSet) -> CharSet:
        return with_case_variants(charset) if self.ignore_case else charset

    def _apply_flags(self, enable: str, disable: str | None, start: int) -> None:
        for flag in enable + (disable or ""):
            if flag not in "ism":
                what = {"x": "verbose mode", "a": "ASCII mode", "u": "Unicode mode", "L": "locale mode"}[flag]
                raise self.error(f"inline flag '{flag}' ({what}) is not supported; only i, s and m are", start)
        for flag, value in [(f, True) for f in enable] + [(f, False) for f in (disable or "")]:
            if flag == "i":
                self.ignore_case = value
            elif flag == "s":
                self.dot_all = value

    def parse_group(self) -> Node | None:
        start = self.pos
        flags = (self.ignore_case, self.dot_all)
        key = self.pattern[start : start + _GROUP_KEY_LENGTH]
        for text, parsed_with, node in self._groups.get(key, ()):
            if parsed_with == flags and self.pattern.startswith(text, start):
                self.pos = start + len(text)
                return node
        node = self._parse_group()
        if node is not None and self.pos - start >= _GROUP_KEY_LENGTH:  # shorter ones cost little to parse
            self._groups.setdefault(key, []).append((self.pattern[start : self.pos], flags, node))
        return node

    def _parse_group(self) -> Node | None:
        start = self.pos
        self.pos += 1  # '('
        if self.peek() == "?":
            kind = self.pattern[self.pos : self.pos + 3]
            flags = _FLAGS.match(self.pattern, self.pos - 1)
            if kind.startswith("?:"):
                self.pos += 2
            elif flags and flags.group(0).endswith(":") and (flags.group(1) or flags.group(2)):
                # A scoped flag group: flags apply inside and are restored after the ')'.
                saved = (self.ignore_case, self.dot_all)
                self._apply_flags(flags.group(1), flags.group(2), start)
                self.pos = flags.end()
                node = self.parse_alternation()
                if self.peek() != ")":
                    raise self.error("missing ')', unterminated group", start)
                self.pos += 1
                self.ignore_case, self.dot_all = saved
                return node
            elif flags and flags.group(0).endswith(")"):
                raise self.error("inline flags '(?...)' are only supported at the start of the pattern", start)
            elif kind.startswith("?P<"):
                close = self.pattern.find(">", self.pos)
                name = self.pattern[self.pos + 3 : close] if close > 0 else ""
                if close < 0 or not name.isidentifier():
                    raise self.error("bad group name in '(?P<...>'", start)
                self.pos = close + 1
            elif kind.startswith("?P="):
                raise self.error("backreference '(?P=...)' is not supported", start)
            elif kind.startswith("?#"):
                close = self.pattern.find(")", self.pos)
                if close < 0:
                    raise self.error("missing ')' closing the comment '(?#'", start)
                self.pos = close + 1
                return None
            elif kind.startswith("?=") or kind.startswith("?!"):
                raise self.error(f"lookahead '({kind[:2]}' is not supported", start)
            elif kind in ("?<=", "?<!"):
                raise self.error(f"lookbehind '({kind}' is not supported", start)
            elif kind.startswith("?>"):
                raise self.error("atomic group '(?>' is not supported", start)
            elif kind.startswith("?("):
                raise self.error("conditional group '(?(' is not supported", start)
            else:
                raise self.error("inline flags and other '(?...' extensions are not supported", start)
        node = self.parse_alternation()
        if self.peek() != ")":
            raise self.error("missing ')', unterminated group", start)
        self.pos += 1
        return node

    def parse_class(self) -> CharSet:
        whole = _CLASS_TEXT.match(self.pattern, self.pos)
        if whole is None:
            return self._parse_class()
        key = (whole.group(0), self.ignore_case)
        charset = self._classes.get(key)
        if charset is not None:
            self.pos = whole.end()
            return charset
        charset = self._parse_class()
        if self.pos == whole.end():  # the parse read exactly that text: the next copy can skip it
            self._classes[key] = charset
        return charset

    def _parse_class(self) -> CharSet:
        start = self.pos
        self.pos += 1  # '['
        negate = False
        if self.peek() == "^":
            negate = True
            self.pos += 1
        self._in_negated_class = negate
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            char = self.peek()
            if char is None:
                raise self.error("unterminated character class '['", start)
            if char == "]" and not first:
                self.pos += 1
                break
            first = False
            low = self.parse_class_item()
            if isinstance(low, CharSet):
                # '[\w-.]': the dash after a class escape is a literal, as in JSON Schema's ECMA-262 patterns
                # (Python's re rejects it).
                ranges.extend(low.ranges)
                continue
            # A range 'a-z' (a '-' right before ']' is a literal).
            if self.peek() == "-" and self.peek(1) not in (None, "]"):
                dash = self.pos
                self.pos += 1
                high = self.parse_class_item()
                if isinstance(high, CharSet):
                    raise self.error("bad character range: a class escape cannot end a range", dash)
                if high < low:
                    raise self.error(
                        f"bad character range {chr(low)!r}-{chr(high)!r} (start is after end)", dash - 1
                    )
                ranges.append((low, high))
            else:
                ranges.append((low, low))
        charset = self._cased(CharSet.of(ranges))
        if negate:
            charset = charset.negate()
        if not charset.ranges:
            raise self.error("character class matches nothing", start)
        return charset

    def parse_class_item(self) -> int | CharSet:
        char = self.peek()
        if char == "\\":
            return self.parse_escape(in_class=True)
        if char == "[" and self.peek(1) in (":", "=", "."):
            raise self.error("POSIX character classes like '[:alpha:]' are not supported")
        self.pos += 1
        return ord(char)

    def parse_escape(self, in_class: bool) -> int | CharSet:
        start = self.pos
        self.pos += 1  # backslash
        char = self.peek()
        if char is None:
            raise self.error("pattern ends with a lone backslash", start)
        self.pos += 1
        if char in CLASS_ESCAPES:
            if self.portable_classes:
                wide = in_class and self._in_negated_class
                return (PORTABLE_WIDE_ESCAPES if wide else PORTABLE_NARROW_ESCAPES)[char]
            return CLASS_ESCAPES[char]
        if char in CONTROL_ESCAPES:
            return CONTROL_ESCAPES[char]
        if char == "b" and in_class:
            return 0x08  # backspace inside a class, as in Python
        if char in ANCHOR_ESCAPES:
            raise self.error(f"{ANCHOR_ESCAPES[char]} is not supported", start)
        if char == "x":
            return self.parse_hex(2, start)
        if char == "u":
            return self.parse_hex(4, start)
        if char == "U":
            return self.parse_hex(8, start)
        if char == "0":
            # Octal escape: \0 followed by up to two more octal digits.
            digits = "0"
            while len(digits) < 3 and (self.peek() or "") in "01234567" and self.peek() is not None:
                digits += self.peek()
                self.pos += 1
            return int(digits, 8)
        if char.isdigit():
            raise self.error(f"backreference '\\{char}' is not supported", start)
        if char == "N":
            raise self.error("named Unicode escapes '\\N{...}' are not supported; use \\uXXXX", start)
        if char.isascii() and char.isalpha():
            raise self.error(f"bad escape '\\{char}'", start)
        return ord(char)

    def parse_hex(self, width: int, start: int) -> int:
        digits = self.pattern[self.pos : self.pos + width]
        if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise self.error(f"bad escape: expected {width} hex digits", start)
        self.pos += width
        value = int(digits, 16)
        if value > MAX_CODE_POINT:
            raise self.error(f"bad escape: code point {value:#x} is beyond U+10FFFF", start)
        return value


@functools.lru_cache(maxsize=1024)
def _literal(code: int) -> CharSet:
    """The set of the one code point ``code`` (shared: nodes are immutable)."""
    return CharSet.of([(code, code)])


@functools.lru_cache(maxsize=1)
def _case_table() -> tuple[list[int], dict[int, tuple[int, ...]]]:
    """Code points that ``re.IGNORECASE`` matches other code points with (sorted), and those others: ``re``
    compares ``_sre.unicode_tolower`` of both sides, and also takes the extra equivalences of
    ``re._casefix`` (the long s with s, the Kelvin sign's k with k, final sigma with sigma). Cased letters all
    lie below U+1F000."""
    import _sre

    try:
        from re._casefix import _EXTRA_CASES as extra_cases  # Python 3.11+
    except ImportError:  # pragma: no cover - Python 3.10
        from sre_compile import _ignorecase_fixes as extra_cases
    lower_of: dict[int, int] = {}
    by_lower: dict[int, list[int]] = {}
    for code in range(0x1F000):
        if _sre.unicode_iscased(code):
            lower = _sre.unicode_tolower(code)
            lower_of[code] = lower
            by_lower.setdefault(lower, []).append(code)
    variants: dict[int, tuple[int, ...]] = {}
    for code, lower in lower_of.items():
        equivalent = {lower, *extra_cases.get(lower, ())}
        forms = {form for key in equivalent for form in (*by_lower.get(key, ()), key)} - {code}
        if forms:
            variants[code] = tuple(sorted(forms))
    return sorted(variants), variants


def with_case_variants(charset: CharSet) -> CharSet:
    """``charset`` plus every code point ``re.IGNORECASE`` matches with one of its letters (``_case_table``)."""
    import bisect

    cased, variants = _case_table()
    extra = []
    for low, high in charset.ranges:
        for index in range(bisect.bisect_left(cased, low), bisect.bisect_right(cased, high)):
            extra.extend((form, form) for form in variants[cased[index]])
    if not extra:
        return charset
    return CharSet.of(list(charset.ranges) + extra)


__all__ = ["parse", "with_case_variants", "EMPTY"]
