"""Regexes for JSON Schema string formats (the text between the quotes) and the format output types.

Each regex matches only valid values (a sound subset where the exact language is not regular-friendly;
``docs/types.md`` lists the subsets). None of them can produce ``"``, ``\\`` or control characters, so
they can be placed between JSON quotes as they are.
"""

from __future__ import annotations

import re

# Years 0001-9999 (Python's datetime has no year 0), exact month lengths, 29 February in leap years only.
_YEAR = r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
DATE = rf"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_PARTIAL_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
_OFFSET = r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
#: RFC 3339 ``full-time``: JSON Schema's ``time`` format requires the offset.
TIME = rf"{_PARTIAL_TIME}{_OFFSET}"
DATE_TIME = rf"{DATE}T{TIME}"
#: Python's ``datetime.time`` / ``datetime.datetime`` (``fromisoformat``): the offset is optional.
ISO_TIME = rf"{_PARTIAL_TIME}{_OFFSET}?"
ISO_DATE_TIME = rf"{DATE}T{ISO_TIME}"

# RFC 3339 appendix A: dur-year = Y [dur-month], dur-month = M [dur-day], dur-hour = H [dur-minute], ...
# Each number has at most 6 digits: Pydantic's timedelta refuses durations over 999,999,999 days and numbers
# too large for its integers, and six digits in every component stay below both (P999999Y999999M999999D...
# is 396 million days).
_DUR_NUMBER = "[0-9]{1,6}"
_DUR_TIME = (
    rf"T(?:{_DUR_NUMBER}H(?:{_DUR_NUMBER}M(?:{_DUR_NUMBER}S)?)?|{_DUR_NUMBER}M(?:{_DUR_NUMBER}S)?|{_DUR_NUMBER}S)"
)
DURATION = (
    rf"P(?:(?:{_DUR_NUMBER}Y(?:{_DUR_NUMBER}M(?:{_DUR_NUMBER}D)?)?|{_DUR_NUMBER}M(?:{_DUR_NUMBER}D)?|{_DUR_NUMBER}D)"
    rf"(?:{_DUR_TIME})?|{_DUR_TIME}|{_DUR_NUMBER}W)"
)

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H16 = r"[0-9a-fA-F]{1,4}"
IPV6 = (
    rf"(?:(?:{_H16}:){{7}}{_H16}"
    rf"|(?:{_H16}:){{1,7}}:"
    rf"|(?:{_H16}:){{1,6}}:{_H16}"
    rf"|(?:{_H16}:){{1,5}}(?::{_H16}){{1,2}}"
    rf"|(?:{_H16}:){{1,4}}(?::{_H16}){{1,3}}"
    rf"|(?:{_H16}:){{1,3}}(?::{_H16}){{1,4}}"
    rf"|(?:{_H16}:){{1,2}}(?::{_H16}){{1,5}}"
    rf"|{_H16}:(?::{_H16}){{1,6}}"
    rf"|:(?::{_H16}){{1,7}}|::)"
)
# Hostnames (RFC 1123): labels of letters, digits and inner hyphens. The 253-character total is kept by
# bounding labels to 30 characters and their number to 8 (8 * 31 - 1 = 247): a documented subset.
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,28}[a-zA-Z0-9])?"
HOSTNAME = rf"{_LABEL}(?:\.{_LABEL}){{0,7}}"
EMAIL = (
    r"[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+)*@"
    rf"{_LABEL}(?:\.{_LABEL}){{1,7}}"
)
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

# RFC 3986 URI: scheme ":" hier-part ["?" query] ["#" fragment], ASCII only (no IRIs). Kept to the URIs that
# WHATWG URL parsers (browsers, Pydantic's URL types) also accept: the special schemes (http, https, ws,
# wss, ftp) take "//" and a host name (its last label starting with a letter, ports below 10000); "file"
# URIs are not generated (their hosts take no port); other schemes take any hier-part, but an authority
# must have a non-empty host and a port below 10000 too (URL parsers reject ports above 65535).
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|{_PCT})"
_USERINFO = rf"(?:(?:[A-Za-z0-9._~!$&'()*+,;=:-]|{_PCT})*@)?"
_SEGMENTS = rf"(?:/{_PCHAR}*)*"
_QUERY_FRAGMENT = rf"(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?"
_SPECIAL_SCHEMES = ("ftp", "file", "http", "https", "ws", "wss")
_SPECIAL_HOST = rf"(?:{_LABEL}\.){{0,7}}[a-zA-Z](?:[a-zA-Z0-9-]{{0,28}}[a-zA-Z0-9])?"


def _case_insensitive(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


def _scheme_not_in(words) -> str:
    """Schemes (``[A-Za-z][A-Za-z0-9+.-]*``) other than ``words``, compared case-insensitively."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict, first: bool) -> str:
        options = [] if "" in node or first else [""]
        children = [c for c in node if c]
        # A character that is not a child leaves the trie: any scheme characters may follow it.
        others = [c for c in "abcdefghijklmnopqrstuvwxyz" + ("" if first else "0123456789+.-") if c not in children]
        if others:
            spelled = "".join(sorted({c.lower() for c in others} | {c.upper() for c in others}))
            options.append(f"[{re.escape(spelled)}][A-Za-z0-9+.-]*")
        for char in children:
            options.append(_case_insensitive(char) + build(node[char], False))
        return "(?:" + "|".join(options) + ")"

    return build(trie, True)


URI = (
    rf"(?:(?:{'|'.join(_case_insensitive(w) for w in _SPECIAL_SCHEMES if w != 'file')})://{_USERINFO}{_SPECIAL_HOST}(?::[0-9]{{1,4}})?"
    rf"{_SEGMENTS}"
    rf"|{_scheme_not_in(_SPECIAL_SCHEMES)}:"
    rf"(?://{_USERINFO}(?:[A-Za-z0-9._~!$&'()*+,;=-]|{_PCT})+(?::[0-9]{{0,4}})?{_SEGMENTS}"
    rf"|/(?:{_PCHAR}+{_SEGMENTS})?|{_PCHAR}+{_SEGMENTS})?)"
    rf"{_QUERY_FRAGMENT}"
)

FORMAT_REGEXES = {
    "date-time": DATE_TIME,
    "date": DATE,
    "time": TIME,
    "duration": DURATION,
    "email": EMAIL,
    "uuid": UUID,
    "uri": URI,
    "ipv4": IPV4,
    "ipv6": IPV6,
    "hostname": HOSTNAME,
}


_PATH_CHAR = r"[A-Za-z0-9._~!$&'()*+,;=:@/-]"


def _bounded_http_uri(max_length: int) -> str | None:
    """A sound subset of ``uri`` of at most ``max_length`` characters: ``http(s)://hostname[/path]`` (no
    percent-escapes, query or fragment), which is also what URL types such as Pydantic's ``HttpUrl`` accept."""
    budget = max_length - len("https://")
    if budget < 1:
        return None
    # The last label starts with a letter: URL parsers read a host ending in a number as an IPv4 address.
    if budget >= 30:
        labels = min(8, (budget + 1) // 31)
        last = r"[a-zA-Z](?:[a-zA-Z0-9-]{0,28}[a-zA-Z0-9])?"
        host = rf"(?:{_LABEL}\.){{0,{labels - 1}}}{last}" if labels > 1 else last
        host_length = 31 * labels - 1
    else:
        host = "[a-zA-Z]" if budget == 1 else rf"[a-zA-Z](?:[a-zA-Z0-9-]{{0,{budget - 2}}}[a-zA-Z0-9])?"
        host_length = budget
    path = budget - host_length - 1
    return rf"https?://{host}" + (rf"(?:/{_PATH_CHAR}{{0,{path}}})?" if path >= 0 else "")


def format_with_lengths(name: str, min_length: int = 0, max_length: int | None = None) -> str | None:
    """The regex of format ``name`` limited to ``min_length``..``max_length`` characters, or None when
    that is not supported: bounds that every value of the format meets anyway, and a ``maxLength`` on
    ``uri`` (Pydantic's URL types have one), served by a length-bounded subset of http(s) URLs."""
    from ..regex import parse
    from .json_string_pattern import length_range

    regex = FORMAT_REGEXES[name]
    if min_length <= 0 and max_length is None:  # no bound to check: parsing the format cost a schema 0.1 ms
        return regex
    low, high = length_range(parse(regex))  # the formats are ASCII: characters are bytes
    if low >= min_length and (max_length is None or (high is not None and high <= max_length)):
        return regex
    if name == "uri" and max_length is not None and min_length <= len("http://a"):
        return _bounded_http_uri(max_length)
    return None
