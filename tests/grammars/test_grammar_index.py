"""Grammar masks on the real tokenizers: soundness (every walk through the masks is a prefix Lark accepts,
and complete walks parse), completeness (sentences, encoded by the tokenizer itself, are accepted token by
token) and the Guide interface shared with regex constraints."""

from __future__ import annotations

import heapq
import random
import sys
from pathlib import Path

import lark
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.extra.lark import from_lark

from outlines_core import TokenNotAllowedError, Vocabulary
from outlines_core.errors import GrammarError
from outlines_core.grammars import EXAMPLES, CFG, GrammarGuide, GrammarIndex, compile_grammar, load_example
from outlines_core.processors import GuidedLogitsProcessor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import TOKENIZER_NAMES, load_encoder_without_dummy_prefix, load_vocabulary  # noqa: E402


def grammar_index(name: str, tokenizer: str) -> GrammarIndex:
    return _index_cache(name, tokenizer)


_INDEXES: dict[tuple[str, str], GrammarIndex] = {}


def _index_cache(name: str, tokenizer: str) -> GrammarIndex:
    key = (name, tokenizer)
    if key not in _INDEXES:
        _INDEXES[key] = GrammarIndex(compile_grammar(load_example(name)), load_vocabulary(tokenizer))
    return _INDEXES[key]


def lark_parser(name: str) -> lark.Lark:
    return lark.Lark(load_example(name), parser="lalr")


def random_walk(index: GrammarIndex, rng: random.Random, max_tokens: int, stop_probability: float):
    """Follow the masks with uniformly random allowed tokens for up to ``max_tokens``, then complete the
    output by the shortest run of single-byte tokens that makes it a sentence (a breadth-first search over
    recognizer states), then EOS. Returns the bytes; every mask on the way must be non-empty."""
    vocabulary = index.vocabulary
    eos = set(vocabulary.eos_token_ids)
    guide = index.make_guide()
    output = b""
    for _ in range(max_tokens):
        allowed = guide.allowed_tokens().tolist()
        assert allowed, "a mask of zeros must be reported as an error, never returned"
        content = [t for t in allowed if t not in eos]
        if guide.is_accepting() and (not content or rng.random() < stop_probability):
            break
        token = rng.choice(content)
        output += vocabulary.token_bytes(token)
        guide.advance(token)
    for token in shortest_completion(index, guide.state):
        assert guide.is_allowed(token)
        output += vocabulary.token_bytes(token)
        guide.advance(token)
    assert set(guide.allowed_tokens().tolist()) & eos
    guide.advance(next(iter(eos)))
    assert guide.is_finished()
    return output


def single_byte_tokens(vocabulary) -> dict[int, int]:
    found = {}
    for token_id in range(vocabulary.size):
        data = vocabulary.token_bytes(token_id)
        if data is not None and len(data) == 1 and 0x20 <= data[0] < 0x7F:
            found.setdefault(data[0], token_id)
    return found


def shortest_completion(index: GrammarIndex, state, limit: int = 20_000) -> list[int]:
    """A short run of single-byte tokens that completes the output: best-first search, the parser stack's
    depth counting as distance (closing what is open shrinks it)."""
    if index.is_accepting(state):
        return []
    tokens = _SINGLE_BYTES.setdefault(id(index.vocabulary), single_byte_tokens(index.vocabulary))
    queue = [(0, 0, state, [])]
    seen = {(state.node, state.lexer_state)}
    counter = 0
    while queue:
        _, _, current, path = heapq.heappop(queue)
        for token in tokens.values():
            after = index.next_state(current, token)
            if after is None or (after.node, after.lexer_state) in seen:
                continue
            if index.is_accepting(after):
                return path + [token]
            seen.add((after.node, after.lexer_state))
            counter += 1
            heapq.heappush(queue, (len(path) + 1 + 2 * after.store.depth(after.node), counter, after, path + [token]))
            if len(seen) > limit:
                raise AssertionError("no completion found within the search limit")
    raise AssertionError("the output cannot be completed: the masks let a dead prefix through")


_SINGLE_BYTES: dict[int, dict[int, int]] = {}


@pytest.mark.parametrize("tokenizer", TOKENIZER_NAMES)
@pytest.mark.parametrize("name", EXAMPLES)
def test_random_walks_are_sound(name, tokenizer):
    """Random walks through the masks, completed and ended with EOS, are sentences Lark parses; every
    prefix the masks allowed could be completed."""
    index = grammar_index(name, tokenizer)
    parser = lark_parser(name)
    rng = random.Random(f"{name}/{tokenizer}")
    for _ in range(10):
        output = random_walk(index, rng, max_tokens=30, stop_probability=0.2)
        parser.parse(output.decode("utf-8", errors="strict"))  # raises if an invalid sentence got through


@pytest.mark.parametrize("tokenizer", TOKENIZER_NAMES)
@pytest.mark.parametrize("name", EXAMPLES)
def test_sentences_encoded_by_the_tokenizer_are_accepted(name, tokenizer):
    index = grammar_index(name, tokenizer)
    parser = lark_parser(name)
    encoder = load_encoder_without_dummy_prefix(tokenizer)
    vocabulary = index.vocabulary

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(from_lark(parser))
    def check(sentence):
        try:
            parser.parse(sentence)
        except lark.exceptions.LarkError:
            return  # from_lark may glue a keyword to a name; only sentences Lark accepts count
        ids = encoder.encode(sentence, add_special_tokens=False).ids
        if vocabulary.decode(ids) != sentence.encode("utf-8"):
            return  # the tokenizer normalizes this text (e.g. SentencePiece spaces); not this sentence
        guide = index.make_guide()
        for position, token in enumerate(ids):
            assert guide.is_allowed(token), (sentence, position, vocabulary.token_bytes(token))
            guide.advance(token)
        assert guide.is_accepting(), sentence
        assert set(guide.allowed_tokens().tolist()) & set(vocabulary.eos_token_ids)

    check()


@pytest.mark.parametrize("tokenizer", ["gpt-2", "llama-spm"])
@pytest.mark.parametrize(
    "name, sentence",
    [("sexpr", "(" * 50 + "x" + ")" * 50), ("json", "[" * 50 + "1" + "]" * 50), ("arithmetic", "(" * 50 + "1" + ")" * 50)],
)
def test_nesting_depth_50_token_by_token(name, sentence, tokenizer):
    index = grammar_index(name, tokenizer)
    ids = load_encoder_without_dummy_prefix(tokenizer).encode(sentence, add_special_tokens=False).ids
    guide = index.make_guide()
    for token in ids:
        guide.advance(token)
    assert guide.is_accepting()
    # One closing bracket short: not a sentence, and EOS is refused.
    short = index.make_guide()
    prefix = load_encoder_without_dummy_prefix(tokenizer).encode(sentence[:-1], add_special_tokens=False).ids
    for token in prefix:
        short.advance(token)
    assert not short.is_accepting()
    with pytest.raises(TokenNotAllowedError, match="EOS"):
        short.advance(index.vocabulary.eos_token_ids[0])


@pytest.mark.parametrize("tokenizer", ["gpt-2", "llama-spm"])
def test_earley_grammar_walks_are_sound(tokenizer):
    """A grammar that is not LALR(1) goes through the Earley recognizer: walks parse with Lark's Earley."""
    from test_recognizer import WORDS_GRAMMAR as text
    index = GrammarIndex(compile_grammar(text), load_vocabulary(tokenizer))
    assert index.grammar.parser_kind == "earley"
    reference = lark.Lark(text, parser="earley", lexer="basic")
    rng = random.Random(tokenizer)
    for _ in range(8):
        reference.parse(random_walk(index, rng, max_tokens=20, stop_probability=0.2).decode("utf-8"))
    guide = index.make_guide()
    for token in load_encoder_without_dummy_prefix(tokenizer).encode("sir: bye!", add_special_tokens=False).ids:
        guide.advance(token)
    assert guide.is_accepting()


def test_mask_of_each_state_matches_next_state():
    """``allowed_tokens`` (the vectorized walk) and ``next_state`` (byte by byte) agree on every token, on a
    few states of a walk: the two code paths must not drift apart."""
    index = grammar_index("json", "gpt-2")
    vocabulary = index.vocabulary
    guide = index.make_guide()
    rng = random.Random(3)
    for step in range(6):
        allowed = set(guide.allowed_tokens().tolist())
        by_next_state = {t for t in range(vocabulary.size) if index.next_state(guide.state, t) is not None}
        assert allowed == by_next_state, step
        guide.advance(rng.choice(sorted(allowed - set(vocabulary.eos_token_ids))))


def test_guide_interface():
    index = grammar_index("arithmetic", "gpt-2")
    vocabulary = index.vocabulary
    token = {vocabulary.token_bytes(i): i for i in range(vocabulary.size) if vocabulary.token_bytes(i)}
    guide = index.make_guide()
    assert isinstance(guide, GrammarGuide)
    assert not guide.is_accepting()
    guide.advance(token[b"12"])
    assert guide.is_accepting()
    assert not guide.is_allowed(token[b")"])  # nothing is open: LALR lookahead merging must not leak
    with pytest.raises(TokenNotAllowedError, match="not allowed by the grammar"):
        guide.advance(token[b")"])
    fork = guide.copy()
    fork.advance(token[b"+"])
    assert guide.is_accepting() and not fork.is_accepting()
    assert guide.accepts([token[b"*"], token[b"3"], token[b")"]]) == 2
    row = np.zeros((vocabulary.size + 31) // 32, dtype=np.int32)
    guide.fill_bitmask(row)
    bits = np.unpackbits(row.view(np.uint8), bitorder="little")[: vocabulary.size]
    assert np.array_equal(np.flatnonzero(bits), guide.allowed_tokens())
    guide.reset()
    assert not guide.is_accepting()
    guide.advance(vocabulary.eos_token_ids[0]) if guide.is_accepting() else None


def test_processor_batches_grammar_and_regex_rows():
    from outlines_core import Index

    vocabulary = load_vocabulary("gpt-2")
    grammar = grammar_index("arithmetic", "gpt-2")
    regex = Index(r"[a-z]{2}", vocabulary)
    processor = GuidedLogitsProcessor([grammar, regex, None], tensor_library="numpy")
    logits = np.zeros((3, vocabulary.size), dtype=np.float32)
    processor.process_logits(logits)
    token = {vocabulary.token_bytes(i): i for i in range(vocabulary.size) if vocabulary.token_bytes(i)}
    assert logits[0, token[b"("]] == 0 and np.isneginf(logits[0, token[b"ab"]])
    assert logits[1, token[b"ab"]] == 0 and np.isneginf(logits[1, token[b"("]])
    assert not np.isneginf(logits[2]).any()
    processor.advance([token[b"("], token[b"ab"], token[b"x"]])
    assert processor.guides[0].allowed_tokens().size > 0


def test_index_for_caches_grammar_indexes():
    from outlines_core.generator import index_for

    vocabulary = load_vocabulary("gpt-2")
    cfg = CFG(load_example("sexpr"))
    first = index_for(cfg, vocabulary)
    assert isinstance(first, GrammarIndex)
    assert index_for(CFG(load_example("sexpr")), vocabulary) is first


def test_dead_end_is_reported_not_masked_to_zeros():
    # A vocabulary that can spell "a" but not "c": after "a" nothing can continue.
    vocabulary = Vocabulary([b"a", b"b", None], eos_token_ids=[2])
    index = GrammarIndex('start: "a" "c"\n', vocabulary)
    guide = index.make_guide()
    guide.advance(0)
    with pytest.raises(GrammarError, match="no valid continuation"):
        guide.allowed_tokens()


def test_a_lexeme_back_at_its_start_state_is_still_pending():
    # After "ab", /(ab)*c/ is back in its start state but needs a "c": the output is not complete.
    text = "start: A*\nA: /(ab)*c/\n"
    grammar = compile_grammar(text)
    assert not grammar.recognizes("ab") and grammar.recognizes("abc") and grammar.recognizes("ababcc")
    vocabulary = Vocabulary([b"a", b"b", b"c", b"ab", None], eos_token_ids=[4])
    guide = GrammarIndex(text, vocabulary).make_guide()
    guide.advance(3)
    assert not guide.is_accepting() and not guide.is_allowed(4)
    guide.advance(2)
    assert guide.is_accepting() and guide.is_allowed(4)


def test_masks_of_a_fresh_parser_store_are_not_mixed_with_a_freed_ones(monkeypatch):
    # A long-lived index starts a new store of parser stacks when the old one grows too big; the old one is
    # freed once its guides are, and a new store could then get its id(): masks must not be shared.
    import gc

    import outlines_core.grammars.index as grammar_index_module

    text = load_example("arithmetic")
    vocabulary = load_vocabulary("gpt-2")
    encoder = load_encoder_without_dummy_prefix("gpt-2")
    sentences = ["((((((1", "1*2+3*", "(1+2", "-(-(3"]

    def walk(guide, sentence):
        for token in encoder.encode(sentence, add_special_tokens=False).ids:
            guide.advance(token)
        return guide

    expected = {sentence: walk(GrammarIndex(text, vocabulary).make_guide(), sentence).allowed_tokens() for sentence in sentences}
    index = GrammarIndex(text, vocabulary)
    monkeypatch.setattr(grammar_index_module, "MAX_STACK_NODES", 5)  # a new store for almost every guide
    for round_ in range(40):
        sentence = sentences[round_ % len(sentences)]
        guide = walk(index.make_guide(), sentence)
        assert np.array_equal(guide.allowed_tokens(), expected[sentence]), (round_, sentence)
        del guide
        gc.collect()


def test_terminal_class_escapes_allow_only_what_lark_lexes_alike():
    # Lark matches terminals with Python's Unicode re: /\S+/ must not let a no-break space through.
    text = "start: WORD (\" \" WORD)*\nWORD: /\\S+/\n"
    grammar = compile_grammar(text)
    parser = lark.Lark(text, parser="lalr")
    for ch in [*map(chr, range(0x21, 0x100)), "\u1680", "\u2000", "\u2028", "\u3000", "\ufeff", "\u00e9", "\u4e2d"]:
        sentence = f"a{ch}b"
        if grammar.recognizes(sentence):
            parser.parse(sentence)  # raises if Lark disagrees
    assert grammar.recognizes("caf\u00e9 ok") and not grammar.recognizes("a\u00a0b")


def test_grammar_the_vocabulary_cannot_start_is_refused():
    vocabulary = Vocabulary([b"a", None], eos_token_ids=[1])
    with pytest.raises(GrammarError, match="begin a sentence"):
        GrammarIndex('start: "z"\n', vocabulary)


def test_regex_output_types_do_not_import_the_grammar_engine():
    """``outlines_core.grammars`` serves its engine's names on first use: a process whose generators take
    regexes, JSON Schemas and Python types never imports the grammar modules (6 to 11 ms of its first
    request), while every grammar name is still there when asked for."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = (
        "import sys\n"
        "from outlines_core import Vocabulary, types\n"
        "from outlines_core.generator import index_for\n"
        "vocabulary = Vocabulary([b'a', b'1', b'{', b'}', b'\"', b':', b',', None], eos_token_ids=[7])\n"
        "index_for(types.JsonSchema({'type': 'object'}), vocabulary)\n"
        "index_for(int, vocabulary)\n"
        "engine = [name for name in sys.modules if name.startswith('outlines_core.grammars.')]\n"
        "assert not engine and 'lark' not in sys.modules, engine\n"
        "from outlines_core.grammars import GrammarIndex, compile_grammar\n"
        "GrammarIndex(compile_grammar('start: \"a\"'), vocabulary)\n"
        "assert 'lark' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
