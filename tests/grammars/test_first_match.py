"""A terminal's DFA read first-match, as Lark's ``re`` reads it: wherever the lexer can end a lexeme (the
state accepts and the next byte has no move), ``re.match`` ends its match at the same place."""

from __future__ import annotations

import re

import lark
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from outlines_core.grammars import Grammar
from outlines_core.grammars.first_match import first_match_dfa


@st.composite
def regexes(draw, depth=0):
    """Small regexes over ``abc`` with alternation, groups and greedy or lazy repetitions."""
    if depth >= 3 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(["a", "b", "c", "[ab]", "[^a]", "ab", "."]))
    kind = draw(st.sampled_from(["concat", "alternation", "repeat"]))
    if kind == "concat":
        return "".join(draw(st.lists(regexes(depth + 1), min_size=2, max_size=3)))
    if kind == "alternation":
        return "(?:" + "|".join(draw(st.lists(regexes(depth + 1), min_size=2, max_size=3))) + ")"
    quantifier = draw(st.sampled_from(["*", "+", "?", "{1,2}", "{0,3}", "{2}"]))
    lazy = draw(st.sampled_from(["", "?"])) if quantifier != "{2}" else ""
    return f"(?:{draw(regexes(depth + 1))}){quantifier}{lazy}"


def lexeme_ends(dfa, data: bytes):
    """Positions where the lexer could end a lexeme read from the start of ``data``."""
    state, ends = dfa.start, []
    for position in range(len(data) + 1):
        following = dfa.transitions[state, data[position]] if position < len(data) else 0
        if dfa.accepting[state] and following == 0:
            ends.append(position)
        if following == 0:
            break
        state = following
    return ends


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@example("(?:(?:a|(?:b)*?))*", "b")  # a pass that matched nothing ends the repetition
@example("(?:(?:(?:b)*|a))*", "ba")
@given(regexes(), st.text(alphabet="abc", max_size=8))
def test_the_lexer_ends_a_lexeme_where_re_match_ends(pattern, text):
    dfa = first_match_dfa(pattern)
    ends = lexeme_ends(dfa, text.encode())
    match = re.match(pattern, text)
    for end in ends:
        assert match is not None and match.end() == end, (pattern, text, ends, match)


@pytest.mark.parametrize(
    "terminal, text, lark_reads",
    [
        (r"/[0-9]+|[0-9]+\.[0-9]+/", "1.5", "1"),  # the first alternative wins
        (r"/a+?b+/", "abbb", "abbb"),  # lazy, then greedy
        (r"/a+?/", "aaa", "a"),
        (r"/(ab)*c/", "ababc", "ababc"),
        (r"/x|xy/", "xy", "x"),
    ],
)
def test_terminals_end_where_lark_ends_them(terminal, text, lark_reads):
    grammar_text = f"start: T+\nT: {terminal}\n"
    grammar = Grammar(grammar_text)
    try:
        lark.Lark(grammar_text, parser="lalr").parse(text)
        lark_accepts = True
    except lark.exceptions.LarkError:
        lark_accepts = False
    assert grammar.recognizes(text) == lark_accepts
    assert grammar.recognizes(lark_reads)
