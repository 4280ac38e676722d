"""Bad patterns get a RegexSyntaxError naming the construct and its position; huge ones a size error."""

import re

import pytest

from outlines_core import config
from outlines_core.errors import DfaTooLargeError, RegexSyntaxError
from outlines_core.regex import compile_dfa


@pytest.mark.parametrize(
    "pattern, construct, position",
    [
        ("^abc", "anchor '^'", 0),
        ("abc$", "anchor '$'", 3),
        (r"a\bc", "word boundary", 1),
        (r"\Aabc", "start-of-string anchor", 0),
        (r"abc\Z", "end-of-string anchor", 3),
        ("a(?=b)", "lookahead '(?='", 1),
        ("a(?!b)", "lookahead '(?!'", 1),
        ("(?<=a)b", "lookbehind '(?<='", 0),
        ("(?<!a)b", "lookbehind '(?<!'", 0),
        (r"(a)\1", "backreference '\\1'", 3),
        ("(?P<x>a)(?P=x)", "backreference '(?P=", 8),
        ("a(?i)bc", "only supported at the start", 1),
        ("(?x:a b)", "verbose mode", 0),
        ("a++", "possessive quantifier", 2),
        ("(?>ab)", "atomic group", 0),
        ("(?(1)a|b)", "conditional group", 0),
        ("(ab", "missing ')'", 0),
        ("ab)", "unbalanced parenthesis", 2),
        ("[abc", "unterminated character class", 0),
        ("[z-a]", "bad character range", 1),
        (r"[a-\w]", "a class escape cannot end a range", 2),
        ("*a", "nothing to repeat", 0),
        ("a**", "multiple repeat", 2),
        ("a{3,1}", "min repeat greater than max", 1),
        ("abc\\", "lone backslash", 3),
        (r"\q", "bad escape", 0),
        (r"\x4", "expected 2 hex digits", 0),
        ("[[:alpha:]]", "POSIX character classes", 1),
    ],
)
def test_unsupported_or_malformed_pattern_names_construct_and_position(pattern, construct, position):
    with pytest.raises(RegexSyntaxError) as caught:
        compile_dfa(pattern)
    error = caught.value
    assert construct in str(error)
    assert error.position == position
    assert error.pattern == pattern
    # The caret line points at the position.
    assert str(error).splitlines()[-1] == "  " + " " * position + "^"
    assert isinstance(error, ValueError)


def test_repeated_classes_and_literal_runs_parse_as_written():
    """The parser reads runs of literals at once and each distinct class text once per pattern; the
    copies must keep their own quantifiers, flags and neighbours."""
    pattern = r'"[^"\\]{2}"-[^"\\]*x(?i:yz[a-c]+)[a-c]{1,2}"[^"\\]{2}"ab+'
    dfa = compile_dfa(pattern)
    texts = ['"xy"-zzzxYzAbCab"qr"abb', '"xy"-xyzaCa"qr"ab', '"xy"-xyZAaC"qr"ab', '"x"-xyza"qr"ab', '"xy"-xYZaa"qr"a']
    for text in texts:
        assert dfa.matches(text.encode()) == bool(re.fullmatch(pattern, text)), text


def test_a_dash_after_a_class_escape_is_a_literal_as_in_json_schema_patterns():
    """``[\\w-.]`` is common in JSON Schema (ECMA-262) patterns, where the dash is a literal; Python's re
    rejects it, and we keep the JSON Schema reading rather than refuse users' schemas."""
    dfa = compile_dfa(r"[\w-.]+@x")
    assert dfa.matches(b"a-b.c_9@x") and not dfa.matches(b"a+b@x")


def test_non_string_pattern_is_a_type_error():
    with pytest.raises(TypeError, match="expected the regex as str"):
        compile_dfa(b"abc")  # type: ignore[arg-type]


def test_braces_that_are_not_quantifiers_are_literals_as_in_python():
    dfa = compile_dfa("a{b}|x{,")
    for text in ["a{b}", "x{,"]:
        assert dfa.matches(text.encode()) and re.fullmatch("a{b}|x{,", text)


def test_state_explosion_is_bounded_with_a_clear_error(monkeypatch):
    # (a|b)*a(a|b){n} needs 2**n DFA states: the classic blow-up.
    with pytest.raises(DfaTooLargeError, match="MAX_DFA_STATES"):
        compile_dfa("(a|b)*a(a|b){14}", max_states=5_000)


def test_huge_unrolling_fails_before_building(monkeypatch):
    monkeypatch.setattr(config, "MAX_NFA_STATES", 50_000)
    with pytest.raises(DfaTooLargeError, match="MAX_NFA_STATES"):
        compile_dfa("(a{1000}){1000}")


def test_repeat_count_limit():
    with pytest.raises(RegexSyntaxError, match="exceeds the limit"):
        compile_dfa("a{1000001}")


@pytest.mark.parametrize(
    "pattern, samples",
    [
        ("(?i:select)", ["SELECT", "select", "SeLeCt", "selec", "selectt"]),
        ("(?i)[a-c]x[^d]", ["AXe", "bxD", "cXd", "Cx!"]),
        ("a(?i:b)c", ["abc", "aBc", "ABC", "abC"]),
        ("(?s:.)(?-s:.)?", ["\n", "\n\n", "a\n", "ab"]),
        ("(?i:straße|ǅ)", ["STRASSE", "straße", "STRAßE", "ǆ", "Ǆ", "ǅ"]),
    ],
)
def test_scoped_flags_agree_with_re(pattern, samples):
    dfa = compile_dfa(pattern)
    for sample in samples:
        assert dfa.matches(sample.encode()) == bool(re.fullmatch(pattern, sample)), sample


def test_groups_nested_too_deeply_are_a_syntax_error_not_a_crash():
    deep = "(" * 2000 + "a" + ")" * 2000
    with pytest.raises(RegexSyntaxError, match="nested too deeply"):
        compile_dfa.__wrapped__(deep)
    assert compile_dfa.__wrapped__("(" * 150 + "a" + ")" * 150).matches(b"a")
