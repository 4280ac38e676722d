"""One exception hierarchy for every stage of the pipeline.

Each stage's error also inherits the builtin a caller would naturally catch (``ValueError`` for bad
input), so ``except ValueError`` keeps working for users who do not know our classes.
"""

from __future__ import annotations


class OutlinesCoreError(Exception):
    """Root of every error raised by the engine."""


class RegexSyntaxError(OutlinesCoreError, ValueError):
    """A regex that is malformed or uses a construct the engine does not support.

    The message names the construct and shows the pattern with a caret under ``position``.
    """

    def __init__(self, message: str, pattern: str, position: int) -> None:
        self.pattern = pattern
        self.position = position
        self.reason = message
        caret = " " * position + "^"
        super().__init__(f"{message} at position {position}\n  {pattern}\n  {caret}")


class DfaTooLargeError(OutlinesCoreError, ValueError):
    """Determinizing a regex produced more states than the configured bound allows."""


class VocabularyError(OutlinesCoreError, ValueError):
    """A tokenizer or vocabulary the engine cannot use as given."""


class IncompatibleVocabularyError(OutlinesCoreError, ValueError):
    """The vocabulary cannot produce any string the constraint accepts."""


class TokenNotAllowedError(OutlinesCoreError, ValueError):
    """``advance`` was given a token the current state does not allow."""


class SchemaError(OutlinesCoreError, ValueError):
    """A JSON Schema that is invalid or uses a keyword the engine cannot honour.

    ``pointer`` is the JSON Pointer (RFC 6901) of the offending subschema.
    """

    def __init__(self, message: str, pointer: str = "") -> None:
        self.pointer = pointer
        self.reason = message
        where = pointer if pointer else "#"
        super().__init__(f"{message} (at {where})")


class UnsupportedTypeError(OutlinesCoreError, TypeError):
    """A Python type or output type that cannot be turned into a constraint."""


class GrammarError(OutlinesCoreError, ValueError):
    """A Lark grammar that does not parse or that the recognizer cannot handle."""


class IncompleteOutputError(OutlinesCoreError, RuntimeError):
    """Generation stopped (``max_new_tokens``) before the output satisfied its constraint.

    ``outputs`` holds every row's text as generated so far, ``incomplete_rows`` the rows that fell short.
    """

    def __init__(self, message: str, outputs: list[str], incomplete_rows: list[int]) -> None:
        self.outputs = outputs
        self.incomplete_rows = incomplete_rows
        super().__init__(message)
