"""Regexes for JSON Schema string formats (the text between the quotes) and the format output types.

Each regex matches only valid values (a sound subset where the exact language is not regular-friendly;
``docs/types.md`` lists the subsets). None of them can produce ``"``, ``\\`` or control characters, so
they can be placed between JSON quotes as they are.
"""

from __future__ import annotations

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
_DUR_TIME = r"T(?:[0-9]+H(?:[0-9]+M(?:[0-9]+S)?)?|[0-9]+M(?:[0-9]+S)?|[0-9]+S)"
DURATION = rf"P(?:(?:[0-9]+Y(?:[0-9]+M(?:[0-9]+D)?)?|[0-9]+M(?:[0-9]+D)?|[0-9]+D)(?:{_DUR_TIME})?|{_DUR_TIME}|[0-9]+W)"

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

# RFC 3986 URI: scheme ":" hier-part ["?" query] ["#" fragment], ASCII only (no IRIs).
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|{_PCT})"
_AUTHORITY = (
    rf"(?:(?:[A-Za-z0-9._~!$&'()*+,;=:-]|{_PCT})*@)?"
    rf"(?:[A-Za-z0-9._~!$&'()*+,;=-]|{_PCT})*(?::[0-9]*)?"
)
_SEGMENTS = rf"(?:/{_PCHAR}*)*"
URI = (
    rf"[A-Za-z][A-Za-z0-9+.-]*:(?://{_AUTHORITY}{_SEGMENTS}|/(?:{_PCHAR}+{_SEGMENTS})?|{_PCHAR}+{_SEGMENTS})?"
    rf"(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?"
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
