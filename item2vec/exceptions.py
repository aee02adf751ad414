"""Exceptions raised at item2vec's public entry points.

Every error a user can cause derives from :class:`Item2VecError` as well as from
the built-in type a Python user would expect (``ValueError``, ``KeyError``, ...),
so ``except ValueError`` keeps working and the CLI can catch all of them at once.
"""

from __future__ import annotations

__all__ = [
    "Item2VecError",
    "DataError",
    "EmptyDataError",
    "MissingColumnError",
    "UnknownFormatError",
    "OutputExistsError",
    "UnknownItemError",
    "NotFittedError",
    "FormatVersionError",
    "OptionError",
    "EmptySplitError",
    "DataWarning",
    "TimestampWarning",
    "SplitWarning",
    "CorruptModelError",
]


class Item2VecError(Exception):
    """Base class of every error item2vec raises on bad input."""


class DataError(Item2VecError, ValueError):
    """The event log or session data is not what was expected."""


class EmptyDataError(DataError):
    """No rows, or nothing left after filtering."""


class MissingColumnError(DataError, KeyError):
    """A required column is absent from the input."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class UnknownFormatError(Item2VecError, ValueError):
    """The requested event-log format is not one item2vec can read."""


class OutputExistsError(Item2VecError, FileExistsError):
    """An output path holds something that writing there would destroy."""


class UnknownItemError(Item2VecError, KeyError):
    """An item id is not in the vocabulary."""

    def __init__(self, item: object, message: str | None = None) -> None:
        self.item = item
        super().__init__(message or f"unknown item id {item!r}: it is not in the vocabulary")

    def __str__(self) -> str:
        return str(self.args[0])


class NotFittedError(Item2VecError, AttributeError):
    """A model was used before ``fit``."""


class FormatVersionError(Item2VecError, ValueError):
    """A saved model directory has a format version this code cannot read."""


class OptionError(Item2VecError, ValueError):
    """An option has a value that cannot work (``window=0``, ``alpha=nan``, ``test_fraction=1.5``).

    ``options`` holds the names of the options involved, spelled as in Python
    (``test_days``), so that a front end can spell them its own way (the CLI
    writes ``--test-days``).
    """

    def __init__(self, message: str, options: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message)
        self.options = tuple(options)


class EmptySplitError(EmptyDataError, OptionError):
    """A train / valid / test split is empty with these split options; ``options`` names them."""


class DataWarning(UserWarning):
    """The data could be used, but something in it looks wrong; the message says what and how much."""


class TimestampWarning(DataWarning):
    """Timestamps in the future or far from the rest of the log."""


class SplitWarning(DataWarning):
    """A split is tiny or lopsided."""


class CorruptModelError(Item2VecError, ValueError):
    """A saved model file does not match its checksum or its siblings (the message names the file)."""
