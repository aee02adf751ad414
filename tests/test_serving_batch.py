"""A request with many items is answered with one batched ``similar_items`` call, with the loop's answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from item2vec.embeddings import ItemEmbeddings
from item2vec.serving import ServedModel


def _served(ids: list) -> ServedModel:
    rng = np.random.default_rng(7)
    return ServedModel(ItemEmbeddings(ids, rng.standard_normal((len(ids), 16)).astype(np.float32)))


def _loop_answer(model: ServedModel, item, k: int, filter_items) -> tuple[list, list]:
    """What one ``similar_items`` call per id gives (the answer of the old per-row loop)."""
    try:
        ids, scores = model.similar_items(item, k, filter_items=filter_items)
    except KeyError:
        return [], []
    return ids.tolist(), np.round(scores, 6).tolist()


def _count_calls(model: ServedModel, monkeypatch) -> list[int]:
    calls: list[int] = []
    original = model.embeddings.similar_items

    def counting(items, *args, **kwargs):
        calls.append(len(items) if isinstance(items, list) else 1)
        return original(items, *args, **kwargs)

    monkeypatch.setattr(model.embeddings, "similar_items", counting)
    return calls


@pytest.mark.parametrize("kind", ["int", "str"])
@pytest.mark.parametrize("filter_items", [None, [3, "5", 8]])
def test_many_items_one_call_same_answers_as_a_loop(kind, filter_items, monkeypatch):
    catalogue = list(range(40)) if kind == "int" else [f"p{i}" for i in range(40)]
    model = _served(catalogue)
    # repeats, the other spelling, an unknown id and a float id among the queries
    queries = [catalogue[i] for i in (1, 2, 2, 39, 0, 17)] + ["7" if kind == "int" else 7, "nope", 12.0]
    if filter_items is not None and kind == "str":
        filter_items = [f"p{x}" for x in filter_items]
    expected = [_loop_answer(model, q, 10, filter_items) for q in queries]
    calls = _count_calls(model, monkeypatch)
    out = model.predict_frame(pd.DataFrame({"item_id": pd.Series(queries, dtype=object)}), k=10,
                              filter_items=filter_items)
    assert len(calls) == 1  # the per-row loop made one call per known id
    assert calls[0] == sum(1 for ids, _ in expected if ids)
    assert len(out) == len(queries)
    for row, (ids, scores) in zip(out.itertuples(), expected, strict=True):
        assert row.unknown == (not ids)
        assert row.item_ids == ids
        np.testing.assert_allclose(row.scores, scores, atol=2e-6)


def test_a_list_of_ids_in_one_cell_and_a_filter_that_leaves_fewer_than_k(monkeypatch):
    catalogue = list(range(6))
    model = _served(catalogue)
    banned = [0, 1, 2]  # of 5 neighbours, at most 3 are left: short rows, no padding
    expected = [_loop_answer(model, q, 5, banned) for q in (4, 5, 3)]
    calls = _count_calls(model, monkeypatch)
    out = model.predict_frame({"item_id": [[4, 5, 3]]}, k=5, filter_items=banned)
    assert len(calls) == 1
    assert out["item_ids"].tolist() == [ids for ids, _ in expected]
    assert all(len(ids) == 2 for ids, _ in expected)  # 6 items, the query and 3 banned out
    for got, (_, scores) in zip(out["scores"], expected, strict=True):
        np.testing.assert_allclose(got, scores, atol=2e-6)


def test_answer_columns_keep_their_dtypes():
    model = _served(list(range(20)))
    out = model.predict_frame([{"item_id": 3}, {"item_id": 99}, {"session": [1, 2, 99]}], k=4)
    ref = pd.DataFrame(
        [{"query": "item_id", "item_ids": [], "scores": [], "unknown": True, "n_ignored": 0}],
        columns=["query", "item_ids", "scores", "unknown", "n_ignored"],
    )
    assert out.dtypes.to_dict() == ref.dtypes.to_dict()
    assert out["query"].tolist() == ["item_id", "item_id", "session"]
    assert out["unknown"].tolist() == [False, True, False]
    assert out["n_ignored"].tolist() == [0, 0, 1]
