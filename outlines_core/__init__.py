"""outlines_core: make a language model's output match a regex, a JSON Schema, a type or a grammar.

The core objects: ``Vocabulary`` (token id -> bytes), ``Index`` (a constraint compiled against a
vocabulary) and ``Guide`` (one output's walk through an index). ``Generator`` ties them to a model.
"""

from __future__ import annotations

from . import errors
from .errors import (
    DfaTooLargeError,
    IncompatibleVocabularyError,
    OutlinesCoreError,
    RegexSyntaxError,
    TokenNotAllowedError,
    VocabularyError,
)
from .guide import Guide
from .index import Index
from .vocabulary import Vocabulary

__version__ = "0.1.0"

__all__ = [
    "DfaTooLargeError",
    "Generator",
    "Guide",
    "IncompatibleVocabularyError",
    "Index",
    "OutlinesCoreError",
    "RegexSyntaxError",
    "TokenNotAllowedError",
    "Vocabulary",
    "errors",
    "types",
]


def __getattr__(name: str):
    # Generator and types pull in optional modules; import them on first use so `import outlines_core`
    # stays light (numpy only).
    if name == "Generator":
        from .generator import Generator

        return Generator
    if name == "types":
        import importlib

        return importlib.import_module(".types", __name__)
    raise AttributeError(f"module 'outlines_core' has no attribute {name!r}")
