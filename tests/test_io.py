"""Atomic writes never destroy what was there: refusal rules, inputs and the cwd, permissions, no leftovers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from item2vec import _io
from item2vec._io import atomic_dir, atomic_file, check_output, output_policy
from item2vec.exceptions import Item2VecError, OutputExistsError


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def umask():
    """Run the test under a known umask; give the old one back."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _write(target: Path, text: str, **kw) -> None:
    with atomic_dir(target, **kw) as tmp:
        (tmp / "marker.json").write_text(text)


def test_an_unrelated_directory_is_refused_and_left_as_it_was(tmp_path):
    target = tmp_path / "photos"
    target.mkdir()
    (target / "holiday.jpg").write_text("precious")
    with pytest.raises(OutputExistsError, match="--overwrite") as e:
        _write(target, "new", marker="marker.json")
    assert isinstance(e.value, FileExistsError) and isinstance(e.value, Item2VecError)
    assert (target / "holiday.jpg").read_text() == "precious"
    assert not (target / "marker.json").exists()
    assert _leftovers(tmp_path) == []


def test_a_file_is_refused_too(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    with pytest.raises(OutputExistsError, match="a file"):
        _write(target, "new", marker="marker.json")
    assert target.read_text() == "keep me"


def test_an_output_of_the_same_kind_and_an_empty_directory_are_replaced(tmp_path):
    target = tmp_path / "model"
    _write(target, "v1", marker="marker.json")
    _write(target, "v2", marker="marker.json")
    assert (target / "marker.json").read_text() == "v2"
    empty = tmp_path / "empty"
    empty.mkdir()
    _write(empty, "v1", marker="marker.json")
    assert (empty / "marker.json").read_text() == "v1"
    assert _leftovers(tmp_path) == []


def test_overwrite_replaces_an_unrelated_directory(tmp_path):
    target = tmp_path / "old"
    target.mkdir()
    (target / "x.txt").write_text("x")
    _write(target, "new", marker="marker.json", overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["marker.json"]
    with output_policy(overwrite=True):  # the command line's --overwrite reaches a save() it does not call
        _write(target, "newer", marker="other.json")
    assert (target / "marker.json").read_text() == "newer"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("where", [".", ".."])
def test_the_current_directory_and_its_parents_are_never_replaced(tmp_path, monkeypatch, where):
    work = tmp_path / "work"
    work.mkdir()
    (work / "events.csv").write_text("session_id,item_id,timestamp\n")
    monkeypatch.chdir(work)
    with pytest.raises(OutputExistsError, match="current directory"):
        _write(Path(where), "new", overwrite=True)
    assert (work / "events.csv").exists()
    assert _leftovers(work) == [] and _leftovers(tmp_path) == []


def test_inputs_and_their_folders_are_never_replaced(tmp_path):
    data = tmp_path / "logs" / "data"
    data.mkdir(parents=True)
    (data / "stats.json").write_text("{}")
    with output_policy(overwrite=True, protect=[data]):
        for target in (data, data.parent, tmp_path):
            with pytest.raises(OutputExistsError, match="input"):
                _write(target, "new", overwrite=True, marker="stats.json")
        _write(data.parent / "model", "new", overwrite=True)  # beside the input is fine
    with pytest.raises(OutputExistsError, match="input"):
        check_output(data / ".." / "data", marker="stats.json", protect=[data])
    assert (data / "stats.json").read_text() == "{}"


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failing_body_leaves_no_temporary_directory_and_the_old_output(tmp_path, error):
    target = tmp_path / "model"
    _write(target, "v1", marker="marker.json")
    with pytest.raises(type(error)):
        with atomic_dir(target, marker="marker.json") as tmp:
            (tmp / "marker.json").write_text("half")
            raise error
    assert (target / "marker.json").read_text() == "v1"
    assert _leftovers(tmp_path) == []


def test_a_failing_rename_leaves_no_temporary_copy_and_puts_the_old_output_back(tmp_path, monkeypatch):
    target = tmp_path / "model"
    _write(target, "v1", marker="marker.json")
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # moving the new directory into place
            raise OSError("disk went away")
        return real(src, dst)

    monkeypatch.setattr(_io.os, "replace", flaky)
    with pytest.raises(OSError, match="disk went away"):
        _write(target, "v2", marker="marker.json")
    monkeypatch.setattr(_io.os, "replace", real)
    assert (target / "marker.json").read_text() == "v1"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("mask, dir_mode, file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_permissions_follow_the_umask_like_mkdir(tmp_path, mask, dir_mode, file_mode):
    old = os.umask(mask)
    try:
        _write(tmp_path / "model", "v1")
        with atomic_file(tmp_path / "report.json") as fh:
            fh.write("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == dir_mode
    assert stat.S_IMODE((tmp_path / "model" / "marker.json").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == file_mode


def test_atomic_file_replaces_a_file_but_not_a_directory(tmp_path, umask):
    report = tmp_path / "report.json"
    report.write_text("old")
    with atomic_file(report) as fh:
        fh.write("new")
    assert report.read_text() == "new"
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("k")
    with pytest.raises(OutputExistsError, match="is a directory"):
        with atomic_file(folder) as fh:
            fh.write("x")
    assert (folder / "keep.txt").read_text() == "k"
    with pytest.raises(ValueError):
        with atomic_file(tmp_path / "r2.json") as fh:
            raise ValueError("half")
    assert not (tmp_path / "r2.json").exists() and _leftovers(tmp_path) == []
