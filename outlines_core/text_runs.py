"""The tokens of a text byte set, for the loop walk (``loop_walk.py``): which tokens are made only of its
bytes, and, for the others, how far a run of its bytes takes each before the byte that leaves it. Built
once per vocabulary and byte set (``TokenTable.text_run`` keeps them), read by the C text-run walk and the
numpy fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, NamedTuple

import numpy as np

from .native import kernels

if TYPE_CHECKING:
    from .vocabulary import TokenTable


#: The text bytes of a JSON string's characters (``types``' string regex: any character but ``"``, ``\\`` and
#: the controls below 0x20; with ``characters``, whole UTF-8 characters count too): ``Vocabulary.prepare``
#: builds this run ahead of the first request.
JSON_STRING_TEXT = np.array([32 <= byte < 128 and byte not in (0x22, 0x5C) for byte in range(256)])
JSON_STRING_TEXT.setflags(write=False)


class WholeChain(NamedTuple):
    """``TextRun.whole_chain``: the tokens chained (bool per token, read-only), how many, and the packed
    mask words of them (read-only: a walk writes into a copy)."""

    chained: np.ndarray
    count: int
    packed: np.ndarray


@dataclass(frozen=True, eq=False)
class TextRun:
    """The tokens of one text byte set ``T`` (``TokenTable.text_run``).

    ``is_text``: content tokens made only of ``T`` (with ``characters``: of ``T``'s ASCII bytes and whole
    UTF-8 characters, a cut last one included). ``others``: the ids of the other content tokens, and
    ``prefix``: how many of their leading bytes are single-byte moves of ``T`` (its ASCII bytes, with
    ``characters``), which a walk can jump over; ``resume``: how many follow their first byte outside
    them (a walk that is back in a state looping on ``T`` there jumps again). ``others`` lists first the tokens with no such prefix,
    by first byte (those starting with byte ``b`` are ``others[lead_bounds[b]:lead_bounds[b + 1]]``, so
    a state picks only those its live bytes start), then from ``lead_bounds[256]`` on the rest, whose
    ``exit_byte`` (the byte after their prefix) likewise lets a walk skip those that die there: they are
    listed by exit byte (``exit_bounds``), the longest prefix first.
    """

    is_text: np.ndarray
    others: np.ndarray
    prefix: np.ndarray
    resume: np.ndarray
    lead_bounds: np.ndarray
    exit_byte: np.ndarray  # of the others with a prefix (``others[lead_bounds[256]:]``): their byte after it
    exit_bounds: np.ndarray  # those with exit byte ``b`` are ``others[exit_bounds[b]:exit_bounds[b + 1]]``
    #: Of the others with no prefix (``others[:lead_bounds[256]]``): each one's place in the vocabulary's
    #: first-byte order (``TokenTable.first_byte_order``), where the walk reads their bytes (int32).
    lead_positions: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "_longer_than", {})
        object.__setattr__(self, "_longer_runs", {})
        object.__setattr__(self, "_others_lengths", None)
        object.__setattr__(self, "_whole_chain", None)
        object.__setattr__(self, "_text_by_count", {})

    def whole_chain(self, char_counts: np.ndarray | None, longest: int, num_words: int) -> "WholeChain":
        """The tokens a loop walk of this run's states chains when it decides every token and the chain
        is as long as the longest token (a string's or a label's self-loop): the text tokens, those with a
        character count (``char_counts``, given when the run is of ``characters``) of at most ``longest``
        with ``characters``; with their count and as packed words of ``num_words`` words. Made on first
        use and kept: every such state of every constraint over the vocabulary asks the same (an e-mail's
        four labels, each a byte set of its own, paid 20 us each a compile to make them)."""
        whole = self._whole_chain
        if whole is None:
            chained = self.is_text if char_counts is None else self.is_text & (char_counts <= longest)
            chained = chained.copy()
            chained.setflags(write=False)
            padded = np.zeros(num_words * 32, dtype=bool)
            padded[: chained.size] = chained
            packed = np.packbits(padded, bitorder="little").view("<i4").astype(np.int32, copy=False)
            packed.setflags(write=False)
            whole = WholeChain(chained, int(np.count_nonzero(chained)), packed)
            object.__setattr__(self, "_whole_chain", whole)
        return whole

    def text_by_count(self, length: int, longer: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """The text tokens of more than ``length`` bytes (``longer``: the ids of all such tokens; ``counts``:
        their counts, characters or bytes as the run's kind), ordered by count, and their counts (a list, for
        ``bisect``: numpy's search costs 3 us a call): the ones an alike walk chains up to a count are a
        prefix. Kept per length (a counted run's positions ask a few)."""
        ordered = self._text_by_count.get(length)
        if ordered is None:
            text = np.flatnonzero(self.is_text[longer])
            order = text[np.argsort(counts[text], kind="stable")]
            ids = longer[order]
            ids.setflags(write=False)
            ordered = self._text_by_count[length] = (ids, counts[order].tolist())
        return ordered

    def others_longer_than(self, length: int, lengths: np.ndarray) -> np.ndarray:
        """The positions in ``others`` of the tokens of more than ``length`` bytes (``lengths``: the
        vocabulary's token lengths), in order; kept per length, like ``TokenTable.longer_than``."""
        positions = self._longer_than.get(length)
        if positions is None:
            if self._others_lengths is None:  # one gather for every length asked (a loop walk asks six)
                object.__setattr__(self, "_others_lengths", lengths[self.others])
            positions = np.flatnonzero(self._others_lengths > length)
            positions.setflags(write=False)
            self._longer_than[length] = positions
        return positions

    def longer_run(self, length: int, lengths: np.ndarray, together: Iterable[int] = ()) -> "TextRun":
        """This run with only the ``others`` of more than ``length`` bytes, in the same order and groups
        (``is_text`` stays whole, by token id): a loop walk that takes the shorter tokens from an alike
        state's mask walks these few hundred where it skipped through tens of thousands. Kept per length;
        the lengths of ``together`` not kept yet are made with it (the alike depths a counted run's
        positions ask in turn: 0.3 to 0.7 ms each on its own after a full collection, a third of that
        together)."""
        run = self._longer_runs.get(length)
        if run is None:
            for each in sorted({length, *together}):
                if each not in self._longer_runs:
                    self._longer_runs[each] = self._only_longer_than(each, lengths)
            run = self._longer_runs[length]
        return run

    def _only_longer_than(self, length: int, lengths: np.ndarray) -> "TextRun":
        kept = self.others_longer_than(length, lengths)
        first_exit = int(self.lead_bounds[256])
        return TextRun(
            self.is_text,
            self.others[kept],
            self.prefix[kept],
            self.resume[kept],
            np.searchsorted(kept, self.lead_bounds).astype(np.int64),
            self.exit_byte[kept[kept >= first_exit] - first_exit],
            np.searchsorted(kept, self.exit_bounds).astype(np.int64),
            self.lead_positions[kept[kept < first_exit]],
        )


def build(table: TokenTable, text_bytes: np.ndarray, characters: bool) -> TextRun:
    """The ``TextRun`` of ``text_bytes`` (256 bools) over ``table``'s tokens; with ``characters``, whole UTF-8
    characters count as text too. Its tables by the C kernel (``_native.text_run_tables``: 2 to 3 times
    faster, on a first request that meets the byte set), else by ``_numpy_tables``."""
    single = text_bytes.copy()
    if characters:
        allowed = text_bytes.copy()
        allowed[128:] = True
        is_text = table.within(allowed) & table.utf8_text
        single[128:] = False
    else:
        is_text = table.within(text_bytes)
    other = ~is_text & table.content
    if kernels is None:
        return TextRun(is_text, *_numpy_tables(table, single, other))
    count = int(np.count_nonzero(other))
    others, prefix, resume = (np.empty(count, dtype=np.int64) for _ in range(3))
    lead_bounds, exit_bounds = np.empty(257, dtype=np.int64), np.empty(257, dtype=np.int64)
    exit_byte, lead_positions = np.empty(count, dtype=np.uint8), np.empty(count, dtype=np.int32)
    bare = kernels.text_run_tables(
        table.flat, table.offsets, table.lengths.astype(np.int64), other, single, table.first_byte_order[2],
        others, prefix, resume, lead_bounds, exit_byte, exit_bounds, lead_positions,
    )
    return TextRun(
        is_text, others, prefix, resume, lead_bounds, exit_byte[: count - bare], exit_bounds, lead_positions[:bare]
    )


def _numpy_tables(table: TokenTable, single: np.ndarray, other: np.ndarray) -> tuple:
    """``TextRun``'s fields after ``is_text`` in numpy, for the tokens ``other`` (content, not text)."""
    others = np.flatnonzero(other)
    # Every other token has a byte outside the single-move set, so its prefix stops inside it.
    starts = table.offsets[others]
    lengths = table.lengths[others]
    prefix = _leading_runs(table.flat, single, starts, lengths)
    # The run of single-move bytes right after that first outside byte (``.com`` after ``.``).
    resume = _leading_runs(table.flat, single, starts + prefix + 1, lengths - prefix - 1)
    bare = np.zeros(table.content.size, dtype=bool)
    bare[others[prefix == 0]] = True
    by_lead = table.by_first_byte
    bare_by_lead = by_lead[bare[by_lead]]
    lead_bounds = np.concatenate([[0], np.cumsum(np.bincount(table.first_bytes[bare_by_lead], minlength=256))])
    jumping = prefix > 0
    resume_of = np.zeros(table.content.size, dtype=np.int64)
    resume_of[others] = resume
    exit_byte = table.flat[starts[jumping] + prefix[jumping]]
    # By exit byte, the longest prefix first: a walk skips a group whose exit byte no chain state takes,
    # except, on a counted run, its first tokens, whose prefix outruns the chain.
    by_exit = np.lexsort((-prefix[jumping], exit_byte))
    exit_byte = exit_byte[by_exit]
    exit_bounds = bare_by_lead.size + np.concatenate([[0], np.cumsum(np.bincount(exit_byte, minlength=256))])
    others = np.concatenate([bare_by_lead, others[jumping][by_exit]])
    prefix = np.concatenate([np.zeros(bare_by_lead.size, dtype=np.int64), prefix[jumping][by_exit]])
    lead_positions = table.first_byte_order[2][bare_by_lead]
    return others, prefix, resume_of[others], lead_bounds.astype(np.int64), exit_byte, exit_bounds, lead_positions


#: ``_leading_runs`` steps byte by byte while more runs than this go on, then takes the rest at once.
_RUNS_STEPPED = 512


def _leading_runs(flat: np.ndarray, single: np.ndarray, at: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Per entry, how many bytes of ``flat`` from ``at`` on are in ``single`` (256 bools), at most
    ``limit``. Stepping a byte at a time costs a few operations per step over the runs still going, and
    most runs stop within two bytes; but a vocabulary's longest tokens (rows of dashes, of spaces) keep a
    handful going for a hundred steps: those finish in one pass over all their remaining bytes."""
    runs = np.zeros(at.size, dtype=np.int64)
    going = np.flatnonzero(limit > 0)
    depth = 0
    while going.size > _RUNS_STEPPED:
        going = going[single[flat[at[going] + depth]]]
        depth += 1
        runs[going] = depth
        going = going[limit[going] > depth]
    if going.size:
        left = limit[going] - depth
        segment_starts = np.cumsum(left) - left
        total = int(left.sum())
        positions = np.repeat(at[going] + depth - segment_starts, left) + np.arange(total)
        stops = np.where(single[flat[positions]], total, np.arange(total))
        first_stop = np.minimum.reduceat(stops, segment_starts)
        runs[going] = depth + np.where(first_stop == total, left, first_stop - segment_starts)
    return runs
