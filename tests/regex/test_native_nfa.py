"""The C regex front end (``_native.regex_nfa``, ``outlines_core/_regex_nfa.c``) against ``regex/parser.py`` and
``regex/nfa.py``: the same NFA state for state and move for move wherever it builds one, and never one
where the Python parser raises (it declines, and the Python error stands)."""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_native_dfa import PATTERNS as NATIVE_DFA_PATTERNS
from outlines_core import config
from outlines_core.errors import DfaTooLargeError, RegexSyntaxError
from outlines_core.native import kernels as _native
from outlines_core.regex import compile_dfa
from outlines_core.regex.nfa import build_nfa, native_nfa
from outlines_core.regex.parser import parse
from outlines_core.types import json_schema_to_regex

#: Patterns the C front end builds (the same NFA as Python's).
BUILT = [
    r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)",
    r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}",
    r"[A-Z][a-z ,]{10,200}\.",
    r"a{3}", r"a{2,5}b*", r"(ab|cd)+?", r"[^\d\s]", r"[\D]", r"[^\W_]", r"\S\W\D", r"[\s\S]", r"[\w.-]+", r"[\w-.]",
    r"\x41\u00e9\U0001F600", r"\0\01\012", r"\t\n\r\f\v\a", r"[\b]", r"\.", r"\\", r"\-",
    r"[a-]", r"[]a]", r"[^]a]", r"[ -~]", r"[^\x00-\x7f]{2}", r".", r"[^a]", r"[α-ω]{1,3}", "日本語+", "[🎉-🎊]",
    r"a{,3}", r"a{,}", r"x{0}", r"x{0,0}", r"(x{2,3}){2}", r"a{}", r"a{x}", r"{", r"a{1,2", r"a{ 1}", "a{²}",
    r"(?:x|y)*", r"(a)(b)?", r"a||b", r"()", "", "\ud800", "ab\ud800|c", r"\u00e9?",
    *NATIVE_DFA_PATTERNS,  # a lone surrogate, an empty pattern, a JSON schema with formats, ...
]
#: Patterns it leaves to Python although Python accepts them (flags, names, comments, non-ASCII escapes).
DECLINED = [r"(?i)abc", r"(?s:.)x", r"(?P<name>a)b", r"a(?#note)b", "\\é"]
#: Patterns Python rejects: the C front end declines them and the Python error is raised.
REJECTED = [
    r"a(?=b)", r"\bx", r"a**", r"a{2}{3}", r"[z-a]", r"\1", "a{100001}", r"[[:alpha:]]", r"[^\s\S]",
    r"[\ud800-\udfff]", r"(ab", r"ab)", r"[ab", "\\", r"^a", r"a$", r"*a", r"{2}", r"\xZ1", r"\u12", r"[a-\d]",
    r"a*+", r"\N{DASH}", r"\q",
]


def python_nfa(pattern: str):
    return build_nfa(parse(pattern), pattern=pattern)


def assert_same(pattern: str) -> None:
    ours, reference = native_nfa(pattern), python_nfa(pattern)
    assert ours is not None, pattern
    assert (ours.num_states, ours.start, ours.accept, ours.may_have_dead_states) == (
        reference.num_states, reference.start, reference.accept, reference.may_have_dead_states
    ), pattern
    assert ours.epsilon_moves == reference.epsilon_moves and ours.byte_moves == reference.byte_moves, pattern


@pytest.mark.parametrize("pattern", BUILT)
def test_the_c_front_end_builds_pythons_nfa(pattern):
    assert_same(pattern)


@pytest.mark.parametrize("pattern", DECLINED)
def test_the_c_front_end_leaves_flags_names_and_comments_to_python(pattern):
    assert native_nfa(pattern) is None
    python_nfa(pattern)  # which builds it
    compile_dfa.__wrapped__(pattern)


@pytest.mark.parametrize("pattern", REJECTED)
def test_patterns_python_rejects_keep_pythons_error(pattern):
    assert native_nfa(pattern) is None
    with pytest.raises(RegexSyntaxError):
        compile_dfa.__wrapped__(pattern)


def test_an_nfa_past_the_bound_is_left_to_python_which_raises():
    assert native_nfa(r"(a{1000}){1000}") is None
    with pytest.raises(DfaTooLargeError, match="MAX_NFA_STATES"):
        compile_dfa.__wrapped__(r"(a{1000}){1000}")
    # ``nfa._estimate_states``: 2 + (the set's 2 + 24 + 2) * 10 = 282 for a character beyond ASCII (up to 8
    # UTF-8 sequences), 2 + (2 + 2) * 10 = 42 for an ASCII one (one edge), at most the bound.
    for pattern, estimate in (("\u00e9{10}", 282), ("a{10}", 42)):
        assert native_nfa(pattern, max_states=estimate - 1) is None
        assert native_nfa(pattern, max_states=estimate) is not None
        with pytest.raises(DfaTooLargeError):
            build_nfa(parse(pattern), max_states=estimate - 1)
        build_nfa(parse(pattern), max_states=estimate)


def test_the_schema_corpus_regexes_build_the_same_nfa():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from schema_corpus import build_corpus

    built = 0
    for entry in build_corpus():
        if entry.expect_refusal:
            continue
        assert_same(json_schema_to_regex(entry.schema))
        built += 1
    assert built > 200


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(TypeError):
        _native.regex_nfa(b"abc", 10)
    with pytest.raises(TypeError):
        _native.regex_nfa("abc")


_PIECES = [
    "a", "b", "é", "日", "🎉", "(", ")", "(?:", "[", "]", "[^", "-", "^", "$", "|", "*", "+", "?", "{", "}", ",", "2",
    "0", "{2}", "{1,3}", "{,2}", "{2,}", "\\d", "\\D", "\\w", "\\W", "\\s", "\\S", "\\x41", "\\u00e9", "\\U0001F389",
    "\\0", "\\07", "\\n", "\\.", "\\\\", "\\-", "\\]", "\\b", "\\1", "\\q", ".", "\\u", "\\xZ", "\ud800", "[:", '"',
    " ", "\x00", "~", "[a-z]", '[^"\\\\]', "(?i)", "(?P<x>", "(?#c)", "\\é",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=12).map("".join))
def test_random_patterns_build_pythons_nfa_or_are_declined(pattern):
    try:
        reference = python_nfa(pattern)
    except (RegexSyntaxError, DfaTooLargeError):
        assert native_nfa(pattern) is None
        return
    ours = native_nfa(pattern)
    if ours is not None:
        assert ours.num_states == reference.num_states and (ours.start, ours.accept) == (reference.start, reference.accept)
        assert ours.epsilon_moves == reference.epsilon_moves and ours.byte_moves == reference.byte_moves
        assert ours.may_have_dead_states == reference.may_have_dead_states


def test_compile_dfa_uses_the_c_front_end_where_the_kernels_run(monkeypatch):
    from outlines_core.regex import dfa as dfa_module

    calls = []
    monkeypatch.setattr(dfa_module, "build_nfa", lambda *a, **k: calls.append(a) or build_nfa(*a, **k))
    compile_dfa.__wrapped__(r"[0-9]{4}-[0-9]{2}")
    assert calls == []
    monkeypatch.setattr(config, "NATIVE_DFA", False)
    compile_dfa.__wrapped__(r"[0-9]{4}-[0-9]{2}")
    assert len(calls) == 1
    assert isinstance(native_nfa("a").epsilon_moves, array)


def test_a_pattern_too_costly_to_determinize_fails_fast_with_a_clear_error():
    # A small DFA (n + 2 states) whose states each merge n closures of up to n members: n^3 work (minutes
    # before the work bound, about two seconds to the error now).
    with pytest.raises(DfaTooLargeError, match="too costly to determinize"):
        compile_dfa.__wrapped__("(a?){8000}")
    assert compile_dfa.__wrapped__("(a?){300}").transitions.shape[0] == 302

