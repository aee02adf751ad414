"""Saved model directories carry checksums and are checked on load; a damaged file is named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from item2vec._io import CHECKSUMS, verify_checksums, write_checksums
from item2vec.embeddings import ItemEmbeddings
from item2vec.exceptions import CorruptModelError
from item2vec.serving import ServedModel


@pytest.fixture(params=["int", "str"])
def emb(request) -> ItemEmbeddings:
    rng = np.random.default_rng(0)
    ids = [101, 7, 13931, 42, 5, 999] if request.param == "int" else ["a", "b", "71053", "d", "e", "f"]
    return ItemEmbeddings(ids, rng.normal(size=(6, 4)).astype(np.float32), metadata={"source": "test"})


def _flip_bit(path: Path, offset: int = -3) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_every_saved_file_is_listed_and_checked(emb, tmp_path):
    path = emb.save(tmp_path / "emb")
    listed = json.loads((path / CHECKSUMS).read_text())["files"]
    assert set(listed) == {"vectors.npy", "ids.json", "meta.json"}
    back = ItemEmbeddings.load(path)
    assert back.vocab == emb.vocab and np.array_equal(back.vectors, emb.vectors)


def test_a_shuffled_ids_file_is_refused_by_name(emb, tmp_path):
    path = emb.save(tmp_path / "emb")
    ids = json.loads((path / "ids.json").read_text())
    (path / "ids.json").write_text(json.dumps(ids[::-1]))  # same ids, same count: only the checksum can tell
    with pytest.raises(CorruptModelError, match=r"ids\.json: sha256 does not match"):
        ItemEmbeddings.load(path)


def test_flipped_bits_are_refused_by_name(emb, tmp_path):
    path = emb.save(tmp_path / "emb")
    _flip_bit(path / "vectors.npy")
    with pytest.raises(CorruptModelError, match=r"vectors\.npy: sha256"):
        ItemEmbeddings.load(path)


@pytest.mark.parametrize("damage, culprit", [
    ("empty vectors", "vectors.npy"),
    ("truncated vectors", "vectors.npy"),
    ("wrong n_items", "ids.json"),
    ("one id too few", "ids.json"),
    ("duplicate id", "ids.json"),
    ("wrong dim", "vectors.npy"),
])
def test_files_that_disagree_are_refused_by_name_even_with_fresh_checksums(emb, tmp_path, damage, culprit):
    path = emb.save(tmp_path / "emb")
    meta = json.loads((path / "meta.json").read_text())
    ids = json.loads((path / "ids.json").read_text())
    if damage == "empty vectors":
        np.save(path / "vectors.npy", np.empty((0, emb.dim), np.float32))
    elif damage == "truncated vectors":
        (path / "vectors.npy").write_bytes((path / "vectors.npy").read_bytes()[:20])
    elif damage == "wrong n_items":
        meta["n_items"] += 1
    elif damage == "one id too few":
        ids = ids[:-1]
    elif damage == "duplicate id":
        ids[1] = ids[0]
    elif damage == "wrong dim":
        meta["dim"] += 1
    (path / "meta.json").write_text(json.dumps(meta))
    (path / "ids.json").write_text(json.dumps(ids))
    write_checksums(path)  # as if the files had been written wrong, not changed afterwards
    with pytest.raises(CorruptModelError, match=culprit):
        ItemEmbeddings.load(path)


def test_missing_extra_and_unreadable_checksum_files(emb, tmp_path):
    path = emb.save(tmp_path / "emb")
    (path / "stray.bin").write_bytes(b"x")
    with pytest.raises(CorruptModelError, match=r"stray\.bin: not listed"):
        ItemEmbeddings.load(path)
    (path / "stray.bin").unlink()
    (path / CHECKSUMS).write_text("not json")
    with pytest.raises(CorruptModelError, match=CHECKSUMS):
        verify_checksums(path)
    (path / CHECKSUMS).unlink()
    with pytest.raises(CorruptModelError, match=rf"{CHECKSUMS}: missing"):
        ItemEmbeddings.load(path)


def test_served_model_checks_its_nested_files(emb, tmp_path):
    path = ServedModel(emb, info={"run": 1}).save(tmp_path / "served")
    assert ServedModel.load(path).id_type == ("int" if emb.ids.dtype.kind in "iu" else "str")
    _flip_bit(path / "embeddings" / "ids.json", offset=2)
    with pytest.raises(CorruptModelError, match=r"embeddings/ids\.json"):
        ServedModel.load(path)


def test_next_model_weights_are_plain_arrays_and_checked(synthetic_data, tmp_path):
    from item2vec.nextitem import NextItemRecommender, load_next_model

    data = synthetic_data
    m = NextItemRecommender(vocab=data.vocab, epochs=1, hidden_size=8, embedding_dim=8, num_threads=1,
                            show_progress=False).fit(data.train, n_items=data.n_items)
    path = m.save(tmp_path / "next")
    assert {p.name for p in path.iterdir()} == {"checkpoint.json", "weights.npz", "meta.json", CHECKSUMS}
    with np.load(path / "weights.npz", allow_pickle=False) as z:  # no object arrays: loads without pickle
        assert "popularity" in z.files
    prefix = data.test[0][:3]
    np.testing.assert_array_equal(load_next_model(path).score_batch([prefix]), m.score_batch([prefix]))
    _flip_bit(path / "weights.npz", offset=200)
    with pytest.raises(CorruptModelError, match=r"weights\.npz: sha256"):
        load_next_model(path)


def test_format_1_directories_written_before_checksums_still_load(synthetic_data, tmp_path):
    """A champion registered by an older item2vec must stay readable, or retraining could never replace it."""
    import torch

    from item2vec.nextitem import NextItemRecommender

    data = synthetic_data
    emb = ItemEmbeddings(data.vocab.ids, np.random.default_rng(0).normal(size=(data.n_items, 8)).astype(np.float32))
    nxt = NextItemRecommender(vocab=data.vocab, epochs=1, hidden_size=8, embedding_dim=8, num_threads=1,
                              show_progress=False).fit(data.train, n_items=data.n_items)
    root = tmp_path / "served"
    # the layout item2vec wrote before format 2, file by file
    (root / "embeddings").mkdir(parents=True)
    np.save(root / "embeddings" / "vectors.npy", emb.vectors)
    (root / "embeddings" / "ids.json").write_text(json.dumps(emb.vocab.to_list()))
    (root / "embeddings" / "meta.json").write_text(json.dumps(
        {"format_version": 1, "kind": "item2vec.ItemEmbeddings", "n_items": len(emb), "dim": emb.dim,
         "index_kind": "auto", "metadata": {}}))
    new = nxt.save(tmp_path / "new")
    meta = json.loads((new / "meta.json").read_text())
    with np.load(new / "weights.npz") as z:
        state = {k.removeprefix("state_dict/"): torch.from_numpy(z[k]) for k in z.files if k != "popularity"}
        pop = torch.from_numpy(z["popularity"])
    (root / "next_model").mkdir()
    torch.save({**meta, "format_version": 1, "vocab": data.vocab.to_list(), "state_dict": state, "popularity": pop},
               root / "next_model" / "checkpoint.pt")
    (root / "served.json").write_text(json.dumps(
        {"format_version": 1, "kind": "item2vec.ServedModel", "next_model": True, "info": {"run_id": "old"}}))

    back = ServedModel.load(root)
    assert back.info == {"run_id": "old"} and back.embeddings.vocab == emb.vocab
    prefix = data.test[0][:3]
    np.testing.assert_array_equal(back.next_model.score_batch([prefix]), nxt.score_batch([prefix]))
    again = ServedModel.load(back.save(tmp_path / "resaved"))  # saving writes format 2, with checksums
    assert (tmp_path / "resaved" / "next_model" / "weights.npz").exists()
    np.testing.assert_array_equal(again.next_model.score_batch([prefix]), nxt.score_batch([prefix]))
