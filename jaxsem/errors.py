"""One layer for every message a user sees.

Every problem with user input is raised as a subclass of :class:`JaxsemError`; the
message names the place (line and column with a caret, a variable, a parameter) and
says what to do. Nothing from inside JAX ever reaches the user for bad input.
"""
from __future__ import annotations

import warnings


class JaxsemError(Exception):
    """Base class of every user-facing error."""


class ModelError(JaxsemError):
    """Something is wrong with the model: it is not a valid or identified model, or (the
    subclass :class:`ModelSyntaxError`) its text cannot be read."""


class ModelSyntaxError(ModelError):
    """The model text cannot be parsed; shows the line with a caret under the spot.

    A :class:`ModelError`, so ``except ModelError`` also catches syntax errors."""

    def __init__(self, message: str, text: str | None = None, line: int | None = None,
                 col: int | None = None, hint: str | None = None):
        self.line, self.col, self.hint = line, col, hint
        parts = []
        where = f"line {line}, column {col}: " if line is not None and col is not None else (
            f"line {line}: " if line is not None else "")
        parts.append(f"{where}{message}")
        if text is not None and line is not None:
            lines = text.splitlines()
            if 1 <= line <= len(lines):
                src = lines[line - 1].expandtabs(1)
                parts.append(f"    {src}")
                if col is not None:
                    parts.append("    " + " " * max(col - 1, 0) + "^")
        if hint:
            parts.append(hint)
        super().__init__("\n".join(parts))


class DataError(JaxsemError):
    """The data do not fit the declared roles, codes or model."""


class PriorError(ModelError):
    """A prior is malformed or has impossible arguments."""


class JaxsemWarning(UserWarning):
    """Something the user should know that does not stop the analysis."""


def warn(message: str) -> None:
    """Emit a :class:`JaxsemWarning` (the one way jaxsem warns)."""
    warnings.warn(message, JaxsemWarning, stacklevel=3)


def source_location(text: str, pos: int) -> tuple[int, int]:
    """1-based (line, column) of character offset ``pos`` in ``text``."""
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col
