"""The grammar recognizer (vocabulary-free): it must accept exactly what Lark's LALR parser accepts, and
reject grammars it cannot handle with a clear message."""

from __future__ import annotations

import lark
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from outlines_core.errors import GrammarError
from outlines_core.grammars import EXAMPLES, CFG, Grammar, compile_grammar, load_example

MUTATION_ALPHABET = ' (){}[],"+-*/.0123456789eEaSELECTFROMWHEREx\\:\'\t\n'


def lark_parses(parser: lark.Lark, text: str) -> bool:
    try:
        parser.parse(text)
    except lark.exceptions.LarkError:
        return False
    return True


@pytest.mark.parametrize("name", EXAMPLES)
def test_sampled_sentences_are_recognized(name):
    text = load_example(name)
    parser = lark.Lark(text, parser="lalr")
    grammar = compile_grammar(text)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(from_lark(parser))
    def check(sentence):
        if lark_parses(parser, sentence):  # from_lark may glue keywords to names; lark is the judge
            assert grammar.recognizes(sentence), sentence

    check()


@pytest.mark.parametrize("name", EXAMPLES)
def test_agrees_with_lark_on_mutated_sentences(name):
    """Insertions, deletions and substitutions near valid sentences: the hard cases for the lexer emulation
    (maximal munch, keyword vs identifier, priorities) and for LALR lookahead merging."""
    text = load_example(name)
    parser = lark.Lark(text, parser="lalr")
    grammar = compile_grammar(text)
    verdicts = {True: 0, False: 0}

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(from_lark(parser), st.data())
    def check(sentence, data):
        chars = list(sentence)
        for _ in range(data.draw(st.integers(1, 3))):
            position = data.draw(st.integers(0, len(chars)))
            operation = data.draw(st.sampled_from(["insert", "delete", "replace"]))
            if operation == "insert" or position == len(chars):
                chars.insert(position, data.draw(st.sampled_from(MUTATION_ALPHABET)))
            elif operation == "delete":
                del chars[position]
            else:
                chars[position] = data.draw(st.sampled_from(MUTATION_ALPHABET))
        mutated = "".join(chars)
        expected = lark_parses(parser, mutated)
        verdicts[expected] += 1
        assert grammar.recognizes(mutated) == expected, (mutated, expected)

    check()
    assert verdicts[True] and verdicts[False]  # both sides exercised


@pytest.mark.parametrize(
    "name, text, valid",
    [
        ("arithmetic", "12)", False),
        ("arithmetic", "(1+2)*-3 / 4.5e3", True),
        ("arithmetic", "1 2", False),
        ("json", '{"a": [1, -2.5e3, true, null, "x\\"y"]}', True),
        ("json", '{"a": [1, 2,]}', False),
        ("json", "nul", False),
        ("sql_select", "SELECT a, b AS c FROM t WHERE a >= 3 AND NOT b = 'x' ORDER BY a DESC LIMIT 5;", True),
        ("sql_select", "select count(*) from users", True),
        # Lark's contextual lexer looks only for the terminals the parser state accepts: where a column is
        # expected, "from" is a NAME, and "SELECTa" lexes as SELECT then NAME.
        ("sql_select", "SELECT from FROM t", True),
        ("sql_select", "SELECTa FROM t", True),
        ("sql_select", "SELECT a FROM", False),
        ("sexpr", "(define (square x) (* x x))", True),
        ("sexpr", "(a (b c)", False),
    ],
)
def test_known_verdicts(name, text, valid):
    grammar = compile_grammar(load_example(name))
    assert grammar.recognizes(text) is valid
    assert lark_parses(lark.Lark(load_example(name), parser="lalr"), text) is valid


@pytest.mark.parametrize("name, open_, close, atom", [("sexpr", "(", ")", "x"), ("json", "[", "]", "1"), ("arithmetic", "(", ")", "1")])
def test_nesting_depth_50(name, open_, close, atom):
    grammar = compile_grammar(load_example(name))
    assert grammar.recognizes(open_ * 50 + atom + close * 50)
    assert not grammar.recognizes(open_ * 50 + atom + close * 49)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('start: "a" b\nb: ( "c"\n', "line 2"),
        ("start: foo\n", "Rule 'foo' used but not defined"),
        ('start: A\nA: /(?<=x)y/\n', "terminal A"),
        ('start: A "b"\nA: /a*/\n', "zero-width"),
        ("", "start"),
    ],
)
def test_bad_grammars_get_clear_errors(text, fragment):
    with pytest.raises(GrammarError, match=None) as caught:
        Grammar(text)
    assert fragment in str(caught.value)


def test_non_lalr_grammar_is_refused_when_lalr_is_required():
    with pytest.raises(GrammarError, match="not LALR") as caught:
        Grammar('start: a | b\na: "x"\nb: "x"\n', parser="lalr")
    assert "parser='earley'" in str(caught.value)


WORDS_GRAMMAR = (
    'start: name ":" "hi" bang* | title ":" "bye" bang*\nname: WORD\ntitle: WORD\nbang: "!"\n'
    "WORD: /[a-z]+/\n%import common.WS\n%ignore WS\n"
)
NON_LALR = {
    # Reduce/reduce: which rule "q" reduces to is only known two tokens later.
    "two_lookahead": ('start: a "x" "y" | b "x" "z"\na: "q"\nb: "q"\n', ["qxy", "qxz"], ["qx", "qyz", "qxx"]),
    # The same with regex terminals, %ignore and nullable rules.
    "words": (
        WORDS_GRAMMAR,
        ["bob: hi", "bob : hi !", "sir:bye", "x: bye!!"],
        ["bob", "bob: ", "bob: hey", ": hi"],
    ),
}


@pytest.mark.parametrize("name", sorted(NON_LALR))
def test_earley_recognizes_non_lalr_grammars(name):
    text, good, bad = NON_LALR[name]
    grammar = Grammar(text)
    assert grammar.parser_kind == "earley"
    reference = lark.Lark(text, parser="earley", lexer="basic")
    for sentence in good:
        assert lark_parses(reference, sentence) and grammar.recognizes(sentence), sentence
    for sentence in bad:
        assert not lark_parses(reference, sentence) and not grammar.recognizes(sentence), sentence


@pytest.mark.parametrize("name", ["arithmetic", "json"])
def test_earley_agrees_with_lark_on_mutated_sentences(name):
    """The Earley recognizer on LALR grammars too (forced), against Lark's Earley with the basic lexer."""
    text = load_example(name)
    grammar = Grammar(text, parser="earley")
    reference = lark.Lark(text, parser="earley", lexer="basic")

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(from_lark(lark.Lark(text, parser="lalr")), st.data())
    def check(sentence, data):
        chars = list(sentence)
        if data.draw(st.booleans()):
            position = data.draw(st.integers(0, len(chars)))
            chars.insert(position, data.draw(st.sampled_from(MUTATION_ALPHABET)))
        mutated = "".join(chars)
        assert grammar.recognizes(mutated) == lark_parses(reference, mutated), mutated

    check()


def test_cfg_output_type_validates_its_text():
    with pytest.raises(TypeError, match="Lark grammar text"):
        CFG("   ")
    with pytest.raises(ValueError, match="parser must be"):
        CFG("start: A", parser="cyk")
    with pytest.raises(ValueError, match="unknown example grammar"):
        load_example("cobol")
