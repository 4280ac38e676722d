"""Exact regexes for integer ranges (JSON Schema ``minimum``/``maximum`` on integers)."""

from __future__ import annotations


def integer_range_regex(low: int | None, high: int | None) -> str:
    """Canonical decimal integers (no leading zeros, no ``-0``) in ``[low, high]``; None is unbounded."""
    options = []
    # Non-negative part.
    nonneg_low = 0 if low is None else max(low, 0)
    if high is None or high >= nonneg_low:
        options.append(_nonnegative(nonneg_low, high))
    # Negative part: -x for x in [max(1, -high), -low].
    if low is None or low < 0:
        magnitude_low = 1 if high is None or high >= 0 else -high
        magnitude_high = None if low is None else -low
        if magnitude_high is None or magnitude_high >= magnitude_low:
            options.append("-" + _group(_nonnegative(magnitude_low, magnitude_high)))
    if not options:
        raise ValueError(f"empty integer range [{low}, {high}]")
    return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"


def _group(regex: str) -> str:
    return regex if regex.startswith("(?:") and regex.endswith(")") or "|" not in regex else f"(?:{regex})"


def _nonnegative(low: int, high: int | None) -> str:
    parts = []
    if high is None:
        digits = len(str(low))
        parts.append(_same_length(str(low), "9" * digits))
        parts.append(f"[1-9][0-9]{{{digits},}}")
    else:
        for digits in range(len(str(low)), len(str(high)) + 1):
            start = max(low, 10 ** (digits - 1) if digits > 1 else 0)
            end = min(high, 10**digits - 1)
            if start <= end:
                parts.append(_same_length(str(start), str(end)))
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def _same_length(low: str, high: str) -> str:
    """Digit strings of equal length between ``low`` and ``high`` inclusive."""
    if len(low) == 1:
        return low if low == high else f"[{low}-{high}]"
    rest = len(low) - 1
    if low[0] == high[0]:
        return low[0] + _group(_same_length(low[1:], high[1:]))
    if low[1:] == "0" * rest and high[1:] == "9" * rest:
        return f"[{low[0]}-{high[0]}][0-9]{{{rest}}}"
    options = [low[0] + _group(_same_length(low[1:], "9" * rest))]
    if int(high[0]) - int(low[0]) > 1:
        middle_low, middle_high = int(low[0]) + 1, int(high[0]) - 1
        digit = str(middle_low) if middle_low == middle_high else f"[{middle_low}-{middle_high}]"
        options.append(f"{digit}[0-9]{{{rest}}}")
    options.append(high[0] + _group(_same_length("0" * rest, high[1:])))
    return "(?:" + "|".join(options) + ")"
