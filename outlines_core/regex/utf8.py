"""Code-point ranges -> UTF-8 byte-range sequences.

The engine works on bytes because tokens do: a token may end in the middle of a multi-byte character. A
range of code points becomes a small set of byte-range sequences, each one matching exactly the UTF-8
encodings of a sub-range (for example U+0080..U+07FF is ``[C2-DF][80-BF]``).
"""

from __future__ import annotations

# Largest code point encoded with 1, 2, 3 and 4 bytes.
_LENGTH_LIMITS = (0x7F, 0x7FF, 0xFFFF, 0x10FFFF)

ByteRangeSequence = tuple[tuple[int, int], ...]


def utf8_sequences(lo: int, hi: int) -> list[ByteRangeSequence]:
    """Byte-range sequences whose concatenated languages are the UTF-8 encodings of ``[lo, hi]``.

    ``lo``..``hi`` must not contain surrogates (the AST removes them).
    """
    sequences: list[ByteRangeSequence] = []
    previous_limit = -1
    for limit in _LENGTH_LIMITS:
        # Split at encoding-length boundaries first: each piece has one encoded length.
        piece_lo, piece_hi = max(lo, previous_limit + 1), min(hi, limit)
        if piece_lo <= piece_hi:
            _split_same_length(piece_lo, piece_hi, sequences)
        previous_limit = limit
    return sequences


def _split_same_length(lo: int, hi: int, out: list[ByteRangeSequence]) -> None:
    """Split until every piece is a product of per-byte ranges (the continuation bytes span fully)."""
    if lo < 0x80:
        out.append(((lo, hi),))
        return
    length = len(chr(lo).encode("utf-8"))
    for continuation_count in range(1, length):
        # Mask of the low bits carried by the last `continuation_count` continuation bytes.
        mask = (1 << (6 * continuation_count)) - 1
        if (lo & ~mask) != (hi & ~mask):
            if lo & mask:
                _split_same_length(lo, lo | mask, out)
                _split_same_length((lo | mask) + 1, hi, out)
                return
            if (hi & mask) != mask:
                _split_same_length(lo, (hi & ~mask) - 1, out)
                _split_same_length(hi & ~mask, hi, out)
                return
    low_bytes = chr(lo).encode("utf-8")
    high_bytes = chr(hi).encode("utf-8")
    out.append(tuple(zip(low_bytes, high_bytes)))
