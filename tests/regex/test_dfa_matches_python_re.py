"""The compiled DFA accepts exactly what Python's re.fullmatch (ASCII mode) accepts."""

import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from outlines_core.regex import DEAD, compile_dfa
from outlines_core.regex.utf8 import utf8_sequences

PATTERNS = [
    r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)",
    r"(-)?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-][0-9]+)?",
    r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}",
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)",
    r"(ab|a)*b?c{2,4}",
    r"[^a-c]{1,3}x",
    r"\w+\s\W?\S*",
    r"(?:x|yz)+?(?P<tail>q{0,2})",
    r"a.b",
    r"é|日本+|[α-ω]{2}",
    r"[\u00e0-\u00ff\-]+",
    r'"([^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"',
    r"\D\d",
    r"(a|b)*a(a|b){3}",
    r"[\d.]{2}|\.\+\*\?\(\)\[\]\{\}\|\\",
    r"()a|",
]
ALPHABET = "ab.cxyzq019-+eE@_ T:Z\\\"/uéα日本ω\n\t\x00é"


@settings(max_examples=300, deadline=None)
@given(pattern=st.sampled_from(PATTERNS), text=st.text(alphabet=ALPHABET, max_size=12))
def test_random_strings_agree_with_re(pattern, text):
    dfa = compile_dfa(pattern)
    assert dfa.matches(text.encode("utf-8")) == bool(re.fullmatch(pattern, text, re.ASCII))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), pattern=st.sampled_from(PATTERNS))
def test_every_matching_string_is_accepted(data, pattern):
    # hypothesis cannot generate from non-ASCII patterns in ASCII mode; those patterns avoid \d \w \s.
    flags = re.ASCII if pattern.isascii() else 0
    text = data.draw(st.from_regex(re.compile(pattern, flags), fullmatch=True))
    assert compile_dfa(pattern).matches(text.encode("utf-8"))


def test_dead_state_is_zero_and_every_other_state_is_live():
    for pattern in PATTERNS:
        dfa = compile_dfa(pattern)
        assert (dfa.transitions[DEAD] == DEAD).all()
        assert not dfa.accepting[DEAD]
        # Reachability of acceptance from every non-dead state.
        live = dfa.accepting.copy()
        while True:
            grown = live | (live[dfa.transitions]).any(axis=1)
            grown[DEAD] = False
            if (grown == live).all():
                break
            live = grown
        assert live[1:].all(), pattern


def test_dfa_is_minimal_for_simple_patterns():
    # dead + states after 0, 1, 2 'a's: (aa)*a? is all strings of a's -> start accepting, loops.
    assert compile_dfa("(aa)*a?").num_states == 2
    assert compile_dfa("a|b|c").num_states == 3  # dead, start, accept
    assert compile_dfa("abc|abd").num_states == 5


def test_invalid_utf8_is_never_accepted():
    dfa = compile_dfa(".*")
    assert dfa.matches("héllo日本🎉".encode())
    for bad in [b"\xc3", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf"]:
        assert not dfa.matches(bad), bad


def test_utf8_sequences_cover_exactly_the_encodings():
    ranges = [(0, 0x7F), (0x80, 0x7FF), (0x7F0, 0x820), (0x10000, 0x10FFFF), (0xE000, 0x1F600), (0x41, 0x41)]
    for lo, hi in ranges:
        sequences = utf8_sequences(lo, hi)
        sample = sorted({lo, hi, (lo + hi) // 2, *np.random.default_rng(lo).integers(lo, hi + 1, 200).tolist()})
        for code_point in sample:
            if 0xD800 <= code_point <= 0xDFFF:
                continue
            encoded = chr(code_point).encode()
            assert any(
                len(seq) == len(encoded) and all(a <= b <= c for (a, c), b in zip(seq, encoded))
                for seq in sequences
            ), hex(code_point)
        # Nothing outside the range is covered: check the neighbours.
        for outside in (lo - 1, hi + 1):
            if 0 <= outside <= 0x10FFFF and not 0xD800 <= outside <= 0xDFFF:
                encoded = chr(outside).encode()
                assert not any(
                    len(seq) == len(encoded) and all(a <= b <= c for (a, c), b in zip(seq, encoded))
                    for seq in sequences
                ), hex(outside)


def test_ignore_case_matches_what_re_ignorecase_matches():
    # re compares lower-cased code points and adds a few equivalences (the Kelvin sign, the long s, final
    # sigma): a negated class must leave all of them out, or the engine writes text re rejects.
    import random

    import _sre

    cased = [code for code in range(0x1F000) if _sre.unicode_iscased(code)]
    rng = random.Random(0)
    letters = [chr(code) for code in rng.sample(cased, 60)] + ["k", "s", "\u03c3", "\u00df", "i", "\u212a"]
    for letter in letters:
        patterns = [f"(?i){re.escape(letter)}", f"(?i)[^{re.escape(letter)}]"]
        if ord(letter) < 0x24F:
            patterns.append(f"(?i)[{re.escape(letter)}-\\u024f]")
        for pattern in patterns:
            dfa = compile_dfa.__wrapped__(pattern)
            for text in [chr(code) for code in rng.sample(cased, 150)] + [letter, letter.upper()[:1], letter.lower()[:1]]:
                assert dfa.matches(text.encode()) == (re.fullmatch(pattern, text) is not None), (pattern, text)
