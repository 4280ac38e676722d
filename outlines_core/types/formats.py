"""Regexes for JSON Schema string formats (the text between the quotes) and format output types."""

from __future__ import annotations

DATE = r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_PARTIAL_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
_OFFSET = r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
#: RFC 3339 (JSON Schema formats): the offset is required.
TIME = rf"{_PARTIAL_TIME}{_OFFSET}"
DATE_TIME = rf"{DATE}T{TIME}"
#: Python's isoformat: the offset is optional (naive values).
ISO_TIME = rf"{_PARTIAL_TIME}{_OFFSET}?"
ISO_DATE_TIME = rf"{DATE}T{ISO_TIME}"
DURATION = (
    r"P(?:(?:[0-9]+Y(?:[0-9]+M)?(?:[0-9]+D)?|[0-9]+M(?:[0-9]+D)?|[0-9]+D)"
    r"(?:T(?:[0-9]+H(?:[0-9]+M)?(?:[0-9]+S)?|[0-9]+M(?:[0-9]+S)?|[0-9]+S))?"
    r"|T(?:[0-9]+H(?:[0-9]+M)?(?:[0-9]+S)?|[0-9]+M(?:[0-9]+S)?|[0-9]+S)|[0-9]+W)"
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
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
HOSTNAME = rf"{_LABEL}(?:\.{_LABEL})*"
EMAIL = r"[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+)*@" + rf"{_LABEL}(?:\.{_LABEL})+"
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_URI_CHAR = r"[^\x00-\x20\x7f\"\\<>{}|^`"
URI = rf"[a-zA-Z][a-zA-Z0-9+.-]*:(?://{_URI_CHAR}/?#]*)?{_URI_CHAR}#?]*(?:\?{_URI_CHAR}#]*)?(?:#{_URI_CHAR}]*)?"

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
