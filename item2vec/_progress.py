"""The one place that decides whether a progress bar is drawn.

Every bar in item2vec is ``item2vec._progress.tqdm(..., disable=not show_progress)``:
asked for (``show_progress``, the command line's ``--quiet``) *and* stderr is a
terminal (or a notebook), so log files of batch jobs stay readable.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm as _tqdm

__all__ = ["show_bars", "tqdm"]


def show_bars(asked: bool = True) -> bool:
    """Whether a bar is drawn: ``asked`` and stderr is a terminal or a notebook's output."""
    if not asked:
        return False
    if _tqdm.__module__.startswith("tqdm.notebook"):
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def tqdm(*args: Any, disable: bool = False, **kwargs: Any) -> Any:
    """``tqdm.auto.tqdm``, disabled unless :func:`show_bars` says otherwise."""
    return _tqdm(*args, disable=not show_bars(not disable), **kwargs)
