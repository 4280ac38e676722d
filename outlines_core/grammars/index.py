"""Token masks for a grammar: which tokens keep the output a prefix of some sentence.

A recognizer state is (parser stack, lexer state): the stack is an interned LALR configuration
(``parser.StackStore``), the lexer state a state of the contextual lexer's automata (``lexer.Lexer``),
i.e. the lexeme in progress. A token is allowed when its bytes can be lexed from there: bytes that extend
the current lexeme just move the lexer; a byte that cannot extend it ends the lexeme (if it is a complete
terminal), feeds that terminal to the parser (``%ignore``d ones are dropped) and starts the next lexeme in
the context of the parser's new state. A single token may cross several lexemes.

The mask of a state is computed in two parts, so that the expensive one is shared:

* *inner* tokens never end the current lexeme. They depend on the lexer state only, so the walk over the
  whole vocabulary trie that finds them runs once per lexer state (a few hundred states in a big grammar)
  and is cached for good. The same walk records the *crossing points*: trie nodes whose last byte ends
  the lexeme, with the terminal it ends as.
* *crossing* tokens pass a crossing point. Only their subtries are walked, from the crossing points, with
  the parser consulted at every lexeme boundary (once per distinct (stack, terminal), memoized). These
  are a small part of the vocabulary, so this walk is short; its result is cached per (stack, lexer
  state) in an LRU.

Both walks are level-synchronous numpy walks of the trie (one gather per level for the whole frontier),
so no Python loop runs over tokens; Python only runs per distinct parser question.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from .. import config
from ..errors import GrammarError
from ..vocabulary import Vocabulary
from .grammar import Grammar
from .lexer import NO_TERMINAL, terminal_bitset
from .parser import REJECTED, StackStore

#: Parser node of a guide that has consumed EOS.
FINISHED = -2
#: Cached (stack, lexer state) masks per index.
MASK_CACHE_SIZE = 4096
#: Interned stacks per store before new guides start a fresh store (bounds memory of long-lived indexes).
MAX_STACK_NODES = 1_000_000


class GrammarState(NamedTuple):
    """Where a guide is: the store its parser node belongs to, the node (stack), the lexer state."""

    store: StackStore
    node: int
    lexer_state: int


class _Inner(NamedTuple):
    mask: np.ndarray  # packed bitmask of tokens that stay inside the lexeme
    crossing_nodes: np.ndarray  # trie nodes whose last byte ends the lexeme ...
    crossing_terminals: np.ndarray  # ... as this terminal


class GrammarIndex:
    """A grammar compiled against one vocabulary; shared by every guide of that pair (thread-safe).

    Raises ``GrammarError`` at construction when no token can start a sentence.
    """

    def __init__(self, grammar: Grammar | str, vocabulary: Vocabulary) -> None:
        self.grammar = grammar if isinstance(grammar, Grammar) else Grammar(grammar)
        self.vocabulary = vocabulary
        self.pattern = self.grammar.text  # for messages shared with regex guides
        self.num_words = (vocabulary.size + 31) // 32
        lexer = self.grammar.lexer
        self._transitions = lexer.transitions.reshape(-1).astype(np.int64)
        self._accepts = lexer.accepts.astype(np.int64)
        self._context_start = lexer.context_start
        self._context_of = lexer.context_of_parser_state
        self._ignored = np.zeros(len(self.grammar.spec.terminals), dtype=bool)
        self._ignored[list(self.grammar.spec.ignore)] = True
        self._num_terminals = max(len(self.grammar.spec.terminals), 1)
        self._lock = threading.RLock()
        self._store = StackStore(self.grammar.spec.table)
        self._inner: dict[tuple[int, int], _Inner] = {}
        self._possible = lexer.possible
        # Viability: per distinct set of terminals a stack accepts, which lexer states can still end in one
        # of them (row ``i`` of ``_viable_table``); ``_acceptance`` maps (store, node) to that row.
        self._acceptance: dict[tuple[int, int], int] = {}
        self._acceptance_ids: dict[bytes, int] = {}
        self._viable_rows: list[np.ndarray] = []
        self._viable_table = np.zeros((0, lexer.num_states), dtype=bool)
        self._masks: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._allowed_ids: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        eos = np.array(vocabulary.eos_token_ids, dtype=np.int64)
        self.eos_mask = self._bits(eos)
        self.eos_mask.setflags(write=False)
        self._eos = set(vocabulary.eos_token_ids)
        initial = self.initial_state
        try:
            self.mask(initial)
        except GrammarError as error:
            raise GrammarError(f"the vocabulary has no token that can begin a sentence of this grammar: {error}") from None

    # -- states ----------------------------------------------------------------------------------------
    @property
    def initial_state(self) -> GrammarState:
        with self._lock:
            if self._store.size > MAX_STACK_NODES:
                self._store = StackStore(self.grammar.spec.table)
            store = self._store
        return GrammarState(store, store.root, self._lexeme_start(store, store.root))

    def _lexeme_start(self, store: StackStore, node: int) -> int:
        return int(self._context_start[self._context_of[store.top(node)]])

    def _after_terminal(self, store: StackStore, node: int, terminal: int) -> int:
        return node if self._ignored[terminal] else store.feed(node, terminal)

    def is_accepting(self, state: GrammarState) -> bool:
        """The output so far is a complete sentence (EOS is allowed)."""
        store, node, lexer_state = state
        if node == FINISHED:
            return True
        if lexer_state == self._lexeme_start(store, node):
            return store.accepts_end(node)  # nothing pending (only before the first byte)
        terminal = int(self._accepts[lexer_state])
        if terminal == NO_TERMINAL:
            return False
        with self._lock:
            after = self._after_terminal(store, node, terminal)
            return after != REJECTED and store.accepts_end(after)

    def is_final(self, state: GrammarState) -> bool:
        """Complete, and no content token can extend it: only EOS remains."""
        if state.node == FINISHED:
            return True
        if not self.is_accepting(state):
            return False
        return not (self.mask(state) & ~self.eos_mask).any()

    def next_state(self, state: GrammarState, token_id: int) -> GrammarState | None:
        """The state after ``token_id``, or ``None`` if the token is not allowed."""
        store, node, lexer_state = state
        if node == FINISHED:
            return state if token_id in self._eos else None
        if token_id in self._eos:
            return GrammarState(store, FINISHED, 0) if self.is_accepting(state) else None
        data = self.vocabulary.token_bytes(token_id) if 0 <= token_id < self.vocabulary.size else None
        if data is None:
            return None
        rows, accepts = self.grammar.rows, self.grammar.accepts_list
        with self._lock:
            for byte in data:
                following = rows[lexer_state][byte]
                if following:
                    lexer_state = following
                    continue
                terminal = accepts[lexer_state]
                if terminal == NO_TERMINAL:
                    return None
                node = self._after_terminal(store, node, terminal)
                if node == REJECTED:
                    return None
                lexer_state = rows[self._lexeme_start(store, node)][byte]
                if not lexer_state:
                    return None
            if not self._viable_rows[self._acceptance_of(store, node)][lexer_state]:
                return None  # the lexeme can only become terminals this stack rejects
        return GrammarState(store, node, lexer_state)

    # -- viability -----------------------------------------------------------------------------------
    def _acceptance_of(self, store: StackStore, node: int) -> int:
        """Row of ``_viable_table`` for stack ``node``: lexer states that can still end as a terminal the
        stack accepts (``%ignore``d terminals always are)."""
        key = (id(store), node)
        found = self._acceptance.get(key)
        if found is not None:
            return found
        context = self.grammar.lexer.contexts[self._context_of[store.top(node)]]
        accepted = [t for t in sorted(context) if self._ignored[t] or store.feed(node, t) != REJECTED]
        bits = terminal_bitset(accepted, self._num_terminals)
        found = self._acceptance_ids.get(bits.tobytes())
        if found is None:
            found = self._acceptance_ids[bits.tobytes()] = len(self._viable_rows)
            viable = (self._possible & bits).any(axis=1)
            viable[0] = False
            self._viable_rows.append(viable)
        self._acceptance[key] = found
        return found

    def _viable_lookup(self, acceptance_ids: np.ndarray, lexer_states: np.ndarray) -> np.ndarray:
        if self._viable_table.shape[0] != len(self._viable_rows):
            self._viable_table = np.stack(self._viable_rows)
        return self._viable_table[acceptance_ids, lexer_states]

    # -- masks -------------------------------------------------------------------------------------
    def mask(self, state: GrammarState) -> np.ndarray:
        """Packed allowed-token bitmask (read-only int32 words, xgrammar's layout) of ``state``."""
        store, node, lexer_state = state
        if node == FINISHED:
            return self.eos_mask
        key = (id(store), node, lexer_state)
        with self._lock:
            cached = self._masks.get(key)
            if cached is not None:
                self._masks.move_to_end(key)
                return cached
            mask = self._compute_mask(store, node, lexer_state)
            if self.is_accepting(state):
                mask |= self.eos_mask
            elif not mask.any():
                raise self._dead_end(store, node, lexer_state)
            mask.setflags(write=False)
            self._masks[key] = mask
            if len(self._masks) > MASK_CACHE_SIZE:
                self._masks.popitem(last=False)
            return mask

    def allowed_tokens(self, state: GrammarState) -> np.ndarray:
        """Sorted allowed token ids (int32), EOS included where the output may end."""
        bits = np.unpackbits(self.mask(state).view(np.uint8), bitorder="little")
        return np.flatnonzero(bits[: self.vocabulary.size]).astype(np.int32)

    def is_allowed(self, state: GrammarState, token_id: int) -> bool:
        if not 0 <= token_id < self.vocabulary.size:
            return False
        word = int(self.mask(state)[token_id >> 5])
        return bool((word >> (token_id & 31)) & 1)

    def make_guide(self):
        from .guide import GrammarGuide

        return GrammarGuide(self)

    def __repr__(self) -> str:
        return (
            f"GrammarIndex(terminals={len(self.grammar.spec.terminals)}, lexer_states={self.grammar.lexer.num_states}, "
            f"vocab_size={self.vocabulary.size}, cached_masks={len(self._masks)})"
        )

    # -- the walks -----------------------------------------------------------------------------------
    def _compute_mask(self, store: StackStore, node: int, lexer_state: int) -> np.ndarray:
        acceptance = self._acceptance_of(store, node)
        inner = self._inner.get((lexer_state, acceptance))
        if inner is None:
            inner = self._inner[(lexer_state, acceptance)] = self._walk_inner(lexer_state, acceptance)
        mask = inner.mask.copy()
        if inner.crossing_nodes.size:
            tokens = self._walk_crossing(store, node, inner)
            if tokens.size:
                np.bitwise_or.at(mask, tokens >> 5, (np.int64(1) << (tokens & 31)).astype(np.uint32).view(np.int32))
        return mask

    def _expand(self, trie_nodes: np.ndarray):
        """Every child of every node in the frontier, and for each child the index of its parent entry."""
        trie = self.vocabulary.trie
        counts = trie.child_count[trie_nodes]
        total = int(counts.sum())
        if total == 0:
            return None, None
        ends = np.cumsum(counts)
        children = np.repeat(trie.child_start[trie_nodes] - (ends - counts), counts) + np.arange(total)
        parents = np.repeat(np.arange(len(trie_nodes)), counts)
        return children, parents

    def _walk_inner(self, lexer_state: int, acceptance: int) -> _Inner:
        trie = self.vocabulary.trie
        viable = self._viable_rows[acceptance]
        nodes = np.zeros(1, dtype=np.int64)
        states = np.array([lexer_state], dtype=np.int64)
        reached, crossing_nodes, crossing_terminals = [], [], []
        while nodes.size:
            children, parents = self._expand(nodes)
            if children is None:
                break
            parent_states = states[parents]
            following = self._transitions[parent_states * 256 + trie.node_byte[children]]
            alive = viable[following]  # the dead state 0 is never viable
            ends_lexeme = (following == 0) & (self._accepts[parent_states] != NO_TERMINAL)
            if ends_lexeme.any():
                crossing_nodes.append(children[ends_lexeme])
                crossing_terminals.append(self._accepts[parent_states[ends_lexeme]])
            nodes, states = children[alive], following[alive]
            reached.append(nodes)
        tokens = self._tokens_at(np.concatenate(reached) if reached else np.empty(0, dtype=np.int64))
        return _Inner(
            mask=self._bits(tokens),
            crossing_nodes=np.concatenate(crossing_nodes) if crossing_nodes else np.empty(0, dtype=np.int64),
            crossing_terminals=np.concatenate(crossing_terminals) if crossing_terminals else np.empty(0, dtype=np.int64),
        )

    def _walk_crossing(self, store: StackStore, node: int, inner: _Inner) -> np.ndarray:
        trie = self.vocabulary.trie
        parser_nodes, states, acceptances = self._cross(
            store,
            np.full(inner.crossing_nodes.size, node, dtype=np.int64),
            inner.crossing_terminals,
            trie.node_byte[inner.crossing_nodes].astype(np.int64),
        )
        alive = states != 0
        nodes, states, parser_nodes = inner.crossing_nodes[alive], states[alive], parser_nodes[alive]
        acceptances = acceptances[alive]
        reached = [nodes]
        while nodes.size:
            children, parents = self._expand(nodes)
            if children is None:
                break
            parent_states = states[parents]
            parent_parsers = parser_nodes[parents]
            parent_acceptances = acceptances[parents]
            child_bytes = trie.node_byte[children].astype(np.int64)
            following = self._transitions[parent_states * 256 + child_bytes]
            alive = self._viable_lookup(parent_acceptances, following)
            ends_lexeme = (following == 0) & (self._accepts[parent_states] != NO_TERMINAL)
            nodes, states, parser_nodes = children[alive], following[alive], parent_parsers[alive]
            acceptances = parent_acceptances[alive]
            if ends_lexeme.any():
                crossed_parsers, crossed_states, crossed_acceptances = self._cross(
                    store,
                    parent_parsers[ends_lexeme],
                    self._accepts[parent_states[ends_lexeme]],
                    child_bytes[ends_lexeme],
                )
                ok = crossed_states != 0
                nodes = np.concatenate([nodes, children[ends_lexeme][ok]])
                states = np.concatenate([states, crossed_states[ok]])
                parser_nodes = np.concatenate([parser_nodes, crossed_parsers[ok]])
                acceptances = np.concatenate([acceptances, crossed_acceptances[ok]])
            reached.append(nodes)
        return self._tokens_at(np.concatenate(reached))

    def _cross(self, store: StackStore, parser_nodes, terminals, first_bytes):
        """End lexemes: feed ``terminals`` to the parser at ``parser_nodes`` and start the next lexeme with
        ``first_bytes``. Returns (new parser nodes, new lexer states, their acceptance rows); lexer state 0
        where the parser refuses the terminal or the new lexeme cannot become one the new stack accepts.
        Python runs once per distinct (stack, terminal) pair."""
        keys = parser_nodes * self._num_terminals + terminals
        distinct, inverse = np.unique(keys, return_inverse=True)
        new_nodes = np.empty(distinct.size, dtype=np.int64)
        starts = np.zeros(distinct.size, dtype=np.int64)
        acceptances = np.zeros(distinct.size, dtype=np.int64)
        for i, key in enumerate(distinct.tolist()):
            parser_node, terminal = divmod(key, self._num_terminals)
            after = self._after_terminal(store, parser_node, terminal)
            new_nodes[i] = after
            if after != REJECTED:
                starts[i] = self._lexeme_start(store, after)
                acceptances[i] = self._acceptance_of(store, after)
        inverse = inverse.reshape(-1)
        states = self._transitions[starts[inverse] * 256 + first_bytes]  # start 0 is dead: stays 0
        row_acceptances = acceptances[inverse]
        states = np.where(self._viable_lookup(row_acceptances, states), states, 0)
        return new_nodes[inverse], states, row_acceptances

    def _tokens_at(self, trie_nodes: np.ndarray) -> np.ndarray:
        trie = self.vocabulary.trie
        if trie_nodes.size == 0:
            return np.empty(0, dtype=np.int64)
        first = trie.token_start[trie_nodes]
        counts = trie.token_start[trie_nodes + 1] - first
        total = int(counts.sum())
        if total == 0:
            return np.empty(0, dtype=np.int64)
        ends = np.cumsum(counts)
        positions = np.repeat(first - (ends - counts), counts) + np.arange(total)
        return trie.token_ids[positions].astype(np.int64)

    def _bits(self, tokens: np.ndarray) -> np.ndarray:
        allowed = np.zeros(self.num_words * 32, dtype=bool)
        allowed[tokens] = True
        return np.packbits(allowed, bitorder="little").view("<i4").astype(np.int32)

    def _dead_end(self, store: StackStore, node: int, lexer_state: int) -> GrammarError:
        names = [self.grammar.spec.terminals[t].name for t in store.expected_terminals(node)]
        return GrammarError(
            "the grammar has no valid continuation here: no token of the vocabulary can extend the output "
            f"(parser expects one of {names}, lexer state {lexer_state}). Either the vocabulary cannot spell "
            "the next terminal, or two adjacent terminals can only be told apart by a separator the grammar "
            "does not allow (e.g. NAME NAME with no %ignore'd whitespace)"
        )
