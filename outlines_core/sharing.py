"""Which masks and states share: the index stores each distinct mask once (``DistinctMasks``), and gives a
walked state's mask to the states a partition of the DFA puts in its group (``StateGroups``). ``Index``
decides when; this module keeps the tables.
"""

from __future__ import annotations

import functools

import numpy as np

from .native import kernels


@functools.lru_cache(maxsize=8)
def _fingerprint_weights(num_words: int) -> np.ndarray:
    """Random odd 32-bit weights, one per bitmask word, for ``numpy_mask_keys``'s fingerprints."""
    weights = np.random.default_rng(0xF1A6).integers(0, 2**32, size=num_words, dtype=np.uint32) | np.uint32(1)
    weights.setflags(write=False)
    return weights


def numpy_mask_keys(masks: np.ndarray) -> tuple[list[int], range]:
    """``_native.mask_keys`` without the C kernels: a 32-bit key per row (each word times a random odd
    weight, xor-folded; array arithmetic wraps silently), and each row as its own first."""
    keys = np.bitwise_xor.reduce(masks.view(np.uint32) * _fingerprint_weights(masks.shape[1]), axis=1)
    return keys.tolist(), range(len(keys))


def native_mask_keys(masks: np.ndarray) -> tuple[list[int], list[int]]:
    """A 32-bit key per row of ``masks`` and the first row of the batch equal to each (``_native.mask_keys``)."""
    return kernels.mask_keys(masks, masks.shape[1])


#: How ``DistinctMasks.shared`` keys a batch of masks (the tests swap in others).
mask_keys = numpy_mask_keys if kernels is None else native_mask_keys


class DistinctMasks:
    """The distinct packed masks of one index, by a 32-bit key of their words (equal masks, equal keys;
    masks with one key are compared byte for byte)."""

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[int, list[np.ndarray]] = {}

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._by_key.values())

    def shared(self, masks: np.ndarray) -> list[np.ndarray]:
        """Each row of ``masks`` (read-only from now on) or the stored mask equal to it. The C kernel
        (``mask_keys``) also finds the rows that repeat an earlier one of the batch (most of a batch of
        keys or digits), which then take its answer without a lookup."""
        masks = np.ascontiguousarray(masks)
        keys, first = mask_keys(masks)
        masks.setflags(write=False)  # and so every row view taken below
        by_key = self._by_key
        shared: list[np.ndarray] = []
        for row, (key, earlier, mask) in enumerate(zip(keys, first, masks)):
            if earlier != row:
                shared.append(shared[earlier])
                continue
            bucket = by_key.get(key)
            if bucket is None:
                by_key[key] = [mask]
                shared.append(mask)
                continue
            data = mask.tobytes()
            for candidate in bucket:
                if candidate.tobytes() == data:
                    shared.append(candidate)
                    break
            else:
                bucket.append(mask)
                shared.append(mask)
        return shared


#: ``StateGroups.members_once`` indexes a partition's groups from this many questions on (scanning it before).
INDEXED_PARTITION_USES = 8


class StateGroups:
    """One partition of the DFA's states (a group id per state), asked which states share a state's
    group: ``Index._share_with_alike`` asks it for every state a walk made a mask for."""

    __slots__ = ("groups", "group_of", "sizes", "uses", "order", "bounds", "given")

    def __init__(self, groups: np.ndarray) -> None:
        self.groups = groups
        self.group_of = groups.tolist()  # a list: asked once per walked state, where numpy scalars cost more
        self.sizes = np.bincount(groups)
        self.uses = 0
        self.order: np.ndarray | None = None  # states sorted by group, once indexed
        self.bounds: np.ndarray | None = None
        self.given: set[int] = set()  # the groups whose members were returned

    def members_once(self, state: int) -> np.ndarray | None:
        """The states in ``state``'s group the first time it is asked; None when ``state`` is alone there
        (the usual case) or the group was asked before (its members got the mask then: a walk's batch of
        keys or digits holds many states of one group). A scan of the partition at first; from its
        ``INDEXED_PARTITION_USES``-th question on, through an index of its groups (a sort of every state:
        too slow for a first visit that asks a dozen partitions once each)."""
        group = self.group_of[state]
        if group in self.given or self.sizes[group] == 1:
            return None
        self.given.add(group)
        if self.order is None:
            self.uses += 1
            if self.uses < INDEXED_PARTITION_USES:
                return np.flatnonzero(self.groups == group)
            # Group ids fit 16 bits for all but huge DFAs, where numpy's stable sort is a radix sort.
            narrow = np.int16 if self.sizes.size < 2**15 else np.int64
            self.bounds = np.concatenate(([0], np.cumsum(self.sizes)))
            self.order = np.argsort(self.groups.astype(narrow), kind="stable")
        return self.order[self.bounds[group] : self.bounds[group + 1]]
