"""A request with many items is answered with one batched ``similar_items`` call, with the loop's answers."""

from __future__ import annotations

import io

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


def _markov(ids: list) -> object:
    """A next-item model over ``ids`` (a Markov chain on random sessions), servable: it has a vocab."""
    from item2vec.baselines import Markov
    from item2vec.data.vocab import ItemVocab

    rng = np.random.default_rng(3)
    sessions = [rng.integers(1, len(ids) + 1, size=int(rng.integers(2, 6))) for _ in range(300)]
    model = Markov().fit(sessions, n_items=len(ids))
    model.vocab = ItemVocab(ids)
    return model


def _recommend_loop(model: ServedModel, session, k: int, filter_items, exclude: bool) -> tuple[list, list]:
    """What one ``recommend`` call per session gives (the answer of the old per-row loop)."""
    known = [x for x in model._ids(session)
             if x in (model.next_model.vocab if model.next_model is not None else model.embeddings.vocab)]
    if not known:
        return [], []
    ids, scores = model.recommend(known, k, filter_items=filter_items, exclude_session=exclude)
    return ids.tolist(), np.round(scores, 6).tolist()


@pytest.mark.parametrize("kind", ["int", "str"])
@pytest.mark.parametrize("next_model", [False, True])
@pytest.mark.parametrize("exclude", [False, True])
def test_many_sessions_one_batched_call_same_answers_as_a_loop(kind, next_model, exclude, monkeypatch):
    catalogue = list(range(30)) if kind == "int" else [f"p{i}" for i in range(30)]
    rng = np.random.default_rng(11)
    model = ServedModel(ItemEmbeddings(catalogue, rng.standard_normal((30, 8)).astype(np.float32)),
                        _markov(catalogue) if next_model else None)
    c = catalogue
    unknown = "nope" if kind == "str" else 999
    # repeats, an unknown entry, a null, the other spelling, a session of one, a session of unknowns only
    sessions = [[c[1], c[2], c[2]], [c[5], unknown, None, c[7]], [c[0]], [unknown],
                [str(c[9]) if kind == "int" else 9, c[3]], [c[20], c[21], c[22], c[23], c[24], c[25]]]
    banned = [c[4], c[8]]
    expected = [_recommend_loop(model, s, 5, banned, exclude) for s in sessions]
    calls: list[int] = []
    if next_model:
        original = model.next_model.recommend_batch
        monkeypatch.setattr(model.next_model, "recommend_batch",
                            lambda prefixes, k: calls.append(len(prefixes)) or original(prefixes, k))
    else:
        original = model.embeddings.similar_items
        monkeypatch.setattr(model.embeddings, "similar_items",
                            lambda items, *a, **kw: calls.append(len(items)) or original(items, *a, **kw))
    out = model.predict_frame({"session": sessions}, k=5, filter_items=banned,
                              exclude_session=exclude).to_dict(orient="records")
    assert calls == [sum(1 for ids, _ in expected if ids)]  # the per-row loop made one call per session
    for row, (ids, scores), session in zip(out, expected, sessions, strict=True):
        assert row["query"] == "session" and row["unknown"] == (not ids)
        assert row["item_ids"] == ids
        np.testing.assert_allclose(row["scores"], scores, atol=2e-6)
        assert len(ids) == 5 or not ids
        assert not set(ids) & set(banned)
        if exclude:
            assert not set(ids) & set(model._ids(session))


def test_records_and_frame_are_the_same_answer():
    model = _served(list(range(20)))
    request = [{"item_id": 3}, {"item_id": "99"}, {"session": [1, 2, 99]}, {"item_id": [4, 5]}]
    records = model.predict_records(request, k=4)
    frame = model.predict_frame(request, k=4)
    assert isinstance(records, list) and all(isinstance(r, dict) for r in records)
    assert records == frame.to_dict(orient="records")
    assert [r["query"] for r in records] == ["item_id", "item_id", "session", "item_id", "item_id"]


@pytest.mark.parametrize("in_server", [False, True])
def test_the_pyfunc_hands_the_scoring_server_records_and_everyone_else_a_frame(in_server, monkeypatch):
    from mlflow.pyfunc.scoring_server import predictions_to_json

    from item2vec.registry import Item2VecPyfunc

    pyfunc = Item2VecPyfunc()
    pyfunc.served = _served(list(range(20)))
    request = pd.DataFrame({"item_id": [3, None, 99], "session": [None, [1, 2], None]})
    monkeypatch.delenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", raising=False)
    frame = pyfunc.predict(None, request, params={"k": 3})
    if in_server:  # what the scoring server sets in its process
        monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "true")
    out = pyfunc.predict(None, request, params={"k": 3})
    assert isinstance(out, list if in_server else pd.DataFrame)
    as_json = [io.StringIO(), io.StringIO()]
    predictions_to_json(frame, as_json[0])
    predictions_to_json(out, as_json[1])
    assert as_json[0].getvalue() == as_json[1].getvalue()  # the same answer on the wire
