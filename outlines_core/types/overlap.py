"""Whether ``oneOf`` options are exclusive: two regexes that can match the same string (a product walk of their
automata), and options the regexes cannot judge (an object without ``additionalProperties`` accepts more
than its regex writes) told apart by what every value of theirs shows."""

from __future__ import annotations

from typing import Any

from ..errors import SchemaError
from ..regex import DEAD, compile_dfa
from .instances import as_list, canonical_json

#: Product states explored before giving up and assuming an overlap (the safe answer: refuse).
MAX_PRODUCT_STATES = 200_000


def regexes_overlap(first: str, second: str) -> bool:
    """True when some string fully matches both (or the check is too large to finish)."""
    a, b = compile_dfa(first), compile_dfa(second)
    rows_a, rows_b = a.rows, b.rows
    # One representative byte per pair of byte classes: bytes in the same pair behave alike in both DFAs.
    representatives = list({(int(a.byte_classes[x]), int(b.byte_classes[x])): x for x in range(256)}.values())
    start = (a.start, b.start)
    seen = {start}
    stack = [start]
    while stack:
        state_a, state_b = stack.pop()
        if a.accepting[state_a] and b.accepting[state_b]:
            return True
        row_a, row_b = rows_a[state_a], rows_b[state_b]
        for byte in representatives:
            pair = (row_a[byte], row_b[byte])
            if pair[0] != DEAD and pair[1] != DEAD and pair not in seen:
                if len(seen) >= MAX_PRODUCT_STATES:
                    return True
                seen.add(pair)
                stack.append(pair)
    return False


def check_exclusive(builder, built: list[tuple[int, Any, str]], pointer: str) -> None:
    """Refuse ``oneOf`` options that some generated value could satisfy together (the value would then
    violate the exactly-one rule).

    Where no option generates fewer values than it accepts, the option regexes must not intersect
    (a product walk of their automata). An object without ``additionalProperties`` accepts extra
    properties that its regex never writes (relaxation R1), so a value written for one option may also
    satisfy such an option while the regexes are disjoint: there the options must be told apart by what
    every value of theirs shows, their JSON types, or a property one of them requires that the other
    never writes, or a property both require with disjoint ``const``/``enum`` values (a tag, as Pydantic's
    discriminated unions have)."""
    for index, (first, first_schema, first_regex) in enumerate(built):
        for second, second_schema, second_regex in built[index + 1 :]:
            if not (_has_open_object(builder, first_schema) or _has_open_object(builder, second_schema)):
                if regexes_overlap(first_regex, second_regex):
                    raise SchemaError(
                        f"'oneOf' options {first} and {second} can both match the same value, so the "
                        "exactly-one rule cannot be guaranteed; make them disjoint (e.g. with 'const' tags) "
                        "or use 'anyOf'",
                        f"{pointer}/oneOf",
                    )
            elif not _told_apart(builder, first_schema, first_regex, second_schema, second_regex, pointer):
                raise SchemaError(
                    f"'oneOf' options {first} and {second} may both match the same value: an object without "
                    "'additionalProperties: false' also accepts properties its regex never writes, so a value "
                    "written for one option may satisfy the other and break the exactly-one rule; give both a "
                    "required property with different 'const' values, set 'additionalProperties: false', or "
                    "use 'anyOf'",
                    f"{pointer}/oneOf",
                )


def _has_open_object(builder, schema: Any) -> bool:
    """Whether ``schema`` reaches an object schema without ``additionalProperties`` (relaxation R1)."""
    seen: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#") and reference not in seen:
            seen.add(reference)
            stack.append(builder.resolve(reference, "#"))
        types = as_list(node.get("type"))
        object_like = "object" in types or not types and bool({"properties", "required"} & node.keys())
        if object_like and "additionalProperties" not in node and not {"const", "enum"} & node.keys():
            return True
        properties = node.get("properties")
        if isinstance(properties, dict):
            stack.extend(properties.values())
        for key in ("items", "additionalProperties", "additionalItems", "prefixItems", "anyOf", "oneOf", "allOf"):
            if key in node:
                stack.append(node[key])
    return False


def _told_apart(builder, first: Any, first_regex: str, second: Any, second_regex: str, pointer: str) -> bool:
    """Whether no value of either option's regex satisfies the other option (see ``check_exclusive``)."""
    if not _json_kinds(first_regex) & _json_kinds(second_regex):
        return True
    first, second = builder.effective(first, pointer), builder.effective(second, pointer)
    if not (_plain_object(first) and _plain_object(second)):
        return False
    return _values_fail(builder, first, second, pointer) and _values_fail(builder, second, first, pointer)


def _values_fail(builder, written: dict, other: dict, pointer: str) -> bool:
    """Whether every object ``written``'s regex writes fails ``other``: ``other`` requires a property
    ``written`` never writes, or one that both require with disjoint ``const``/``enum`` values."""
    written_required = set(as_list(written.get("required")))
    writes_any_key = written.get("additionalProperties") not in (None, False)
    writable = set(written.get("properties", {})) | written_required
    for name in as_list(other.get("required")):
        if not writes_any_key and name not in writable:
            return True
        if name in written_required:
            mine = _literals(builder, written.get("properties", {}).get(name), pointer)
            theirs = _literals(builder, other.get("properties", {}).get(name), pointer)
            if mine is not None and theirs is not None and not mine & theirs:
                return True
    return False


def _literals(builder, schema: Any, pointer: str) -> set[str] | None:
    """The values a ``const``/``enum`` schema allows (as canonical JSON texts), or None."""
    schema = builder.effective(schema, pointer)
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return {canonical_json(schema["const"])}
    if isinstance(schema.get("enum"), list):
        return {canonical_json(value) for value in schema["enum"]}
    return None


def _json_kinds(regex: str) -> set[str]:
    """The JSON types the values of ``regex`` can have, read off their first bytes."""
    dfa = compile_dfa(regex)
    kinds = set()
    for byte in range(256):
        if dfa.transitions[dfa.start, byte] != DEAD:
            kinds.add(_KIND_OF_FIRST_BYTE.get(chr(byte), "other"))
    return kinds


_KIND_OF_FIRST_BYTE = {"{": "object", "[": "array", '"': "string", "t": "boolean", "f": "boolean", "n": "null",
                       "-": "number", **{digit: "number" for digit in "0123456789"}}


def _plain_object(schema: Any) -> bool:
    """An object schema whose instances the structural test of ``_told_apart`` can read: no union, no
    literal values at its top."""
    if not isinstance(schema, dict) or {"anyOf", "oneOf", "enum", "const", "$ref"} & schema.keys():
        return False
    types = as_list(schema.get("type"))
    return types == ["object"] or not types and bool({"properties", "required"} & schema.keys())
