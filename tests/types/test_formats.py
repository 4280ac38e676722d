"""Format regexes: every string they produce is a valid value (checked by independent parsers), and
valid values in their usual spelling match."""

import datetime
import functools
import ipaddress
import re
import uuid

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outlines_core import types
from outlines_core.types import formats, parse_output, to_regex

FAST = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER


@functools.lru_cache(maxsize=None)
def strings(regex: str):
    return st.from_regex(re.compile(regex, re.ASCII), fullmatch=True)


def is_hostname(text: str) -> bool:
    """RFC 1123 host name: at most 253 characters, labels of 1-63 letters, digits and inner hyphens."""
    if len(text) > 253:
        return False
    label = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?", re.ASCII)
    return all(len(part) <= 63 and label.fullmatch(part) for part in text.split("."))


# RFC 3339 appendix A, written independently of formats.DURATION (one alternative per ABNF path).
_D = "[0-9]+"
_DUR_TIME = rf"T(?:{_D}H|{_D}H{_D}M|{_D}H{_D}M{_D}S|{_D}M|{_D}M{_D}S|{_D}S)"
_DUR_DATE = rf"(?:{_D}D|{_D}M|{_D}M{_D}D|{_D}Y|{_D}Y{_D}M|{_D}Y{_D}M{_D}D)(?:{_DUR_TIME})?"
DURATION_ABNF = re.compile(rf"P(?:{_DUR_DATE}|{_DUR_TIME}|{_D}W)", re.ASCII)
# RFC 3986 characters: unreserved, sub-delims, gen-delims and percent signs followed by two hex digits.
URI_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})*", re.ASCII)


@FAST
@given(data=st.data())
@pytest.mark.parametrize("name", sorted(formats.FORMAT_REGEXES))
def test_format_strings_are_valid(name, data):
    text = data.draw(strings(formats.FORMAT_REGEXES[name]))
    assert FORMAT_CHECKER.conforms(text, name), text
    if name == "date":
        datetime.date.fromisoformat(text)
    elif name == "date-time":
        datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    elif name == "time":
        datetime.time.fromisoformat(text.replace("Z", "+00:00"))
    elif name == "ipv4":
        ipaddress.IPv4Address(text)
    elif name == "ipv6":
        ipaddress.IPv6Address(text)
    elif name == "uuid":
        uuid.UUID(text)
    elif name == "hostname":
        assert is_hostname(text), text
    elif name == "email":
        local, _, domain = text.rpartition("@")
        assert local and is_hostname(domain), text
    elif name == "duration":
        assert DURATION_ABNF.fullmatch(text), text
    elif name == "uri":
        scheme, colon, rest = text.partition(":")
        assert colon and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) and URI_CHARS.fullmatch(rest), text


@FAST
@given(value=st.dates())
def test_every_date_matches(value):
    assert re.fullmatch(formats.DATE, value.isoformat(), re.ASCII)


@FAST
@given(value=st.datetimes(timezones=st.timezones() | st.just(datetime.timezone.utc)))
def test_every_aware_datetime_matches(value):
    # RFC 3339 offsets are whole minutes.
    offset = value.utcoffset()
    if offset is not None and offset.seconds % 60:
        return
    assert re.fullmatch(formats.DATE_TIME, value.isoformat(), re.ASCII), value.isoformat()
    assert re.fullmatch(formats.ISO_DATE_TIME, value.replace(tzinfo=None).isoformat(), re.ASCII)


def test_invalid_dates_do_not_match():
    for text in ["2023-02-29", "1900-02-29", "2024-04-31", "0000-01-01", "2024-13-01", "2024-00-10"]:
        assert not re.fullmatch(formats.DATE, text, re.ASCII), text
    for text in ["2024-02-29", "2000-02-29", "1600-02-29", "0004-02-29", "9999-12-31"]:
        assert re.fullmatch(formats.DATE, text, re.ASCII), text
    assert not re.fullmatch(formats.DATE_TIME, "2024-01-01T10:00:00", re.ASCII)  # RFC 3339 needs the offset


@FAST
@given(value=st.ip_addresses())
def test_every_ip_address_matches(value):
    regex = formats.IPV4 if value.version == 4 else formats.IPV6
    assert re.fullmatch(regex, str(value), re.ASCII), str(value)


@FAST
@given(value=st.uuids())
def test_every_uuid_matches(value):
    assert re.fullmatch(formats.UUID, str(value), re.ASCII)
    assert re.fullmatch(formats.UUID, str(value).upper(), re.ASCII)


@pytest.mark.parametrize(
    "name, text",
    [
        ("duration", "P3Y6M4DT12H30M5S"), ("duration", "PT36H"), ("duration", "P4W"), ("duration", "P1M"),
        ("email", "first.last+tag@mail.example.co.uk"), ("hostname", "localhost"),
        ("hostname", "a-1.b2.example"), ("uri", "https://user@example.com:8080/a/b?q=1&r=%20#frag"),
        ("uri", "urn:isbn:0451450523"), ("uri", "mailto:someone@example.com"), ("time", "23:59:59.123Z"),
    ],
)
def test_typical_values_match(name, text):
    assert re.fullmatch(formats.FORMAT_REGEXES[name], text, re.ASCII)


@pytest.mark.parametrize(
    "name, text",
    [("duration", "P"), ("duration", "PT"), ("duration", "P1Y1D"), ("hostname", "-a.com"), ("hostname", "a..b"),
     ("uri", "no scheme"), ("uri", "http://exa mple.com"), ("ipv4", "256.1.1.1"), ("ipv4", "01.1.1.1"),
     ("uuid", "123e4567e89b12d3a456426614174000"), ("email", "no-at-sign.com")],
)
def test_invalid_values_do_not_match(name, text):
    assert not re.fullmatch(formats.FORMAT_REGEXES[name], text, re.ASCII)


@pytest.mark.parametrize(
    "output_type, text, parsed",
    [
        (types.Date, "2024-02-29", "2024-02-29"),
        (types.UUID, "123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-426614174000"),
        (types.IPv4, "192.168.0.1", "192.168.0.1"),
        (types.Email, "a@b.example", "a@b.example"),
        (types.Integer, "-42", "-42"),
    ],
)
def test_format_types_are_regexes(output_type, text, parsed):
    assert isinstance(output_type, types.Regex)
    assert re.fullmatch(to_regex(output_type), text, re.ASCII)
    assert parse_output(text, output_type) == parsed


def test_format_types_cover_every_format():
    for name in ["Email", "UUID", "DateTime", "Date", "Time", "IPv4", "IPv6", "Hostname", "URI", "Duration"]:
        assert isinstance(getattr(types, name), types.Regex), name
