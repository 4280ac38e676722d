"""``types.Regex`` and its combinators: what users build their own output types with."""

import dataclasses
import re

import pytest

from outlines_core.errors import UnsupportedTypeError
from outlines_core.regex import compile_dfa
from outlines_core.types import Regex, to_regex


def matches(regex: Regex, text: str) -> bool:
    python = bool(re.fullmatch(regex.pattern, text, re.ASCII))
    engine = compile_dfa(regex.pattern).matches(text.encode("utf-8"))
    assert python == engine, (regex.pattern, text)
    return python


def test_regex_is_a_frozen_value():
    regex = Regex("[0-9]+")
    assert regex.pattern == "[0-9]+" and regex == Regex("[0-9]+") and hash(regex) == hash(Regex("[0-9]+"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        regex.pattern = "x"
    with pytest.raises(TypeError):
        Regex(5)


def test_concatenation_escapes_string_literals():
    regex = Regex("[a-z]+") + " (a.b*)\n\t é#~|" + Regex("[0-9]")
    assert matches(regex, "xy (a.b*)\n\t é#~|7")
    assert not matches(regex, "xy (aab)\n\t é#~|7")
    prefixed = "id: " + Regex("[0-9]{2}")
    assert matches(prefixed, "id: 42") and not matches(prefixed, "id:42")


def test_alternation_binds_each_side_whole():
    regex = Regex("ab|cd") | "e+"
    for text in ["ab", "cd", "e+"]:
        assert matches(regex, text)
    for text in ["e", "ee", "abcd", ""]:
        assert not matches(regex, text)
    assert matches(Regex("x") + (Regex("a") | Regex("b")), "xb")


def test_quantifiers():
    word = Regex("ab")
    assert matches(word.optional(), "") and matches(word.optional(), "ab") and not matches(word.optional(), "abab")
    assert matches(word.zero_or_more(), "") and matches(word.zero_or_more(), "ababab")
    assert not matches(word.one_or_more(), "") and matches(word.one_or_more(), "abab")
    bounded = word.repeat(2, 3)
    assert [matches(bounded, "ab" * n) for n in range(5)] == [False, False, True, True, False]
    at_least = word.repeat(2)
    assert not matches(at_least, "ab") and matches(at_least, "ab" * 7)
    exact = (Regex("a") | "b").repeat(2, 2)
    assert {t for t in ["aa", "ab", "ba", "bb", "a", "aba"] if matches(exact, t)} == {"aa", "ab", "ba", "bb"}


def test_invalid_repetition_bounds():
    with pytest.raises(ValueError):
        Regex("a").repeat(3, 2)
    with pytest.raises(ValueError):
        Regex("a").repeat(-1)


def test_combining_with_other_values_is_a_type_error():
    with pytest.raises(TypeError):
        Regex("a") + 5


def test_to_regex_of_regex_and_refusals():
    assert to_regex(Regex(r"\d{3}")) == r"\d{3}"
    with pytest.raises(UnsupportedTypeError):
        to_regex("\\d{3}")  # a plain string is ambiguous: Regex(...) or JsonSchema(...)
