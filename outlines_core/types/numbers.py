"""Exact regexes for integer ranges (JSON Schema ``minimum``/``maximum`` on integers)."""

from __future__ import annotations

from decimal import Decimal


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


# -- numbers with bounds ---------------------------------------------------------------------------------

#: Plain decimal notation (what bounded numbers are written in: no exponent).
PLAIN_FRACTION = r"(?:\.[0-9]+)?"


def number_range_regex(low=None, high=None, *, low_exclusive: bool = False, high_exclusive: bool = False) -> str:
    """JSON numbers in plain decimal notation (``-?(0|[1-9][0-9]*)(\\.[0-9]+)?``, no exponent) whose value
    lies within the bounds (None: unbounded; ints, floats or Decimals).

    Exact on decimal values. Because JSON parsers read decimals as binary floats, an exclusive bound is
    first turned into an inclusive one a little inside it (the nearest ``b ± 10**-k`` that is a different
    float), so that rounding can never land on the excluded bound; values between the two are not generated.

    Raises ``ValueError`` when no value is in range.
    """
    low = None if low is None else _exclusive_to_inclusive(_decimal(low), +1) if low_exclusive else _decimal(low)
    high = None if high is None else _exclusive_to_inclusive(_decimal(high), -1) if high_exclusive else _decimal(high)
    if low is not None and high is not None and low > high:
        raise ValueError(f"empty number range [{low}, {high}]")
    options = []
    if high is None or high >= 0:
        nonneg = _magnitude(max(low, Decimal(0)) if low is not None else Decimal(0), False, high, False)
        if nonneg is not None:
            options.append(nonneg)
    if low is None or low < 0:
        # x < 0 with low <= x <= high: the magnitude -x is in (0, -low] and >= -high when high < 0.
        if high is not None and high < 0:
            magnitude_low, strict = -high, False
        else:
            magnitude_low, strict = Decimal(0), True
        negative = _magnitude(magnitude_low, strict, None if low is None else -low, False)
        if negative is not None:
            options.append("-" + _group(negative))
    if not options:
        raise ValueError(f"empty number range [{low}, {high}]")
    return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"


def _decimal(value) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def _exclusive_to_inclusive(bound: Decimal, direction: int) -> Decimal:
    """The decimal ``bound + direction * 10**-k`` nearest to ``bound`` that reads as a different float."""
    for k in range(17, -400, -1):
        candidate = bound + direction * Decimal(10) ** -k
        if float(candidate) != float(bound):
            return candidate
    raise ValueError(f"no float beyond {bound}")  # pragma: no cover - only for bounds near the float maximum


def _fraction_digits(value: Decimal) -> str:
    """Digits after the decimal point of a non-negative ``value``, without trailing zeros."""
    text = format(value - int(value), "f")
    digits = text.partition(".")[2]
    return digits.rstrip("0")


def _magnitude(low: Decimal, low_strict: bool, high: Decimal | None, high_strict: bool) -> str | None:
    """Non-negative plain decimals in the range; ``low >= 0``."""
    a, c = int(low), _fraction_digits(low)
    lower = (c, low_strict)
    parts = []
    if high is None:
        first = _fraction(lower, None)
        if first is not None:
            parts.append(integer_range_regex(a, a) + first)
        parts.append(_group(integer_range_regex(a + 1, None)) + PLAIN_FRACTION)
    else:
        if high < low or (high == low and (low_strict or high_strict)):
            return None
        b, d = int(high), _fraction_digits(high)
        upper = (d, high_strict)
        if a == b:
            only = _fraction(lower, upper)
            if only is not None:
                parts.append(integer_range_regex(a, a) + only)
        else:
            first = _fraction(lower, None)
            if first is not None:
                parts.append(integer_range_regex(a, a) + first)
            if a + 1 <= b - 1:
                parts.append(_group(integer_range_regex(a + 1, b - 1)) + PLAIN_FRACTION)
            last = _fraction(("", False), upper)
            if last is not None:
                parts.append(integer_range_regex(b, b) + last)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def _fraction(lower, upper) -> str | None:
    # ``lower``/``upper``: a bound on the digits still to come, as (digits of the bound, strict), or None
    # once the digits so far already decide that side.
    """``(\\.digits)?`` whose value 0.digits is within the bounds (the empty fraction is the value 0)."""
    nonempty = _digits_nonempty(lower, upper)
    empty = _empty_allowed(lower, upper)
    if nonempty is None:
        return "" if empty else None
    return f"(?:\\.{nonempty})?" if empty else f"\\.{nonempty}"


def _empty_allowed(lower, upper) -> bool:
    """Whether the remaining digits may be empty (value 0 from here on)."""
    if lower is not None and (lower[0] or lower[1]):
        return False
    if upper is not None and not upper[0] and upper[1]:
        return False
    return True


def _digits_any(lower, upper) -> str | None:
    """Digit strings, possibly empty, within the bounds."""
    nonempty = _digits_nonempty(lower, upper)
    empty = _empty_allowed(lower, upper)
    if nonempty is None:
        return "" if empty else None
    if not empty:
        return nonempty
    return "[0-9]*" if nonempty == "[0-9]+" else "0*" if nonempty == "0+" else f"(?:{nonempty})?"


def _digits_nonempty(lower, upper) -> str | None:
    """Non-empty digit strings within the bounds (compared as the fractions 0.digits)."""
    # Closed forms for the states that would otherwise repeat themselves (bound digits exhausted).
    lower_zero = lower is not None and not lower[0]
    upper_zero = upper is not None and not upper[0]
    if (lower is None or lower_zero) and upper is None:
        return "[0-9]*[1-9][0-9]*" if lower_zero and lower[1] else "[0-9]+"
    if upper_zero and (lower is None or lower_zero):
        if upper[1] or (lower_zero and lower[1]):
            return None
        return "0+"
    groups: dict[str, list[int]] = {}
    for digit in range(10):
        if lower is None:
            new_lower = None
        else:
            low_digit = int(lower[0][0]) if lower[0] else 0
            if digit < low_digit:
                continue
            new_lower = None if digit > low_digit else (lower[0][1:], lower[1])
        if upper is None:
            new_upper = None
        else:
            high_digit = int(upper[0][0]) if upper[0] else 0
            if digit > high_digit:
                continue
            new_upper = None if digit < high_digit else (upper[0][1:], upper[1])
        rest = _digits_any(new_lower, new_upper)
        if rest is not None:
            groups.setdefault(rest, []).append(digit)
    if not groups:
        return None
    options = [_digit_class(digits) + rest for rest, digits in groups.items()]
    return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"


def _digit_class(digits: list[int]) -> str:
    if len(digits) == 1:
        return str(digits[0])
    if digits == list(range(digits[0], digits[-1] + 1)):
        return f"[{digits[0]}-{digits[-1]}]"
    return "[" + "".join(map(str, digits)) + "]"
