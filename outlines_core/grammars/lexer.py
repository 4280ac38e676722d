"""The grammar's lexer as byte automata: one DFA per lexer context, all in one transition table.

Like Lark's contextual lexer, the terminals the lexer looks for depend on the parser state: a *context*
is the set of terminals some LALR state accepts, plus the ``%ignore``d ones. Each context gets the product
of its terminals' DFAs, so one table lookup per byte advances every candidate terminal at once, and each
product state knows which terminal a lexeme ending there would be.

A lexeme ends only when the next byte cannot extend any candidate terminal, and each terminal's DFA is
read first-match, as Lark's ``re.match`` reads it (``first_match``: its DFA has no move past the point where
``re`` stops). That is what makes generated text lex the same way when Lark parses it again: the lexeme we
produced is the match ``re`` finds at its position. Where several terminals match, the winner is Lark's:
higher priority first, then string literals over regexes (a keyword beats the identifier regex it also
matches), then the grammar's order.

All contexts' states share one numbered space (``transitions`` is ``(states, 256)``, state 0 is dead), so
the vocabulary walk can advance frontier entries of different contexts with a single numpy gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import config
from ..errors import DfaTooLargeError, GrammarError, RegexSyntaxError
from ..regex.dfa import DEAD, Dfa
from .first_match import first_match_dfa
from .lark_frontend import END, GrammarSpec

NO_TERMINAL = -1


@dataclass(frozen=True)
class Lexer:
    """``transitions[state, byte]``: next lexer state (``DEAD`` = no candidate terminal continues).
    ``accepts[state]``: the terminal a lexeme ending in ``state`` is, or ``NO_TERMINAL``.
    ``context_start[context]``: the state that begins a lexeme in that context.
    ``context_of_parser_state[lalr_state]``: the context the lexer uses in that parser state."""

    transitions: np.ndarray
    accepts: np.ndarray
    context_start: np.ndarray
    context_of_parser_state: np.ndarray
    contexts: tuple[frozenset[int], ...]
    #: ``possible[state]``: packed bitset (uint64 words) of the terminals a lexeme passing through
    #: ``state`` can still end as. The parser's LALR tables merge lookaheads, so a context may contain
    #: terminals the actual stack rejects; recognizers prune lexer states whose possible terminals the
    #: stack accepts none of (otherwise ``12)`` would look like a viable prefix of an arithmetic sentence).
    possible: np.ndarray

    @property
    def num_states(self) -> int:
        return int(self.transitions.shape[0])


def terminal_dfas(spec: GrammarSpec) -> list[Dfa]:
    """Each terminal's DFA as Lark's ``re`` reads it: its first match, not its longest (``first_match``)."""
    dfas = []
    for terminal in spec.terminals:
        try:
            dfa = first_match_dfa(terminal.regex)
        except RegexSyntaxError as error:
            raise GrammarError(
                f"terminal {terminal.name} ({terminal.regex!r}) cannot be compiled: {error.reason} at position "
                f"{error.position}"
            ) from None
        except DfaTooLargeError as error:
            raise GrammarError(f"terminal {terminal.name} is too large: {error}") from None
        if dfa.accepting[dfa.start]:
            raise GrammarError(
                f"terminal {terminal.name} ({terminal.regex!r}) matches the empty string; a lexeme must "
                "consume at least one character"
            )
        dfas.append(dfa)
    return dfas


def build_lexer(spec: GrammarSpec, dfas: list[Dfa]) -> Lexer:
    table = spec.table
    contexts: dict[frozenset[int], int] = {}
    if table is None:  # Earley: Lark's basic lexer, every terminal a candidate (one context)
        contexts[frozenset(range(len(spec.terminals)))] = 0
        context_of_state = np.zeros(1, dtype=np.int64)
    else:
        context_of_state = np.zeros(len(table.actions), dtype=np.int64)
    for state, actions in enumerate(table.actions if table is not None else ()):
        terminals = frozenset(t for t in actions if t != END) | spec.ignore
        context_of_state[state] = contexts.setdefault(terminals, len(contexts))
    ordered = sorted(contexts, key=contexts.get)
    blocks_transitions, blocks_accepts, starts = [], [], []
    offset = 1  # global state 0 is the shared dead state
    for terminals in ordered:
        transitions, accepts = _context_automaton(spec, dfas, sorted(terminals))
        # Local state 0 is dead; local state i >= 1 becomes global offset + i - 1.
        local_to_global = np.concatenate([[DEAD], offset + np.arange(transitions.shape[0] - 1)])
        blocks_transitions.append(local_to_global[transitions[1:]])
        blocks_accepts.append(accepts[1:])
        starts.append(offset)  # the automaton's start is local state 1
        offset += transitions.shape[0] - 1
    all_transitions = np.concatenate([np.zeros((1, 256), dtype=np.int64)] + blocks_transitions).astype(np.int32)
    all_accepts = np.concatenate([[NO_TERMINAL]] + blocks_accepts).astype(np.int32)
    return Lexer(
        transitions=all_transitions,
        accepts=all_accepts,
        context_start=np.array(starts, dtype=np.int64),
        context_of_parser_state=context_of_state,
        contexts=tuple(ordered),
        possible=_possible_terminals(all_transitions, all_accepts, len(spec.terminals)),
    )


def terminal_bitset(terminals, num_terminals: int) -> np.ndarray:
    """Packed uint64 bitset of ``terminals`` (the layout of ``Lexer.possible`` rows)."""
    words = np.zeros(max(1, (num_terminals + 63) // 64), dtype=np.uint64)
    for terminal in terminals:
        words[terminal >> 6] |= np.uint64(1) << np.uint64(terminal & 63)
    return words


def _possible_terminals(transitions: np.ndarray, accepts: np.ndarray, num_terminals: int) -> np.ndarray:
    """For each state, the terminals reachable as a lexeme's end (itself included): a backward fixpoint
    over the distinct (state, successor) edges."""
    n_states = transitions.shape[0]
    possible = np.zeros((n_states, max(1, (num_terminals + 63) // 64)), dtype=np.uint64)
    ends = np.flatnonzero(accepts != NO_TERMINAL)
    terminals = accepts[ends].astype(np.int64)
    possible[ends, terminals >> 6] |= np.left_shift(np.uint64(1), (terminals & 63).astype(np.uint64))
    sources = np.repeat(np.arange(n_states), transitions.shape[1])
    targets = transitions.reshape(-1).astype(np.int64)
    live = targets != DEAD
    edges = np.unique(np.stack([sources[live], targets[live]], axis=1), axis=0)
    if edges.size == 0:
        return possible
    src, dst = edges[:, 0], edges[:, 1]
    while True:
        grown = possible.copy()
        np.bitwise_or.at(grown, src, possible[dst])
        if np.array_equal(grown, possible):
            return possible
        possible = grown


def _context_automaton(spec: GrammarSpec, dfas: list[Dfa], members: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The lexer of one context, emulating Lark's scanner: it tries terminals in its fixed order and takes
    the first that matches, then renames a regex match that equals one of its ``unless`` strings.

    States are (state of every member terminal, best rank any member has matched so far). A lexeme can
    end in a state only as the best-ranked terminal that matched, and only if that terminal matches right
    there: had a better-ranked terminal matched a shorter prefix, Lark would have cut the lexeme there, so
    such states cannot end a lexeme, and states that can never end one are trimmed to dead (then the
    boundary falls where Lark puts it). Returns (transitions with local state 0 dead and 1 the start,
    terminal of a lexeme ending in each state or ``NO_TERMINAL``).
    """
    if not members:
        return np.zeros((2, 256), dtype=np.int64), np.full(2, NO_TERMINAL)
    unless = spec.unless or {}
    member_set = set(members)
    embedded = {s for r in members for s, inside in unless.get(r, ()) if inside and s in member_set}
    scanner = sorted((m for m in members if m not in embedded), key=lambda m: spec.terminals[m].lark_order)
    unranked = len(members)
    rank = np.array([scanner.index(m) if m in scanner else unranked for m in members], dtype=np.int64)
    renames = {
        i: [members.index(s) for s, _ in unless.get(m, ()) if s in member_set] for i, m in enumerate(members)
    }
    member_dfas = [dfas[m] for m in members]
    # Joint byte classes: bytes every member treats alike.
    columns = np.stack([dfa.byte_classes for dfa in member_dfas], axis=1)
    _, representative, joint_class = np.unique(columns, axis=0, return_index=True, return_inverse=True)
    joint_class = joint_class.reshape(-1)
    n_classes = len(representative)
    width = max(dfa.num_states for dfa in member_dfas)
    # step[i, s, c]: member i's next state from s on joint class c (padded rows stay dead).
    step = np.zeros((len(members), width, n_classes), dtype=np.int64)
    accepting = np.zeros((len(members), width), dtype=bool)
    for i, dfa in enumerate(member_dfas):
        step[i, : dfa.num_states] = dfa.class_transitions[:, dfa.byte_classes[representative]]
        accepting[i, : dfa.num_states] = dfa.accepting
    axis = np.arange(len(members))

    def key_of(states: np.ndarray, best: int) -> bytes:
        return states.tobytes() + int(best).to_bytes(4, "little")

    dead = np.zeros(len(members), dtype=np.int64)
    start = np.array([dfa.start for dfa in member_dfas], dtype=np.int64)
    # The start is marked apart ("nothing read", a rank no transition produces): a lexeme that brings every
    # member back to its start state (``(ab)*c`` after ``ab``) is in progress, and the recognizers read
    # "lexer state == the context's start" as "no lexeme pending".
    fresh = unranked + 1
    ids = {key_of(dead, unranked): 0, key_of(start, fresh): 1}
    nodes = [(dead, unranked), (start, fresh)]
    rows: list[np.ndarray] = [np.zeros(n_classes, dtype=np.int64)]
    cursor = 1
    while cursor < len(nodes):
        states, best = nodes[cursor]
        successors = step[axis, states, :]  # (members, classes)
        matched = accepting[axis[:, None], successors]  # which members accept after each class
        best_after = np.minimum(best, np.where(matched, rank[:, None], unranked).min(axis=0))
        row = np.empty(n_classes, dtype=np.int64)
        for klass in range(n_classes):
            target = successors[:, klass]
            if not target.any():
                row[klass] = 0
                continue
            key = key_of(target, int(best_after[klass]))
            found = ids.get(key)
            if found is None:
                found = ids[key] = len(nodes)
                nodes.append((target.copy(), int(best_after[klass])))
                if len(nodes) > config.MAX_DFA_STATES:
                    names = [spec.terminals[m].name for m in members]
                    raise GrammarError(f"the lexer for terminals {names} needs more than {config.MAX_DFA_STATES} states")
            row[klass] = found
        rows.append(row)
        cursor += 1
    class_transitions = np.stack(rows)
    accepts = np.full(len(nodes), NO_TERMINAL, dtype=np.int64)
    for node, (states, best) in enumerate(nodes):
        if best >= unranked:
            continue
        winner = int(np.flatnonzero(rank == best)[0])
        if not accepting[winner, states[winner]]:
            continue
        renamed = [s for s in renames[winner] if accepting[s, states[s]]]
        accepts[node] = members[renamed[0] if renamed else winner]
    class_transitions = _trim(class_transitions, accepts != NO_TERMINAL)
    return class_transitions[:, joint_class], accepts


def _trim(class_transitions: np.ndarray, ends_lexeme: np.ndarray) -> np.ndarray:
    """Send every transition into a state that can never end a lexeme to the dead state 0."""
    n_states = class_transitions.shape[0]
    useful = ends_lexeme.copy()
    useful[0] = False
    while True:
        grown = useful | useful[class_transitions].any(axis=1)
        grown[0] = False
        if np.array_equal(grown, useful):
            break
        useful = grown
    useful_with_dead = useful.copy()
    useful_with_dead[0] = True
    trimmed = np.where(useful_with_dead[class_transitions], class_transitions, 0)
    trimmed[~useful] = 0
    del n_states
    return trimmed
