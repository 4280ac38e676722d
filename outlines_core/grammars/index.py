"""Token masks for a grammar: which tokens keep the output a prefix of some sentence.

A recognizer state is (parser stack, lexer state): the stack is an interned LALR configuration
(``parser.StackStore``), the lexer state a state of the contextual lexer's automata (``lexer.Lexer``),
i.e. the lexeme in progress. A token is allowed when its bytes can be lexed from there: bytes that extend
the current lexeme just move the lexer; a byte that cannot extend it ends the lexeme (if it is a complete
terminal), feeds that terminal to the parser (``%ignore``d ones are dropped) and starts the next lexeme in
the context of the parser's new state. A single token may cross several lexemes.

The mask of a state is assembled from cached *segments*. A segment is the part of a vocabulary-trie walk
that stays inside one lexeme: starting from a frontier of (trie node, lexer state) pairs it records the
tokens that end inside the lexeme and, grouped by the terminal the lexeme ends as, the trie nodes where a
byte ends it. None of that depends on the parser. Only at a lexeme boundary is the parser consulted (once
per distinct (stack, terminal), memoized), and the next segment is keyed by (previous segment, terminal,
the new stack's lexeme start state, which terminals the new stack accepts): coarse facts shared by many
stacks. So the numpy walks run once per segment key and a new state's mask costs one small Python loop
over the segment tree (a handful of parser questions) plus a union of cached token sets; the result is
also kept per (stack, lexer state) in an LRU.

Segments are level-synchronous numpy walks of the trie (one gather per level for the whole frontier), so
no Python loop runs over tokens.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from .. import config
from ..arrays import concatenated_ranges
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


class _Segment(NamedTuple):
    """A cached piece of trie walk inside one lexeme (see the module docstring)."""

    key_id: int
    tokens: np.ndarray | None  # token ids ending inside the lexeme (small sets) ...
    packed: np.ndarray | None  # ... or their packed bitmask (large sets)
    crossings: tuple[tuple[int, np.ndarray, np.ndarray], ...]  # (terminal, trie nodes, their bytes)


#: Cached segments per index before the cache is dropped and rebuilt on demand (bounds memory).
MAX_SEGMENTS = 100_000


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
        self._store = self.grammar.new_store()
        self._segments: dict[tuple, _Segment | None] = {}
        self._segment_counter = 0
        self._possible = lexer.possible
        # Viability: per distinct set of terminals a stack accepts, which lexer states can still end in one
        # of them (``_viable_rows[i]``); ``_acceptance`` maps (store, node) to that row.
        self._acceptance: dict[tuple[int, int], int] = {}
        self._acceptance_ids: dict[tuple[int, ...], int] = {}
        self._context_terminals = [sorted(context) for context in lexer.contexts]
        self._ignored_list = self._ignored.tolist()
        self._viable_rows: list[np.ndarray] = []
        self._masks: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._allowed_ids: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self.eos_mask = vocabulary.eos_bitmask
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
                self._store = self.grammar.new_store()
                self._acceptance.clear()  # the old store's entries: its guides recompute what they ask again
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
        """Index in ``_viable_rows`` for stack ``node``: lexer states that can still end as a terminal the
        stack accepts (``%ignore``d terminals always are)."""
        key = (store.serial, node)
        found = self._acceptance.get(key)
        if found is not None:
            return found
        ignored = self._ignored_list
        candidates = self._context_terminals[self._context_of[store.top(node)]]
        accepted = tuple(t for t in candidates if ignored[t] or store.feed(node, t) != REJECTED)
        found = self._acceptance_ids.get(accepted)
        if found is None:
            found = self._acceptance_ids[accepted] = len(self._viable_rows)
            viable = (self._possible & terminal_bitset(accepted, self._num_terminals)).any(axis=1)
            viable[0] = False
            self._viable_rows.append(viable)
        self._acceptance[key] = found
        return found

    # -- masks -------------------------------------------------------------------------------------
    def mask(self, state: GrammarState) -> np.ndarray:
        """Packed allowed-token bitmask (read-only int32 words, xgrammar's layout) of ``state``."""
        store, node, lexer_state = state
        if node == FINISHED:
            return self.eos_mask
        key = (store.serial, node, lexer_state)
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
        allowed = np.zeros(self.num_words * 32, dtype=bool)
        packed = np.zeros(self.num_words, dtype=np.int32)
        acceptance = self._acceptance_of(store, node)
        pending = [(self._root_segment(lexer_state, acceptance), node)]
        while pending:
            segment, parser_node = pending.pop()
            if segment.tokens is not None:
                allowed[segment.tokens] = True
            else:
                packed |= segment.packed
            for terminal, trie_nodes, first_bytes in segment.crossings:
                after = self._after_terminal(store, parser_node, terminal)
                if after == REJECTED:
                    continue
                start = self._lexeme_start(store, after)
                following = self._next_segment(segment, terminal, start, self._acceptance_of(store, after), trie_nodes, first_bytes)
                if following is not None:
                    pending.append((following, after))
        return packed | np.packbits(allowed, bitorder="little").view("<i4")

    def _root_segment(self, lexer_state: int, acceptance: int) -> _Segment:
        key = ("root", lexer_state, acceptance)
        segment = self._segments.get(key)
        if segment is None:
            self._bound_segments()
            segment = self._segments[key] = self._walk(
                np.zeros(1, dtype=np.int64), np.array([lexer_state], dtype=np.int64), acceptance, include_frontier=False
            )
        return segment

    def _next_segment(self, previous: _Segment, terminal: int, start: int, acceptance: int, trie_nodes, first_bytes):
        key = (previous.key_id, terminal, start, acceptance)
        segment = self._segments.get(key, False)
        if segment is False:
            self._bound_segments()
            states = self._transitions[start * 256 + first_bytes]
            viable = self._viable_rows[acceptance][states]
            segment = None
            if viable.any():
                segment = self._walk(trie_nodes[viable], states[viable], acceptance, include_frontier=True)
            self._segments[key] = segment
        return segment

    def _bound_segments(self) -> None:
        if len(self._segments) >= MAX_SEGMENTS:
            # Keys name segments by id, so everything goes at once; masks already computed stay cached.
            self._segments.clear()

    def _walk(self, nodes: np.ndarray, states: np.ndarray, acceptance: int, include_frontier: bool) -> _Segment:
        """Walk the trie below ``nodes`` (lexer ``states`` there) while the lexeme goes on."""
        trie = self.vocabulary.trie
        viable = self._viable_rows[acceptance]
        reached = [nodes] if include_frontier else []
        ended_nodes, ended_bytes, ended_terminals = [], [], []
        while nodes.size:
            children, parents = self._expand(nodes)
            if children is None:
                break
            parent_states = states[parents]
            child_bytes = trie.node_byte[children].astype(np.int64)
            following = self._transitions[parent_states * 256 + child_bytes]
            ends_lexeme = (following == 0) & (self._accepts[parent_states] != NO_TERMINAL)
            if ends_lexeme.any():
                ended_nodes.append(children[ends_lexeme])
                ended_bytes.append(child_bytes[ends_lexeme])
                ended_terminals.append(self._accepts[parent_states[ends_lexeme]])
            alive = viable[following]  # the dead state 0 is never viable
            nodes, states = children[alive], following[alive]
            reached.append(nodes)
        tokens = self._tokens_at(np.concatenate(reached) if reached else np.empty(0, dtype=np.int64))
        crossings = []
        if ended_nodes:
            ended_nodes_all = np.concatenate(ended_nodes)
            ended_bytes_all = np.concatenate(ended_bytes)
            ended_terminals_all = np.concatenate(ended_terminals)
            for terminal in np.unique(ended_terminals_all).tolist():
                chosen = ended_terminals_all == terminal
                crossings.append((int(terminal), ended_nodes_all[chosen], ended_bytes_all[chosen]))
        self._segment_counter += 1
        key_id = self._segment_counter
        if tokens.size > self.num_words:  # packed is smaller once the ids take more room than the bits
            return _Segment(key_id, None, self._bits(tokens), tuple(crossings))
        return _Segment(key_id, tokens.astype(np.int32), None, tuple(crossings))

    def _expand(self, trie_nodes: np.ndarray):
        """Every child of every node in the frontier, and for each child the index of its parent entry."""
        trie = self.vocabulary.trie
        counts = trie.child_count[trie_nodes]
        total = int(counts.sum())
        if total == 0:
            return None, None
        children = concatenated_ranges(trie.child_start[trie_nodes], counts, total)
        parents = np.repeat(np.arange(len(trie_nodes)), counts)
        return children, parents

    def _tokens_at(self, trie_nodes: np.ndarray) -> np.ndarray:
        trie = self.vocabulary.trie
        if trie_nodes.size == 0:
            return np.empty(0, dtype=np.int64)
        first = trie.token_start[trie_nodes]
        counts = trie.token_start[trie_nodes + 1] - first
        total = int(counts.sum())
        if total == 0:
            return np.empty(0, dtype=np.int64)
        positions = concatenated_ranges(first, counts, total)
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
