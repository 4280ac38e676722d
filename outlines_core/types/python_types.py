"""Python types, Pydantic models, choices and functions -> regex.

Bare scalars give the scalar itself (``int`` -> ``-?(0|[1-9][0-9]*)``), as do top-level ``Literal``,
``Enum`` and ``Choice`` (exactly one of the options, unquoted). Everything structured (Pydantic models,
dataclasses, ``TypedDict``, ``list[...]``, ``dict[str, ...]``, ``tuple[...]``, ``Optional``/``Union``,
functions' signatures) goes through its JSON Schema (pydantic's ``TypeAdapter``) and produces JSON.
"""

from __future__ import annotations

import collections.abc
import datetime
import enum
import inspect
import json
import re
import typing
from dataclasses import dataclass

from ..errors import UnsupportedTypeError
from . import formats
from .json_schema import BOOLEAN, INTEGER, NUMBER, STRING_CHAR, json_schema_to_regex
from .regex import Regex

SCALAR_REGEXES = {
    int: INTEGER,
    float: NUMBER,
    bool: r"(?:True|False)",
    str: r"[\s\S]*",  # any text, newlines included
    datetime.datetime: formats.ISO_DATE_TIME,
    datetime.date: formats.DATE,
    datetime.time: formats.ISO_TIME,
}


@dataclass(frozen=True)
class Choice:
    """Exactly one of ``options`` (strings), written as is."""

    options: tuple[str, ...]

    def __init__(self, options) -> None:
        options = tuple(options)
        if not options or not all(isinstance(o, str) for o in options):
            raise UnsupportedTypeError("Choice needs a non-empty list of strings")
        object.__setattr__(self, "options", options)


@dataclass(frozen=True)
class JsonSchema:
    """A JSON Schema (dict or JSON text; or a Pydantic model / Python type, through its JSON Schema) as an
    output type, with the JSON options: ``whitespace_pattern`` between tokens (None: compact),
    ``max_recursion_depth`` for recursive ``$ref``, ``any_value_depth`` for ``{}`` / ``true`` schemas."""

    schema: typing.Any
    whitespace_pattern: str | None = None
    max_recursion_depth: int = 3
    any_value_depth: int = 2


def choice_regex(options) -> str:
    return "(?:" + "|".join(re.escape(str(o)) for o in options) + ")"


def python_type_to_regex(output_type, *, whitespace_pattern: str | None = None) -> str:
    """The regex of a Python type, Pydantic model, ``Choice``, ``JsonSchema``, ``Literal``/``Enum`` or function."""
    if isinstance(output_type, Choice):
        return choice_regex(output_type.options)
    if isinstance(output_type, JsonSchema):
        schema = output_type.schema
        if not isinstance(schema, (dict, bool, str, bytes)):
            schema = json_schema_of(schema)  # a Pydantic model or Python type, with the JSON options
        return json_schema_to_regex(
            schema,
            whitespace_pattern=output_type.whitespace_pattern,
            max_recursion_depth=output_type.max_recursion_depth,
            any_value_depth=output_type.any_value_depth,
        )
    if isinstance(output_type, (dict, bool)):  # a JSON Schema, boolean ones included
        return json_schema_to_regex(output_type, whitespace_pattern=whitespace_pattern)
    if output_type in SCALAR_REGEXES:
        return SCALAR_REGEXES[output_type]
    if typing.get_origin(output_type) is typing.Literal:
        return choice_regex(str(v) if not isinstance(v, bool) else str(v) for v in typing.get_args(output_type))
    if isinstance(output_type, type) and issubclass(output_type, enum.Enum):
        return choice_regex(str(member.value) for member in output_type)
    return json_schema_to_regex(json_schema_of(output_type), whitespace_pattern=whitespace_pattern)


def writes_bare_text(output_type) -> bool:
    """Whether ``python_type_to_regex`` writes ``output_type`` as text that is not its JSON form: ``bool``
    (``True``), ``str``, dates and times, ``Literal[...]`` and ``Enum`` values, unquoted (``int`` and
    ``float`` are written as JSON numbers)."""
    if isinstance(output_type, type) and output_type in SCALAR_REGEXES:
        return output_type not in (int, float)
    if typing.get_origin(output_type) is typing.Literal:
        return True
    return isinstance(output_type, type) and issubclass(output_type, enum.Enum)


def json_schema_of(output_type) -> dict:
    """The JSON Schema of a structured Python type (via pydantic), or of a function's arguments."""
    try:
        import pydantic
    except ImportError as error:  # pragma: no cover
        raise UnsupportedTypeError("structured Python types need pydantic: pip install pydantic") from error
    _check_mapping_keys(output_type)
    if inspect.isfunction(output_type) or inspect.ismethod(output_type) or typing.is_typeddict(output_type):
        return _fields_model(output_type).model_json_schema()
    if isinstance(output_type, type) and issubclass(output_type, pydantic.BaseModel):
        return output_type.model_json_schema()
    try:
        return pydantic.TypeAdapter(output_type).json_schema()
    except Exception as error:  # pydantic raises several types here; ours names the type
        raise UnsupportedTypeError(f"unsupported output type {output_type!r}: {error}") from error


def _check_mapping_keys(output_type) -> None:
    """Refuse mappings whose keys are not strings, anywhere in the type (``dict[int, str]``, a model's
    ``dict[date, float]`` field): pydantic's JSON Schema leaves the key type out, so the regex would let any
    key through and the output would not parse back."""
    import dataclasses

    import pydantic

    seen: set[int] = set()

    def check(tp, where: str) -> None:
        if id(tp) in seen:
            return
        seen.add(id(tp))
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is typing.Annotated:
            check(args[0], where)
            return
        if origin is not None and isinstance(origin, type) and issubclass(origin, collections.abc.Mapping):
            if args and not _is_string_key(args[0]):
                raise UnsupportedTypeError(
                    f"{where}: mapping keys must be strings (JSON object keys are), got {args[0]!r}; use "
                    "dict[str, ...] or a list of pairs"
                )
        for arg in args:
            if arg is not Ellipsis and not isinstance(arg, (str, int, float, bool, bytes, enum.Enum)):
                check(arg, where)
        if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
            for name, field in tp.model_fields.items():
                check(field.annotation, f"{where}.{name}")
        elif isinstance(tp, type) and dataclasses.is_dataclass(tp) or typing.is_typeddict(tp):
            for name, hint in typing.get_type_hints(tp).items():
                check(hint, f"{where}.{name}")
        elif inspect.isfunction(tp) or inspect.ismethod(tp):
            for name, hint in typing.get_type_hints(tp).items():
                if name != "return":
                    check(hint, f"{where}({name})")

    check(output_type, getattr(output_type, "__name__", repr(output_type)))


def _is_string_key(key_type) -> bool:
    if key_type in (str, typing.Any):
        return True
    if typing.get_origin(key_type) is typing.Literal:
        return all(isinstance(value, str) for value in typing.get_args(key_type))
    if typing.get_origin(key_type) is typing.Annotated:
        return _is_string_key(typing.get_args(key_type)[0])
    if isinstance(key_type, type) and issubclass(key_type, enum.Enum):
        return all(isinstance(member.value, str) for member in key_type)
    return isinstance(key_type, type) and issubclass(key_type, str)


def _fields_model(output_type):
    """A pydantic model with the fields of a function's arguments or of a ``TypedDict`` (pydantic refuses
    ``typing.TypedDict`` before Python 3.12, so its keys are turned into model fields here). Each field is
    named ``field_<i>`` with its argument's name as alias: pydantic would drop names with a leading
    underscore (private attributes) and refuse names of its own (``model_config``)."""
    import pydantic

    fields = {}
    if typing.is_typeddict(output_type):
        hints = typing.get_type_hints(output_type)
        required = getattr(output_type, "__required_keys__", frozenset(hints))
        for position, (name, hint) in enumerate(hints.items()):
            fields[f"field_{position}"] = (hint, pydantic.Field(... if name in required else None, alias=name))
        return pydantic.create_model(output_type.__name__, **fields)
    refused = {
        inspect.Parameter.POSITIONAL_ONLY: "is positional-only",
        inspect.Parameter.VAR_POSITIONAL: "collects positional arguments (*args)",
        inspect.Parameter.VAR_KEYWORD: "collects keyword arguments (**kwargs)",
    }
    for position, (name, parameter) in enumerate(inspect.signature(output_type).parameters.items()):
        if parameter.kind in refused:
            raise UnsupportedTypeError(
                f"parameter '{name}' of {output_type.__name__} {refused[parameter.kind]}: the output is a JSON "
                f"object of keyword arguments, passed as {output_type.__name__}(**result)"
            )
        if parameter.annotation is inspect.Parameter.empty:
            raise UnsupportedTypeError(f"parameter '{name}' of {output_type.__name__} has no type annotation")
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[f"field_{position}"] = (parameter.annotation, pydantic.Field(default, alias=name))
    return pydantic.create_model(output_type.__name__ + "Arguments", **fields)


def parse_output(text: str, output_type):
    """Parse generated ``text`` back into ``output_type``'s value (model instance, int, datetime, ...)."""
    import pydantic

    if output_type in (int, float):
        return output_type(text)
    if output_type is bool:
        return text == "True"
    if output_type is str or isinstance(output_type, (Choice, Regex)):
        return text
    if output_type in (datetime.datetime, datetime.date, datetime.time):
        return output_type.fromisoformat(text.replace("Z", "+00:00"))
    if typing.get_origin(output_type) is typing.Literal:
        for value in typing.get_args(output_type):
            if str(value) == text:
                return value
        raise ValueError(f"{text!r} is not one of {typing.get_args(output_type)}")
    if isinstance(output_type, type) and issubclass(output_type, enum.Enum):
        for member in output_type:
            if str(member.value) == text:
                return member
        raise ValueError(f"{text!r} is not a value of {output_type.__name__}")
    if isinstance(output_type, JsonSchema) and not isinstance(output_type.schema, (dict, bool, str, bytes)):
        return parse_output(text, output_type.schema)
    if isinstance(output_type, (dict, bool, JsonSchema)):
        return json.loads(text)
    if isinstance(output_type, type) and issubclass(output_type, pydantic.BaseModel):
        return output_type.model_validate_json(text)
    if inspect.isfunction(output_type) or inspect.ismethod(output_type) or typing.is_typeddict(output_type):
        # The arguments (keys) present in the text, validated and converted: ``function(**result)``.
        model = _fields_model(output_type)
        validated = model.model_validate_json(text)
        present = validated.model_fields_set
        return {field.alias: getattr(validated, name) for name, field in model.model_fields.items() if name in present}
    return pydantic.TypeAdapter(output_type).validate_json(text)


__all__ = ["Choice", "JsonSchema", "python_type_to_regex", "json_schema_of", "parse_output", "BOOLEAN", "STRING_CHAR"]
