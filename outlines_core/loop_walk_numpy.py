"""The loop walk's numpy parts without the C kernels (``loop_walk.py``, ``config.NATIVE_LOOP_WALK``): where
each state's multi-byte characters lead (``character_targets``), and the token walk of the tokens a loop walk
leaves undecided, one vectorized numpy step per byte position, jumping over runs of the
chain's bytes through a table of where the runs of their few start states lead (or by powers of two), the
last few in Python with a regex jump over their run. The fallback where no C compiler was at hand, and
the reference the tests compare the C walk with.
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np

from . import config
from .regex.dfa import DEAD, Dfa
from .vocabulary import Vocabulary

#: Up to this many distinct states starting runs, ``NumpyTokenWalk._after_runs`` tabulates where their runs lead.
_FEW_RUN_STARTS = 8

#: ``NumpyTokenWalk._uniform_step`` answers this many states one by one, then maps every state at once.
_STEPS_ONE_BY_ONE = 32


#: The byte ranges of every valid multi-byte UTF-8 character (RFC 3629), one tuple per lead-byte kind.
UTF8_SEQUENCES = (
    ((0xC2, 0xDF), (0x80, 0xBF)),
    ((0xE0, 0xE0), (0xA0, 0xBF), (0x80, 0xBF)),
    ((0xE1, 0xEC), (0x80, 0xBF), (0x80, 0xBF)),
    ((0xED, 0xED), (0x80, 0x9F), (0x80, 0xBF)),
    ((0xEE, 0xEF), (0x80, 0xBF), (0x80, 0xBF)),
    ((0xF0, 0xF0), (0x90, 0xBF), (0x80, 0xBF), (0x80, 0xBF)),
    ((0xF1, 0xF3), (0x80, 0xBF), (0x80, 0xBF), (0x80, 0xBF)),
    ((0xF4, 0xF4), (0x80, 0x8F), (0x80, 0xBF), (0x80, 0xBF)),
)
#: One lead byte of each kind above.
UTF8_LEADS = np.array([sequence[0][0] for sequence in UTF8_SEQUENCES])


def character_targets(dfa: Dfa, states: np.ndarray) -> np.ndarray:
    """Per state of ``states``, the one state every valid multi-byte UTF-8 character leads to, else DEAD
    (``LoopWalk._character_targets`` without the C kernels, and the reference ``_native.character_targets``
    is tested against).

    The eight character kinds are walked together, one byte position at a time, for all the states at
    once: a walk per kind would cost a hundred small numpy calls. At each position, a (state, kind) row
    moves when every byte class of its kind's byte range leads to one state.
    """
    table = dfa.class_transitions
    kinds = len(UTF8_SEQUENCES)
    reached = np.repeat(states.astype(np.int64), kinds)  # row r: state r // kinds, character kind r % kinds
    kind = np.tile(np.arange(kinds), states.size)
    rows = np.arange(reached.size)
    for classes, firsts, columns, has_position in _character_positions(dfa.byte_classes.tolist()):
        block = table[reached[:, None], classes]
        first = block[rows, firsts[kind]]
        moves_alike = ~((block != first[:, None]) & columns[kind]).any(axis=1)
        reached = np.where(has_position[kind], np.where(moves_alike, first, DEAD), reached)
    reached = reached.reshape(states.size, kinds)
    return np.where((reached == reached[:, :1]).all(axis=1), reached[:, 0], DEAD)


def _character_positions(byte_classes: list[int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per byte position of a multi-byte UTF-8 character: the byte classes its kinds' ranges hold (a class
    need not be a contiguous byte range); per kind, the place among them of its range's first byte's class,
    and its range's classes as a mask over them; and which kinds have that many bytes."""
    kinds = len(UTF8_SEQUENCES)
    positions = []
    for position in range(max(len(sequence) for sequence in UTF8_SEQUENCES)):
        ranges = {
            kind: set(byte_classes[sequence[position][0] : sequence[position][1] + 1])
            for kind, sequence in enumerate(UTF8_SEQUENCES)
            if position < len(sequence)
        }
        classes = sorted(set().union(*ranges.values()))
        place = {klass: index for index, klass in enumerate(classes)}
        firsts = np.zeros(kinds, dtype=np.int64)
        columns = np.zeros((kinds, len(classes)), dtype=bool)
        has_position = np.zeros(kinds, dtype=bool)
        for kind, in_range in ranges.items():
            firsts[kind] = place[byte_classes[UTF8_SEQUENCES[kind][position][0]]]
            columns[kind, [place[klass] for klass in in_range]] = True
            has_position[kind] = True
        positions.append((np.array(classes, dtype=np.int64), firsts, columns, has_position))
    return positions


class NumpyTokenWalk:
    """The numpy token walk over one DFA and vocabulary, with its per-DFA memos (run regexes, where runs of a
    byte set lead). ``bytes_of_classes`` gives the bytes (256 bools) of a set of byte classes (a bit set)."""

    def __init__(self, dfa: Dfa, vocabulary: Vocabulary, bytes_of_classes: Callable[[int], np.ndarray]) -> None:
        self.dfa = dfa
        self.vocabulary = vocabulary
        self._bytes_of_classes = bytes_of_classes
        self._run_patterns: dict[int, re.Pattern | None] = {}
        self._powers: dict[int, list[np.ndarray]] = {}
        self._runs: dict[tuple[int, int], list[int]] = {}  # (class set, state): states of its run, by length
        self._steps: dict[int, dict[int, int]] = {}  # class set: state -> _uniform_step, while few are asked
        self._class_indices: dict[int, np.ndarray] = {}

    def walk(
        self, rest, current_states, position, remaining, resume, alive, states, chain_classes
    ) -> None:
        """``walk_tokens``'s fallback: the tokens ``rest`` one vectorized step per byte position, from their
        states, positions and remaining lengths (``LoopWalk._text_chain``), setting ``alive`` where they
        survive. ``states``: the chain's states; ``chain_classes``: its byte set (None for a narrowing
        chain, whose tokens have no runs to jump)."""
        table = self.vocabulary.token_table
        transitions = self.dfa.flat_transitions
        while rest.size:
            if rest.size <= config.LOOP_WALK_TAIL_TOKENS:  # a few long survivors: per-step numpy overhead dominates
                self._walk_tail(rest, current_states, position, remaining, alive, states, chain_classes)
                break
            current_states = transitions[current_states * 256 + table.flat[position]]
            remaining = remaining - 1
            survived = current_states != DEAD
            if resume is not None:
                # Past its first byte outside the chain's set comes a run of the set's bytes (``.com`` in
                # an email): where every step of that run moves all of the set's bytes alike, the token
                # jumps over it in a few gathers (the run's length in binary).
                # Only the survivors with such a run take part (a few percent of the tokens walked).
                jumping = np.flatnonzero(survived & (resume > 0))
                if jumping.size:
                    runs = resume[jumping]
                    jumped = self._after_runs(chain_classes, current_states[jumping], runs)
                    landed = jumped != DEAD
                    jumping, runs = jumping[landed], runs[landed]
                    current_states[jumping] = jumped[landed]  # these arrays are this walk's own copies
                    position = position.copy()
                    position[jumping] += runs
                    remaining[jumping] -= runs
                resume = None
            alive[rest[survived & (remaining == 0)]] = True
            going = survived & (remaining > 0)
            rest, current_states = rest[going], current_states[going]
            position, remaining = position[going] + 1, remaining[going]

    def _walk_tail(self, rest, current_states, position, remaining, alive, states, chain_classes) -> None:
        """Finish the last few tokens of a loop walk in Python. A token sitting on the chain jumps over
        its run of chain bytes (one regex match) to the chain state that run reaches: the survivors are
        mostly long runs (of spaces, dashes...) ending in a byte that kills them."""
        flat, walk = self.vocabulary.token_table.flat, self.dfa.walk
        run = None
        if chain_classes is not None and len(states) > 1:
            run = self.run_pattern(chain_classes)
            # c(0) .. c(L); a chain that ends in a self-loop has c(L) == c(L-1), which takes any run.
            where = {at: index for index, at in enumerate(states[:-1])}
            looping = states[-1] == states[-2]
        for token, at, begin, left in zip(rest.tolist(), current_states.tolist(), position.tolist(), remaining.tolist()):
            data = flat[begin : begin + left].tobytes()
            index = where.get(at) if run is not None else None
            if index is not None:
                jump = run.match(data).end()
                reached = min(index + jump, len(states) - 1)
                at = states[reached]
                data = data[jump if looping and reached == len(states) - 1 else reached - index :]
            if walk(data, at) != DEAD:
                alive[token] = True

    def run_pattern(self, chain_classes: int) -> re.Pattern | None:
        """The regex matching a run of the ASCII bytes of the byte classes ``chain_classes`` (compiling it
        costs 0.4 ms the first time in a process: ``LoopWalk.prepare`` does it at construction)."""
        if chain_classes not in self._run_patterns:
            ascii_run = np.flatnonzero(self._bytes_of_classes(chain_classes)[:128]).astype(np.uint8).tobytes()
            pattern = re.compile(b"[" + re.escape(ascii_run) + b"]*") if ascii_run else None
            self._run_patterns[chain_classes] = pattern
        return self._run_patterns[chain_classes]

    def _after_runs(self, class_set: int, starts: np.ndarray, runs: np.ndarray) -> np.ndarray:
        """The state each of ``starts`` reaches after its run of ``runs`` bytes of the byte classes
        ``class_set`` (DEAD where those bytes stop moving alike, see ``_uniform_powers``)."""
        longest = int(runs.max())
        counts = np.bincount(starts)
        distinct = np.flatnonzero(counts)
        if distinct.size > _FEW_RUN_STARTS:  # one gather per bit of the longest run
            for bit, power in enumerate(self._uniform_powers(class_set, longest.bit_length())):
                starts = np.where((runs >> bit) & 1, power[starts], starts)
            return starts
        # Usually one or two states follow the exit bytes (a label's start after '.', a string's end):
        # where their runs lead, as a small table, then one gather.
        table = np.empty((distinct.size, longest + 1), dtype=np.int64)
        for row, state in enumerate(distinct.tolist()):
            run = self._runs.get((class_set, state))
            if run is None or len(run) <= longest:
                # Extended in a copy, then stored whole (``_uniform_powers`` says why).
                run = [state] if run is None else list(run)
                while len(run) <= longest:
                    at = run[-1]
                    if at == DEAD:
                        run.extend([DEAD] * (longest + 1 - len(run)))
                        break
                    run.append(self._uniform_step(class_set, at))
                self._runs[(class_set, state)] = run
            table[row] = run[: longest + 1]
        row_of = np.zeros(counts.size, dtype=np.int64)
        row_of[distinct] = np.arange(distinct.size)
        return table[row_of[starts], runs]

    def _uniform_step(self, class_set: int, state: int) -> int:
        """The state every byte of the byte classes ``class_set`` leads to from ``state``, else DEAD: the
        first of ``_uniform_powers``, asked state by state while few are (a string's end, after which the
        run dies at once, needs one; the whole map costs a pass over every state's row)."""
        powers = self._powers.get(class_set)
        if powers:
            return powers[0].item(state)
        steps = self._steps.setdefault(class_set, {})
        target = steps.get(state)
        if target is None:
            if len(steps) >= _STEPS_ONE_BY_ONE:
                return self._uniform_powers(class_set, 1)[0].item(state)
            row = self.dfa.class_transitions[state, self._classes_in(class_set)]
            target = steps[state] = int(row[0]) if (row == row[0]).all() else DEAD
        return target

    def _classes_in(self, class_set: int) -> np.ndarray:
        """The byte classes of the bit set ``class_set``, as an index array."""
        classes = self._class_indices.get(class_set)
        if classes is None:
            classes = self._class_indices[class_set] = np.flatnonzero(
                [(class_set >> klass) & 1 for klass in range(self.dfa.class_transitions.shape[1])]
            )
        return classes

    def _uniform_powers(self, class_set: int, count: int) -> list[np.ndarray]:
        """``count`` arrays over states: entry ``i`` maps a state to the one ``2**i`` bytes of the byte
        classes ``class_set`` lead to, when every byte of them moves alike at each of those steps (so any
        run of them of that length gets there); DEAD where that fails."""
        powers = self._powers.get(class_set)
        if powers is None or len(powers) < count:
            # Extended in a copy, then stored whole: an index is shared between threads, and two appending
            # to one list could store a map twice, each later power then wrong.
            if powers is None:
                # Whole class columns (contiguous rows of the transposed table) rather than a strided gather.
                targets = self.dfa.class_columns[self._classes_in(class_set)]
                uniform = (targets == targets[0]).all(axis=0)
                powers = [np.where(uniform, targets[0], DEAD).astype(np.int64)]
            else:
                powers = list(powers)
            while len(powers) < count:
                powers.append(powers[-1][powers[-1]])
            self._powers[class_set] = powers
        return powers
