"""A deterministic corpus of real-world-shaped JSON Schemas with valid and invalid instances (issue 4).

    python benchmarks/schema_corpus.py            # prints a summary of the corpus

``build_corpus(seed=0, size=320)`` returns a list of ``CorpusEntry``: configuration files (server, CI,
logging), API payloads (user, order, invoice, address, product), function-calling argument schemas, with
``$defs``/``$ref``, ``enum``, ``const``, ``format``, length / range / item bounds, ``anyOf`` and optional
fields; every object has ``additionalProperties: false`` so that valid instances are canonical. About 5% of
the entries use keywords the engine refuses (``patternProperties``, ``not``, ``if``/``then``) and are marked
``expect_refusal``.

Valid instances are built from the template (properties in schema order, so ``json.dumps`` writes them
canonically) and checked with ``jsonschema``; invalid instances are mutations of the valid ones (wrong type,
missing required, out of range, bad enum / format, extra property, too-long string) kept only when
``jsonschema`` rejects them.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from typing import Any, Callable

import jsonschema

FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER


@dataclass
class CorpusEntry:
    name: str
    family: str
    schema: dict
    valid: list = field(default_factory=list)
    invalid: list = field(default_factory=list)
    expect_refusal: bool = False


def is_valid(schema: dict, instance: Any, validator=None) -> bool:
    """``jsonschema.validate(instance, schema, format_checker=FORMAT_CHECKER)`` as a boolean (Draft 2020-12)."""
    if validator is None:
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
    return validator.is_valid(instance)


# ---------------------------------------------------------------------------------------------- value pools

WORDS = ["alpha", "beta", "gamma", "delta", "north", "south", "quick", "brown", "fox", "lazy", "river", "stone",
         "cloud", "ember", "pixel", "vector", "orbit", "maple", "cedar", "lotus"]
NAMES = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Zoë Kravitz", "José Martí", "Linus", "Margaret Hamilton",
         "Søren Kierkegaard", "Chloé", "Ken Thompson", "Barbara Liskov", "李小龙"]
CITIES = ["Paris", "Berlin", "Tokyo", "São Paulo", "Zürich", "New York", "Kraków", "Montréal", "東京", "Lagos"]
COUNTRIES = ["FR", "DE", "JP", "BR", "CH", "US", "PL", "CA", "NG", "GB"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "test.io"]


def word(rng: random.Random) -> str:
    return rng.choice(WORDS)


def text(rng: random.Random, lo: int, hi: int) -> str:
    """A phrase of words whose length lies in [lo, hi] (code points)."""
    out = ""
    target = rng.randint(lo, hi)
    while len(out) < target:
        out = (out + " " + word(rng)).strip() if out else word(rng)
    out = out[:target]
    if out.endswith(" "):
        out = out[:-1] + "x"
    return out if len(out) >= lo else out + "x" * (lo - len(out))


def fmt_value(rng: random.Random, fmt: str) -> str:
    if fmt == "date":
        return f"{rng.randint(1990, 2030):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if fmt == "date-time":
        frac = rng.choice(["", ".5", ".123", ".000001"])
        tz = rng.choice(["Z", "+02:00", "-05:30", "+00:00"])
        return (f"{rng.randint(1990, 2030):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                f"T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}{frac}{tz}")
    if fmt == "email":
        return f"{word(rng)}.{word(rng)}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}"
    if fmt == "uuid":
        h = "".join(rng.choice("0123456789abcdef") for _ in range(32))
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    if fmt == "uri":
        return rng.choice([f"https://{rng.choice(DOMAINS)}/{word(rng)}/{rng.randint(1, 999)}",
                           f"http://{word(rng)}.{rng.choice(DOMAINS)}/",
                           f"https://api.{rng.choice(DOMAINS)}/v{rng.randint(1, 3)}/{word(rng)}?page={rng.randint(1, 9)}"])
    if fmt == "ipv4":
        return ".".join(str(rng.randint(0, 255)) for _ in range(4))
    raise ValueError(fmt)


# ---------------------------------------------------------------------------------------------- building blocks
# A "spec" is (schema, generator): generator(rng) returns a valid value for the schema.

Spec = tuple  # (dict, Callable[[random.Random], Any])


def s_string(rng, lo=None, hi=None) -> Spec:
    schema: dict = {"type": "string"}
    if lo is not None:
        schema["minLength"] = lo
    if hi is not None:
        schema["maxLength"] = hi
    return schema, lambda r: text(r, lo or 1, hi or 24)


def s_name() -> Spec:
    return {"type": "string", "minLength": 1, "maxLength": 40}, lambda r: r.choice(NAMES)


def s_format(fmt: str) -> Spec:
    return {"type": "string", "format": fmt}, lambda r: fmt_value(r, fmt)


def s_int(lo=None, hi=None) -> Spec:
    schema: dict = {"type": "integer"}
    if lo is not None:
        schema["minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi
    return schema, lambda r: r.randint(lo if lo is not None else -1000, hi if hi is not None else 100000)


def s_number(lo=None, hi=None) -> Spec:
    schema: dict = {"type": "number"}
    if lo is not None:
        schema["minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi
    a, b = (lo if lo is not None else -500), (hi if hi is not None else 5000)
    return schema, lambda r: r.choice([round(r.uniform(a, b), 2) + 0.0, float(r.randint(int(a), int(b))), int(r.uniform(a, b))])


def s_bool() -> Spec:
    return {"type": "boolean"}, lambda r: r.random() < 0.5


def s_enum(values: list) -> Spec:
    return {"enum": list(values)}, lambda r: r.choice(values)


def s_typed_enum(values: list) -> Spec:
    return {"type": "string", "enum": list(values)}, lambda r: r.choice(values)


def s_const(value) -> Spec:
    return {"const": value}, lambda r: value


def s_nullable(spec: Spec) -> Spec:
    schema, gen = spec
    return {"anyOf": [schema, {"type": "null"}]}, lambda r: None if r.random() < 0.4 else gen(r)


def s_array(spec: Spec, lo=None, hi=None) -> Spec:
    schema: dict = {"type": "array", "items": spec[0]}
    if lo is not None:
        schema["minItems"] = lo
    if hi is not None:
        schema["maxItems"] = hi
    return schema, lambda r: [spec[1](r) for _ in range(r.randint(lo or 0, hi if hi is not None else 3))]


def s_object(props: list, optional: frozenset | set = frozenset(), description: str | None = None) -> Spec:
    """props: list of (name, spec); names in `optional` are not required and are present half the time."""
    schema: dict = {"type": "object"}
    if description:
        schema["description"] = description
    schema["properties"] = {name: spec[0] for name, spec in props}
    schema["required"] = [name for name, _ in props if name not in optional]
    schema["additionalProperties"] = False

    def gen(r):
        out = {}
        for name, spec in props:
            if name in optional and r.random() < 0.5:
                continue
            out[name] = spec[1](r)
        return out

    return schema, gen


def s_ref(name: str, spec: Spec) -> Spec:
    return {"$ref": f"#/$defs/{name}"}, spec[1]


def maybe_optional(rng, names: list[str], p=0.35) -> set:
    return {n for n in names if rng.random() < p}


# ---------------------------------------------------------------------------------------------- templates
# Each template: (rng) -> (schema, generator). Randomness picks bounds, enums, which fields exist / are optional.


def t_server_config(rng):
    names = ["host", "port", "workers", "debug", "tls", "log_level", "allowed_origins", "timeout_s"]
    tls = s_object([("enabled", s_bool()), ("cert_path", s_string(None, 1, 64)), ("min_version", s_enum(["1.2", "1.3"]))],
                   optional=maybe_optional(rng, ["cert_path", "min_version"]))
    props = [("host", rng.choice([s_format("ipv4"), s_string(None, 1, 32)])),
             ("port", s_int(1, rng.choice([9999, 65535]))),
             ("workers", s_int(1, rng.choice([16, 64, 256]))),
             ("debug", s_bool()),
             ("tls", tls),
             ("log_level", s_typed_enum(rng.sample(["debug", "info", "warning", "error", "critical"], rng.randint(3, 5)))),
             ("allowed_origins", s_array(s_format("uri"), 0, rng.randint(2, 4))),
             ("timeout_s", s_number(0, rng.choice([60, 300, 3600])))]
    props = [p for p in props if p[0] in ("host", "port") or rng.random() < 0.8]
    return s_object(props, optional=maybe_optional(rng, [n for n, _ in props if n not in ("host", "port")]),
                    description="server configuration")


def t_ci_config(rng):
    step = s_object([("name", s_string(None, 1, 40)), ("run", s_string(None, 1, 80)),
                     ("timeout_minutes", s_int(1, 360)), ("continue_on_error", s_bool())],
                    optional=maybe_optional(rng, ["timeout_minutes", "continue_on_error"], 0.6))
    job = s_object([("runs_on", s_typed_enum(["ubuntu-latest", "macos-latest", "windows-latest"])),
                    ("steps", s_array(s_ref("step", step), 1, rng.randint(2, 4))),
                    ("env", s_object([("CI", s_const("true")), ("PYTHON_VERSION", s_enum(["3.10", "3.11", "3.12"]))],
                                     optional={"PYTHON_VERSION"}))],
                   optional=maybe_optional(rng, ["env"], 0.5))
    schema, gen = s_object([("name", s_string(None, 1, 50)),
                            ("on", s_array(s_typed_enum(["push", "pull_request", "schedule", "workflow_dispatch"]), 1, 3)),
                            ("jobs", s_object([("build", s_ref("job", job)), ("test", s_ref("job", job))],
                                              optional={"test"}))])
    schema["$defs"] = {"step": step[0], "job": job[0]}
    return schema, gen


def t_logging_config(rng):
    handler = s_object([("kind", s_typed_enum(["console", "file", "syslog"])),
                        ("level", s_enum(["DEBUG", "INFO", "WARNING", "ERROR"])),
                        ("path", s_nullable(s_string(None, 1, 64))),
                        ("max_bytes", s_int(0, 10**9))],
                       optional=maybe_optional(rng, ["path", "max_bytes"], 0.5))
    props = [("version", s_const(1)), ("root_level", s_enum(["DEBUG", "INFO", "WARNING", "ERROR"])),
             ("handlers", s_array(s_ref("handler", handler), 1, rng.randint(2, 3))),
             ("format", s_string(None, 1, rng.choice([40, 64, 100]))), ("disable_existing", s_bool())]
    schema, gen = s_object(props, optional=maybe_optional(rng, ["format", "disable_existing"]))
    schema["$defs"] = {"handler": handler[0]}
    return schema, gen


def t_address(rng):
    return s_object([("street", s_string(None, 1, 60)), ("city", (s_string(None, 1, 40)[0], lambda r: r.choice(CITIES))),
                     ("postal_code", s_string(None, 3, 10)), ("country", (
                         {"type": "string", "minLength": 2, "maxLength": 2}, lambda r: r.choice(COUNTRIES))),
                     ("region", s_string(None, 1, 30))],
                    optional=maybe_optional(rng, ["region", "postal_code"], 0.5))


def t_user(rng):
    props = [("id", rng.choice([s_format("uuid"), s_int(1, None)])), ("username", s_string(None, 3, 20)),
             ("email", s_format("email")), ("full_name", s_name()), ("age", s_int(0, 150)),
             ("role", s_typed_enum(rng.sample(["admin", "editor", "viewer", "owner", "guest"], 3))),
             ("created_at", s_format("date-time")), ("birthday", s_nullable(s_format("date"))),
             ("homepage", s_format("uri")), ("tags", s_array(s_string(None, 1, 16), 0, 5))]
    props = [p for p in props if p[0] in ("id", "email") or rng.random() < 0.75]
    return s_object(props, optional=maybe_optional(rng, [n for n, _ in props if n not in ("id",)]))


def t_order(rng):
    address = t_address(rng)
    item = s_object([("sku", s_string(None, 4, 12)), ("quantity", s_int(1, rng.choice([10, 99, 1000]))),
                     ("unit_price", s_number(0, 10000)), ("gift", s_bool())],
                    optional=maybe_optional(rng, ["gift"], 0.7))
    props = [("order_id", s_format("uuid")), ("status", s_typed_enum(["pending", "paid", "shipped", "cancelled"])),
             ("placed_at", s_format("date-time")), ("customer_email", s_format("email")),
             ("items", s_array(s_ref("item", item), 1, rng.randint(2, 4))),
             ("shipping", s_ref("address", address)), ("billing", s_nullable(s_ref("address", address))),
             ("coupon", s_string(None, 4, 12)), ("total", s_number(0, None))]
    schema, gen = s_object(props, optional=maybe_optional(rng, ["billing", "coupon", "customer_email", "total"]))
    schema["$defs"] = {"address": address[0], "item": item[0]}
    return schema, gen


def t_invoice(rng):
    line = s_object([("description", s_string(None, 1, 60)), ("amount", s_number(0, 100000)),
                     ("tax_rate", s_number(0, 1))], optional=maybe_optional(rng, ["tax_rate"], 0.6))
    props = [("invoice_number", s_string(None, 3, 16)), ("issued", s_format("date")), ("due", s_format("date")),
             ("currency", s_typed_enum(["EUR", "USD", "GBP", "JPY", "CHF"])),
             ("lines", s_array(s_ref("line", line), 1, rng.randint(2, 5))),
             ("paid", s_bool()), ("notes", s_nullable(s_string(None, 0, 120))),
             ("customer", s_object([("name", s_name()), ("vat_id", s_string(None, 4, 14))], optional={"vat_id"}))]
    schema, gen = s_object(props, optional=maybe_optional(rng, ["paid", "notes", "due"]))
    schema["$defs"] = {"line": line[0]}
    return schema, gen


def t_product(rng):
    variant = s_object([("sku", s_string(None, 4, 12)), ("color", s_enum(["red", "green", "blue", "black", "white"])),
                        ("size", s_enum(["XS", "S", "M", "L", "XL", None])), ("stock", s_int(0, 100000))],
                       optional=maybe_optional(rng, ["size", "stock"], 0.5))
    props = [("id", s_int(1, None)), ("title", s_string(None, 1, rng.choice([60, 80]))),
             ("price", s_number(0, 100000)), ("currency", s_const("EUR")),
             ("categories", s_array(s_string(None, 1, 20), 1, 4)),
             ("variants", s_array(variant, 0, rng.randint(2, 3))),
             ("images", s_array(s_format("uri"), 0, 3)), ("rating", s_nullable(s_number(0, 5))),
             ("dimensions", s_object([("width_cm", s_number(0, 500)), ("height_cm", s_number(0, 500)),
                                      ("weight_g", s_int(0, 100000))], optional={"weight_g"}))]
    props = [p for p in props if p[0] in ("id", "title", "price") or rng.random() < 0.8]
    return s_object(props, optional=maybe_optional(rng, [n for n, _ in props if n not in ("id", "title")]))


TOOLS = [
    ("get_weather", [("location", lambda rng: s_string(None, 1, 60)),
                     ("unit", lambda rng: s_typed_enum(["celsius", "fahrenheit"])),
                     ("days", lambda rng: s_int(1, rng.choice([7, 14])))]),
    ("search_flights", [("origin", lambda rng: ({"type": "string", "minLength": 3, "maxLength": 3},
                                               lambda r: r.choice(["CDG", "JFK", "NRT", "GRU", "ZRH"]))),
                        ("destination", lambda rng: ({"type": "string", "minLength": 3, "maxLength": 3},
                                                    lambda r: r.choice(["LHR", "SFO", "HND", "BER"]))),
                        ("date", lambda rng: s_format("date")),
                        ("passengers", lambda rng: s_object([("adults", s_int(1, 9)), ("children", s_int(0, 8))],
                                                           optional={"children"})),
                        ("cabin", lambda rng: s_enum(["economy", "premium", "business", "first"]))]),
    ("send_email", [("to", lambda rng: s_array(s_format("email"), 1, 3)), ("subject", lambda rng: s_string(None, 1, 78)),
                    ("body", lambda rng: s_string(None, 0, 200)),
                    ("cc", lambda rng: s_array(s_format("email"), 0, 2)),
                    ("priority", lambda rng: s_enum(["low", "normal", "high"]))]),
    ("create_calendar_event", [("title", lambda rng: s_string(None, 1, 50)), ("start", lambda rng: s_format("date-time")),
                               ("end", lambda rng: s_format("date-time")),
                               ("attendees", lambda rng: s_array(s_object([("email", s_format("email")),
                                                                          ("optional", s_bool())],
                                                                         optional={"optional"}), 0, 3)),
                               ("reminder_minutes", lambda rng: s_nullable(s_int(0, 1440)))]),
    ("query_database", [("table", lambda rng: s_typed_enum(["users", "orders", "products"])),
                        ("filters", lambda rng: s_array(s_object([("column", s_string(None, 1, 30)),
                                                                  ("op", s_enum(["=", "!=", "<", ">", "like"])),
                                                                  ("value", ({"anyOf": [{"type": "string", "maxLength": 40},
                                                                                        {"type": "integer"},
                                                                                        {"type": "boolean"}]},
                                                                             lambda r: r.choice([word(r), r.randint(-5, 500), True])))]),
                                                        0, 3)),
                        ("limit", lambda rng: s_int(1, 1000)),
                        ("order_by", lambda rng: s_string(None, 1, 30))]),
    ("set_thermostat", [("room", lambda rng: s_typed_enum(["living", "kitchen", "bedroom", "office"])),
                        ("target", lambda rng: s_number(5, 35)), ("mode", lambda rng: s_enum(["heat", "cool", "auto", "off"])),
                        ("schedule", lambda rng: s_nullable(s_format("date-time")))]),
    ("translate_text", [("text", lambda rng: s_string(None, 1, 200)),
                        ("source_lang", lambda rng: s_enum(["en", "fr", "de", "ja", "pt", None])),
                        ("target_lang", lambda rng: s_enum(["en", "fr", "de", "ja", "pt"])),
                        ("formality", lambda rng: s_typed_enum(["formal", "informal"]))]),
    ("http_request", [("method", lambda rng: s_enum(["GET", "POST", "PUT", "DELETE"])), ("url", lambda rng: s_format("uri")),
                      ("headers", lambda rng: s_array(s_object([("name", s_string(None, 1, 40)), ("value", s_string(None, 0, 80))]), 0, 3)),
                      ("timeout", lambda rng: s_number(0, 120)), ("client_ip", lambda rng: s_format("ipv4"))]),
]


def t_tool_call(rng):
    tool_name, arg_makers = rng.choice(TOOLS)
    args = [(n, mk(rng)) for n, mk in arg_makers]
    optional = maybe_optional(rng, [n for n, _ in args[1:]], 0.45)
    arguments = s_object(args, optional=optional, description=f"arguments of {tool_name}")
    if rng.random() < 0.5:
        return arguments  # the bare arguments schema, as passed to a function-calling API
    # a tool call envelope with the arguments in $defs
    schema, gen = s_object([("name", s_const(tool_name)), ("id", s_format("uuid")), ("arguments", s_ref("args", arguments))],
                           optional={"id"} if rng.random() < 0.5 else set())
    schema["$defs"] = {"args": arguments[0]}
    return schema, gen


def t_tool_choice(rng):
    """anyOf over two or three tool calls, each tagged with a const name."""
    picks = rng.sample(TOOLS, rng.randint(2, 3))
    defs, options, gens = {}, [], []
    for tool_name, arg_makers in picks:
        args = s_object([(n, mk(rng)) for n, mk in arg_makers], optional={n for n, _ in arg_makers[1:] if rng.random() < 0.5})
        call = s_object([("tool", s_const(tool_name)), ("arguments", args)])
        defs[tool_name] = call[0]
        options.append({"$ref": f"#/$defs/{tool_name}"})
        gens.append(call[1])
    schema = {"$defs": defs, "anyOf": options}
    return schema, lambda r: r.choice(gens)(r)


def t_api_response(rng):
    user = t_user(rng)
    schema, gen = s_object([("ok", s_bool()), ("page", s_int(1, 1000)), ("per_page", s_int(1, 100)),
                            ("data", s_array(s_ref("user", user), 0, rng.randint(2, 3))),
                            ("next", s_nullable(s_format("uri")))],
                           optional=maybe_optional(rng, ["next", "per_page"]))
    schema["$defs"] = {"user": user[0]}
    return schema, gen


def t_category_tree(rng):
    """A recursive $ref: categories with subcategories (instances at most 2 levels deep)."""
    leaf = s_object([("name", s_string(None, 1, 30)), ("slug", s_string(None, 1, 30))])
    mid = s_object([("name", s_string(None, 1, 30)), ("slug", s_string(None, 1, 30)),
                    ("children", s_array(leaf, 0, 2))], optional={"children"})
    node_schema = {"type": "object", "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 30},
                                                    "slug": {"type": "string", "minLength": 1, "maxLength": 30},
                                                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
                   "required": ["name", "slug"], "additionalProperties": False}
    schema = {"$defs": {"node": node_schema}, "type": "object",
              "properties": {"root": {"$ref": "#/$defs/node"}, "updated": {"type": "string", "format": "date"}},
              "required": ["root"], "additionalProperties": False}

    def gen(r):
        root = {"name": text(r, 1, 30), "slug": text(r, 1, 30)}
        if r.random() < 0.7:
            root["children"] = [mid[1](r) for _ in range(r.randint(0, 2))]
        out = {"root": root}
        if r.random() < 0.5:
            out["updated"] = fmt_value(r, "date")
        return out

    return schema, gen


# ---------------------------------------------------------------------------------------------- unsupported

def t_unsupported(rng):
    base, gen = t_address(rng) if rng.random() < 0.5 else t_user(rng)
    base = copy.deepcopy(base)
    kind = rng.choice(["patternProperties", "not", "if_then"])
    if kind == "patternProperties":
        base["patternProperties"] = {"^x-": {"type": "string"}}
    elif kind == "not":
        first = next(iter(base["properties"]))
        base["properties"][first] = {"allOf": [base["properties"][first]], "not": {"const": "forbidden"}} \
            if rng.random() < 0.5 else {**base["properties"][first], "not": {"const": "forbidden"}}
    else:
        first = next(iter(base["properties"]))
        base["if"] = {"required": [first]}
        base["then"] = {"required": list(base["properties"])[:2]}
    return base, gen


FAMILIES: list[tuple[str, Callable, int]] = [
    ("config/server", t_server_config, 30),
    ("config/ci", t_ci_config, 24),
    ("config/logging", t_logging_config, 24),
    ("api/user", t_user, 30),
    ("api/address", t_address, 18),
    ("api/order", t_order, 30),
    ("api/invoice", t_invoice, 24),
    ("api/product", t_product, 30),
    ("api/response", t_api_response, 16),
    ("api/category_tree", t_category_tree, 6),
    ("tools/call", t_tool_call, 48),
    ("tools/choice", t_tool_choice, 24),
]
UNSUPPORTED_COUNT = 16


# ---------------------------------------------------------------------------------------------- invalid instances

def _paths(value, prefix=()):
    yield prefix, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _set_now(root, path, new):
    if not path:
        return new
    root = copy.deepcopy(root)
    node = root
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = new
    return root


def _delete_now(root, path):
    root = copy.deepcopy(root)
    node = root
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return root


def mutations(instance, rng):
    """Candidate invalid instances, lazily: each a (kind, value)."""
    out = []

    class _Lazy:
        def __init__(self, fn, *a):
            self.fn, self.a = fn, a

    def _set(root, path, new):
        return _Lazy(_set_now, root, path, new)

    def _delete(root, path):
        return _Lazy(_delete_now, root, path)

    for path, value in _paths(instance):
        if isinstance(value, dict):
            out.append(("extra property", _set(instance, path, {**value, "unexpected_field": 1})))
            for k in value:
                out.append(("missing required", _delete(instance, path + (k,))))
            out.append(("wrong type", _set(instance, path, [value])))
        elif isinstance(value, list):
            out.append(("wrong type", _set(instance, path, {"items": value})))
            out.append(("too many items", _set(instance, path, value + value + value + value + value)))
            if value:
                out.append(("too few items", _set(instance, path, [])))
        elif isinstance(value, bool):
            out.append(("wrong type", _set(instance, path, "true")))
        elif isinstance(value, int):
            out.append(("out of range", _set(instance, path, value + 10**7)))
            out.append(("out of range", _set(instance, path, -value - 10**7)))
            out.append(("wrong type", _set(instance, path, str(value))))
            out.append(("wrong type", _set(instance, path, value + 0.5)))
        elif isinstance(value, float):
            out.append(("out of range", _set(instance, path, value + 1e6)))
            out.append(("out of range", _set(instance, path, -value - 1e6)))
            out.append(("wrong type", _set(instance, path, None)))
        elif isinstance(value, str):
            out.append(("too-long string", _set(instance, path, value + "x" * 300)))
            out.append(("bad enum / format", _set(instance, path, value + "~not-allowed")))
            out.append(("too-short string", _set(instance, path, "")))
            out.append(("wrong type", _set(instance, path, 42)))
        elif value is None:
            out.append(("wrong type", _set(instance, path, 0)))
    rng.shuffle(out)
    for kind, lazy in out:
        yield kind, lazy.fn(*lazy.a)


# ---------------------------------------------------------------------------------------------- corpus

def _canonical(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _make_entry(name, family, schema, gen, rng, n_valid, n_invalid, expect_refusal=False) -> CorpusEntry:
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
    valid, seen = [], set()
    for _ in range(n_valid * 4):
        if len(valid) >= n_valid:
            break
        value = gen(rng)
        key = _canonical(value)
        if key in seen:
            continue
        if not is_valid(schema, value, validator):  # a template bug: fail loudly
            raise AssertionError(f"{name}: constructed instance is not valid: {key}")
        seen.add(key)
        valid.append(value)
    invalid, seen_bad, kinds = [], set(), {}
    for base in valid:
        for kind, bad in mutations(base, rng):
            if len(invalid) >= n_invalid:
                break
            key = _canonical(bad)
            if key in seen_bad or kinds.get(kind, 0) >= max(2, n_invalid // 3):
                continue
            seen_bad.add(key)
            if not is_valid(schema, bad, validator):
                kinds[kind] = kinds.get(kind, 0) + 1
                invalid.append(bad)
    return CorpusEntry(name, family, schema, valid, invalid, expect_refusal)


def build_corpus(seed: int = 0, n_valid: int = 4, n_invalid: int = 8) -> list[CorpusEntry]:
    rng = random.Random(seed)
    corpus = []
    for family, template, count in FAMILIES:
        for i in range(count):
            schema, gen = template(rng)
            corpus.append(_make_entry(f"{family}/{i:03d}", family, schema, gen, rng, n_valid, n_invalid))
    for i in range(UNSUPPORTED_COUNT):
        schema, gen = t_unsupported(rng)
        corpus.append(CorpusEntry(f"unsupported/{i:03d}", "unsupported", schema, [], [], expect_refusal=True))
    return corpus


if __name__ == "__main__":
    entries = build_corpus()
    by_family: dict[str, int] = {}
    for e in entries:
        by_family[e.family] = by_family.get(e.family, 0) + 1
    print(f"{len(entries)} schemas, {sum(len(e.valid) for e in entries)} valid and "
          f"{sum(len(e.invalid) for e in entries)} invalid instances")
    for fam, n in by_family.items():
        print(f"  {fam:20s} {n}")
