"""An Index is shared between threads (a server's requests, a batch's rows): first visits from several
threads at once, each computing masks and filling the index's memos (mask classes, alike masks, the loop
walk's power tables and text runs), must give every state the mask a single thread gives it."""

import random
import sys
import threading

import numpy as np
import pytest
from conftest import load_vocabulary

from outlines_core import Index, config
from outlines_core.regex import compile_dfa

PATTERNS = [
    # Strings (loop walks, alike reuse along a counted run), keys and numbers (lookahead batches).
    r'\{"name":"([^"\\\x00-\x1f]|\\["\\nt]){0,24}","id":[0-9]{1,6},"tags":\["[a-z]{1,8}"(,"[a-z]{1,8}"){0,3}\]\}',
    r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}',
    r"[A-Z][a-z ,]{10,80}\.",
]


@pytest.mark.parametrize("tokenizer", ["gpt-2", "llama-bpe"])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_first_visits_from_several_threads_give_the_single_thread_masks(tokenizer, pattern, monkeypatch):
    vocabulary = load_vocabulary(tokenizer)
    dfa = compile_dfa(pattern)
    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", -1.0)  # every state but the start is lazy
    reference = Index(dfa, vocabulary)
    expected = {state: reference.mask(state).copy() for state in range(1, reference.num_states)}

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over as often as possible: interleave the first visits
    try:
        for trial in range(3):
            shared = Index(dfa, vocabulary)
            results: list[dict[int, np.ndarray]] = []
            errors: list[BaseException] = []
            barrier = threading.Barrier(4)

            def visit(seed: int) -> None:
                states = list(expected)
                random.Random(seed).shuffle(states)
                try:
                    barrier.wait()
                    results.append({state: shared.mask(state) for state in states})
                except BaseException as error:  # reported below, with the thread's seed
                    errors.append(error)

            threads = [threading.Thread(target=visit, args=(trial * 10 + n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not errors, errors
            assert len(results) == 4
            for masks in results:
                for state, mask in masks.items():
                    assert np.array_equal(mask, expected[state]), (trial, state)
    finally:
        sys.setswitchinterval(switch_interval)
