"""Integer and number ranges: a decimal text matches exactly when its value is within the bounds."""

import json
import re
from decimal import Decimal

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from outlines_core.errors import SchemaError
from outlines_core.types import json_schema_to_regex
from outlines_core.types.numbers import integer_range_regex, number_range_regex

FAST = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
bounds = st.one_of(st.none(), st.integers(-10**6, 10**6))


@FAST
@given(low=bounds, high=bounds, values=st.lists(st.integers(-2 * 10**6, 2 * 10**6), min_size=5, max_size=20))
def test_integer_range_matches_exactly_the_integers_in_range(low, high, values):
    assume(low is None or high is None or low <= high)
    regex = integer_range_regex(low, high)
    extremes = [v for v in (low, high) if v is not None]
    for value in values + extremes + [e + d for e in extremes for d in (-1, 1)] + [0]:
        inside = (low is None or value >= low) and (high is None or value <= high)
        assert bool(re.fullmatch(regex, str(value), re.ASCII)) == inside, (low, high, value)


def test_integer_range_rejects_noncanonical_spellings():
    regex = integer_range_regex(-5, 120)
    for text in ["007", "-0", "+5", "1.0", "", "-"]:
        assert not re.fullmatch(regex, text, re.ASCII), text


decimals = st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False, allow_infinity=False)
texts = st.from_regex(re.compile(r"-?(?:0|[1-9][0-9]{0,3})(?:\.[0-9]{1,5})?", re.ASCII), fullmatch=True)


@FAST
@given(low=st.none() | decimals, high=st.none() | decimals, low_exclusive=st.booleans(), high_exclusive=st.booleans(),
       values=st.lists(texts, min_size=5, max_size=20))
def test_number_range_is_exact_on_decimal_values(low, high, low_exclusive, high_exclusive, values):
    assume(low is None or high is None or low < high)
    regex = number_range_regex(low, high, low_exclusive=low_exclusive, high_exclusive=high_exclusive)
    probes = list(values)
    for bound in (low, high):
        if bound is not None:
            probes += [str(bound), str(bound + Decimal("0.001")), str(bound - Decimal("0.001"))]
    for text in probes:
        text = _canonical(text)
        value = Decimal(text)
        matched = bool(re.fullmatch(regex, text, re.ASCII))
        if matched:  # sound: parsed as a float, the value satisfies the bounds
            number = float(text)  # compared with the bounds as floats, as a JSON validator would
            assert low is None or (number > float(low) if low_exclusive else number >= float(low)), (text, low)
            assert high is None or (number < float(high) if high_exclusive else number <= float(high)), (text, high)
        # complete for values not within 1e-15 of an exclusive bound (those are left out on purpose)
        inside = (low is None or (value > low if low_exclusive else value >= low)) and (
            high is None or (value < high if high_exclusive else value <= high))
        near_exclusive = (low_exclusive and low is not None and abs(value - low) < Decimal("1e-12")) or (
            high_exclusive and high is not None and abs(value - high) < Decimal("1e-12"))
        if inside and not near_exclusive:
            assert matched, (text, low, high, low_exclusive, high_exclusive)


def _canonical(text: str) -> str:
    """Plain decimal spelling: no exponent, no leading zeros, no '-0'."""
    value = Decimal(text)
    out = format(value, "f")
    if out.startswith("-") and Decimal(out) == 0:
        out = out[1:]
    return out


NUMBER_SCHEMAS = [
    {"type": "number", "minimum": 0.5, "maximum": 10},
    {"type": "number", "exclusiveMinimum": 0},
    {"type": "number", "minimum": -2.25, "exclusiveMaximum": 3.5},
    {"type": "number", "maximum": -1.5},
    {"type": "number", "minimum": 0.1, "maximum": 0.3},
    {"type": "integer", "exclusiveMinimum": 2.5, "maximum": 1000},
]


@pytest.mark.parametrize("schema", NUMBER_SCHEMAS)
@FAST
@given(data=st.data())
def test_bounded_numbers_in_json_schema_are_sound(schema, data):
    regex = json_schema_to_regex(schema)
    text = data.draw(st.from_regex(re.compile(regex, re.ASCII), fullmatch=True))
    jsonschema.validate(json.loads(text), schema)


def test_number_bounds_that_leave_nothing_are_refused():
    with pytest.raises(SchemaError):
        json_schema_to_regex({"type": "number", "minimum": 2, "maximum": 1})
    with pytest.raises(SchemaError):
        json_schema_to_regex({"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 1})
