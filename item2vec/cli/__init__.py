"""The ``item2vec`` command: prepare, fit, similar, evaluate, train-next, retrain, history, explore, neighbours.

:data:`COMMANDS` is the whole command line: one row per group of commands, each a
module whose ``add_parser(sub)`` registers its commands with their own handlers.
Adding a group is adding a row; a group whose optional extra is not installed still
shows in ``item2vec --help`` and, when used, says which ``pip install`` it needs.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

from item2vec.cli import data, embeddings, evaluate, explore, neighbours, nextitem, retrain, tune
from item2vec.cli._common import INPUT_ARGS, OUT_MARKERS, Parser, run

__all__ = ["COMMANDS", "INPUT_ARGS", "OUT_MARKERS", "Group", "build_parser", "main"]


@dataclass(frozen=True)
class Group:
    """A row of the command table.

    Attributes
    ----------
    module : module
        Defines ``add_parser(sub)``, which registers the commands and their handlers.
    commands : tuple of str
        The commands it registers, in the order ``item2vec --help`` lists them.
    extra, requires : str, optional
        The optional extra the group needs (``pip install item2vec[extra]``) and a module
        that extra installs; without that module the commands exist but only say so.
    """

    module: ModuleType
    commands: tuple[str, ...]
    extra: str | None = None
    requires: str | None = None

    def available(self) -> bool:
        """Whether the group's optional extra, if any, is installed."""
        return self.requires is None or importlib.util.find_spec(self.requires) is not None


#: The command table, in the order of ``item2vec --help``.
COMMANDS: tuple[Group, ...] = (
    Group(data, ("prepare",)),
    Group(embeddings, ("fit", "similar")),
    Group(evaluate, ("evaluate",)),
    Group(nextitem, ("train-next",)),
    Group(retrain, ("retrain", "history")),
    Group(explore, ("explore",)),
    Group(neighbours, ("neighbours",)),
    Group(tune, ("tune",), extra="tune", requires="optuna"),
)


def build_parser() -> argparse.ArgumentParser:
    """The ``item2vec`` argument parser: every command of :data:`COMMANDS`."""
    from item2vec import __version__

    parser = Parser(prog="item2vec", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--version", action="version", version=f"item2vec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in COMMANDS:
        if group.available():
            group.module.add_parser(sub)
            continue
        for name in group.commands:
            sub.add_parser(name, help=f"(needs pip install 'item2vec[{group.extra}]')",
                           missing_extra=(group.extra, group.requires), add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``item2vec`` console script; returns the exit status."""
    return run(build_parser().parse_args(argv))

