"""Every saved directory describes itself through one pair of helpers: ``write_meta`` / ``read_meta``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from item2vec._io import read_meta, write_meta
from item2vec.baselines import Markov, load_baseline
from item2vec.data.sessions import SessionData
from item2vec.embeddings import ItemEmbeddings
from item2vec.exceptions import FormatVersionError
from item2vec.nextitem import NextItemRecommender
from item2vec.serving import ServedModel


def _emb(ids) -> ItemEmbeddings:
    return ItemEmbeddings(ids, np.random.default_rng(0).normal(size=(len(ids), 4)).astype(np.float32))


def _markov(data) -> Markov:
    m = Markov().fit(data.train, n_items=data.n_items)
    m.vocab = data.vocab
    return m


# (name, save into a directory, the loader, the file that describes the directory, kind, versions, what)
def _savers(data):
    nxt = NextItemRecommender(vocab=data.vocab, epochs=1, hidden_size=8, embedding_dim=8, num_threads=1,
                              show_progress=False)
    return {
        "embeddings-int": (lambda p: _emb([101, 7, 13931, 42, 5]).save(p), ItemEmbeddings.load, "meta.json",
                           "item2vec.ItemEmbeddings", (1, 2), "embeddings"),
        "embeddings-str": (lambda p: _emb(["a", "71053", "b", "a2", "z"]).save(p), ItemEmbeddings.load, "meta.json",
                           "item2vec.ItemEmbeddings", (1, 2), "embeddings"),
        "prepared": (data.save, SessionData.load, "stats.json", None, (1,), "prepared data"),
        "checkpoint": (lambda p: nxt.fit(data.train, n_items=data.n_items).save(p), NextItemRecommender.load,
                       "checkpoint.json", "item2vec.NextItemRecommender", (2,), "checkpoint"),
        "served": (lambda p: ServedModel(_emb(["x", "y", "z"])).save(p), ServedModel.load, "served.json",
                   "item2vec.ServedModel", (1, 2), "served model"),
        "baseline": (lambda p: _markov(data).save(p),
                     load_baseline, "meta.json", "item2vec.Baseline", (1,), "saved baseline"),
    }


NAMES = ["embeddings-int", "embeddings-str", "prepared", "checkpoint", "served", "baseline"]


@pytest.fixture(scope="module")
def saved(synthetic_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    out = {}
    for name, (save, load, file, kind, versions, what) in _savers(synthetic_data).items():
        save(root / name)
        out[name] = (root / name, load, file, kind, versions, what)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_each_directory_is_described_by_write_meta(saved, name, tmp_path):
    path, _, file, kind, versions, _ = saved[name]
    meta = read_meta(path / file, kind, versions)
    assert meta["format_version"] == max(versions) and meta.get("kind") == kind
    # the file is exactly what write_meta writes for its fields: same keys, same order, same layout
    fields = {k: v for k, v in meta.items() if k not in ("format_version", "kind")}
    indent = None if file == "checkpoint.json" else 2
    write_meta(tmp_path / file, kind, meta["format_version"], indent=indent, **fields)
    assert (tmp_path / file).read_bytes() == (path / file).read_bytes()
    assert list(meta)[: 2 if kind else 1] == ["format_version", "kind"][: 2 if kind else 1]


def _tamper(src: Path, dst: Path, file: str, **change) -> Path:
    import shutil

    shutil.copytree(src, dst)
    meta = json.loads((dst / file).read_text())
    (dst / file).write_text(json.dumps({**meta, **change}))
    return dst


@pytest.mark.parametrize("name", NAMES)
def test_another_version_is_refused_naming_the_file_kind_and_versions(saved, name, tmp_path):
    path, load, file, kind, versions, what = saved[name]
    bad = _tamper(path, tmp_path / "bad", file, format_version=99)
    expected = " and ".join(map(str, versions))
    kinds = (f"{kind!r} ", f"{kind!r} ") if kind else ("", "")
    message = (f"{bad / file}: {what} {kinds[0]}version 99; "
               f"this item2vec reads {what} {kinds[1]}version{'s' if len(versions) > 1 else ''} {expected}")
    with pytest.raises(FormatVersionError, match="^" + re.escape(message) + "$"):
        load(bad)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "prepared"])
def test_another_kind_is_refused_naming_the_file_and_both_kinds(saved, name, tmp_path):
    path, load, file, kind, versions, what = saved[name]
    bad = _tamper(path, tmp_path / "bad", file, kind="item2vec.Something")
    with pytest.raises(FormatVersionError,
                       match=re.escape(f"{bad / file}: {what} 'item2vec.Something' version {max(versions)}; "
                                       f"this item2vec reads {what} {kind!r} version")):
        load(bad)


def test_read_meta_refuses_a_file_that_is_not_an_object(tmp_path):
    from item2vec.exceptions import CorruptModelError

    (tmp_path / "meta.json").write_text("[1, 2]")
    with pytest.raises(CorruptModelError, match=re.escape(str(tmp_path / "meta.json"))):
        read_meta(tmp_path / "meta.json", "item2vec.ItemEmbeddings", (2,))
