"""The command line is an explicit table: each command is registered and handled by its own module."""

from __future__ import annotations

import argparse
import types

import pytest

import item2vec.cli as cli
from item2vec.cli import COMMANDS, Group, build_parser, main
from item2vec.cli._common import Parser


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _alone(group: Group) -> argparse._SubParsersAction:
    """The group's commands registered on a parser of their own, with no other group present."""
    sub = Parser(prog="item2vec").add_subparsers(dest="command", parser_class=Parser)
    group.module.add_parser(sub)
    return sub


def _options(p: argparse.ArgumentParser) -> list[tuple[str, ...]]:
    return [tuple(a.option_strings) or (a.dest,) for a in p._actions]


def test_every_command_is_in_the_table_and_handled_by_the_function_its_module_defines():
    sub = _subparsers(build_parser())
    assert list(sub.choices) == [name for g in COMMANDS for name in g.commands]  # nothing outside the table
    for group in COMMANDS:
        alone = _alone(group)
        assert list(alone.choices) == list(group.commands), group.module.__name__
        for name in group.commands:
            func = sub.choices[name].get_default("func")
            assert func.__module__ == group.module.__name__, (name, func.__module__)
            assert getattr(group.module, func.__name__) is func, name
            assert not hasattr(func, "__wrapped__"), name
            # no other group added options to it or replaced its handler
            assert alone.choices[name].get_default("func") is func
            assert _options(alone.choices[name]) == _options(sub.choices[name]), name


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for group in COMMANDS:
        for name in group.commands:
            assert f"\n    {name} " in out, name


def test_mlflow_options_come_from_one_parent_on_the_commands_that_log():
    sub = _subparsers(build_parser())
    logging = {"fit", "evaluate", "train-next", "tune"}
    for name, p in sub.choices.items():
        opts = {s for a in p._actions for s in a.option_strings}
        assert ("--mlflow" in opts) == (name in logging), name
        if name in logging:
            assert {"--tracking-uri", "--experiment"} <= opts
            a = p.parse_args(["--mlflow"] + (["--data", "d", "--out", "o"] if name != "evaluate" else ["--data", "d"]))
            assert a.mlflow and a.tracking_uri is None and a.experiment == "item2vec"


def _fake_group() -> types.ModuleType:
    mod = types.ModuleType("item2vec_fake_group")

    def add_parser(sub):
        p = sub.add_parser("fake", help="a command of an optional extra")
        p.add_argument("--model", required=True)
        p.set_defaults(func=lambda a: 0)

    mod.add_parser = add_parser
    return mod


def test_a_group_whose_extra_is_missing_is_listed_and_says_what_to_install(monkeypatch, capsys):
    group = Group(_fake_group(), ("fake",), extra="fakeextra", requires="item2vec_no_such_module")
    monkeypatch.setattr(cli, "COMMANDS", (*COMMANDS, group))
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "fake" in out and "pip install 'item2vec[fakeextra]'" in out
    for argv in (["fake", "--model", "m"], ["fake"], ["fake", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "pip install 'item2vec[fakeextra]'" in err[0] and "item2vec_no_such_module" in err[0]
    # installed: the group's own command runs
    monkeypatch.setattr(cli, "COMMANDS", (*COMMANDS, Group(group.module, ("fake",), extra="fakeextra",
                                                                 requires="argparse")))
    assert main(["fake", "--model", "m"]) == 0


def test_a_group_that_fails_to_import_something_is_not_skipped(monkeypatch):
    mod = types.ModuleType("item2vec_broken_group")

    def add_parser(sub):
        raise ModuleNotFoundError("No module named 'item2vec_gone'", name="item2vec_gone")

    mod.add_parser = add_parser
    monkeypatch.setattr(cli, "COMMANDS", (*COMMANDS, Group(mod, ("broken",))))
    with pytest.raises(ModuleNotFoundError):
        build_parser()



def test_building_the_command_line_imports_no_heavy_library():
    import subprocess
    import sys

    code = ("import sys; from item2vec.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'mlflow', 'gensim', 'polars') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout.strip() == "[]"  # each command imports what it needs when it runs
