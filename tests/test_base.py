"""The one policy for the prefix's last item: a fact of the prepared data that every model reads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import polars as pl
import pytest

import item2vec.base as base
from item2vec.cli import main
from item2vec.data import PrepareConfig, SessionData, make_sessions, prepare, read_events
from item2vec.evaluation import evaluate, make_prefixes, run_evaluation
from item2vec.exceptions import DataError
from item2vec.recommenders import MODEL_NAMES, make_recommender

CFG = dict(test_fraction=0.2, valid_fraction=0.1, min_item_support=1)


def _doubled(events: pl.DataFrame, p: float = 0.5, seed: int = 0) -> pl.DataFrame:
    """Every event clicked twice in a row with probability ``p``."""
    rng = np.random.default_rng(seed)
    return events.select(pl.all().gather(np.repeat(np.arange(events.height), 1 + (rng.random(events.height) < p))))


@pytest.fixture(scope="module")
def both():
    """One log with repeated clicks (string ids), prepared with repeats kept and dropped."""
    events, _ = make_sessions(n_sessions=300, n_clusters=3, items_per_cluster=10, p_follow=0.8, days=10,
                              random_state=2)
    events = _doubled(events)
    return prepare(events, PrepareConfig(drop_repeats=False, **CFG)), prepare(events, PrepareConfig(**CFG))


def _last_item_scores(model, data: SessionData) -> np.ndarray:
    """The score each test prefix's last item gets in the model's full ranking."""
    prefixes = make_prefixes(data.test).prefixes[:60]
    ids, scores = model.recommend_batch(prefixes, k=data.n_items + 1)
    return np.array([scores[i][ids[i] == p[-1]][0] for i, p in enumerate(prefixes)])


def test_the_fact_is_in_the_prepared_data_and_survives_save_load(both, tmp_path):
    kept, dropped = both
    assert not kept.repeats_dropped and dropped.repeats_dropped
    assert base.has_repeats(kept.train) and not base.has_repeats(dropped.train)
    assert not SessionData.load(kept.save(tmp_path / "kept")).repeats_dropped
    assert SessionData.load(dropped.save(tmp_path / "dropped")).repeats_dropped
    # a prepared-data dir whose stats do not say (written by hand, or before the config was kept): the default
    stats = json.loads((tmp_path / "kept" / "stats.json").read_text())
    del stats["stats"]["config"]
    (tmp_path / "kept" / "stats.json").write_text(json.dumps(stats))
    assert SessionData.load(tmp_path / "kept").repeats_dropped


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_may_recommend_the_last_item_only_where_repeats_were_kept(name, both):
    kept, dropped = both
    for data in (kept, dropped):
        # told nothing, a model reads the fact off the training sessions; told, it takes it
        for fit_kw in ({}, {"repeats_dropped": data.repeats_dropped}):
            model = make_recommender(name).fit(data.train, n_items=data.n_items, **fit_kw)
            assert model.repeats_dropped_ is data.repeats_dropped
            last = _last_item_scores(model, data)
            assert np.isneginf(last).all() if data.repeats_dropped else np.isfinite(last).all()
    # the keyword wins over what the sessions show
    forced = make_recommender(name).fit(kept.train, n_items=kept.n_items, repeats_dropped=True)
    assert np.isneginf(_last_item_scores(forced, kept)).all()


@pytest.mark.parametrize("name", ["markov", "sknn", "item2vec", "implicit"])
def test_models_with_evidence_rank_a_likely_repeat_high(name, both):
    # half the clicks are repeated at once: the last item is among the two likeliest next items
    kept, _ = both
    model = make_recommender(name).fit(kept.train, n_items=kept.n_items)
    prefixes = [s[:1] for s in kept.test]
    ids, _ = model.recommend_batch(prefixes, k=2)
    assert (ids == np.array([p[-1] for p in prefixes])[:, None]).any(axis=1).mean() > 0.9


def test_repeats_dropped_must_be_a_bool(both):
    kept, _ = both
    with pytest.raises(TypeError, match="repeats_dropped must be True, False or None, got 'no'"):
        make_recommender("pop").fit(kept.train, n_items=kept.n_items, repeats_dropped="no")


def test_mask_last_skips_padding_and_unknown_items():
    scores = np.zeros((4, 6), dtype=np.float32)
    base.mask_last(scores, [np.array([2, 3]), np.array([4, 0]), np.array([1, 9]), np.array([], dtype=np.int64)])
    assert np.isneginf(scores[0, 3]) and np.isneginf(scores[1, 4]) and np.isneginf(scores[2, 1])
    assert np.isneginf(scores).sum() == 3


def test_keep_repeats_from_a_pandas_frame_through_the_cli(tmp_path, capsys):
    # integer ids in a CSV written from pandas; prepare --keep-repeats records the fact, evaluate reads it
    events, _ = make_sessions(n_sessions=200, n_clusters=3, items_per_cluster=8, p_follow=0.9, days=10,
                              random_state=4)
    events = _doubled(events)
    frame = events.to_pandas()
    frame["item_id"] = pd.factorize(frame["item_id"])[0] + 100
    frame.to_csv(tmp_path / "log.csv", index=False)
    assert read_events(tmp_path / "log.csv")["item_id"].dtype.is_integer()
    for flag, out in (([], "dropped"), (["--keep-repeats"], "kept")):
        assert main(["prepare", "--events", str(tmp_path / "log.csv"), "--out", str(tmp_path / out), "--test-fraction", "0.2",
                     "--valid-fraction", "0.1", "--min-item-support", "1", *flag]) == 0
    assert SessionData.load(tmp_path / "dropped").repeats_dropped
    kept = SessionData.load(tmp_path / "kept")
    assert not kept.repeats_dropped
    res = run_evaluation(kept, ["markov"], k=5, show_progress=False)["models"]["markov"]
    masked = make_recommender("markov").fit(kept.train, n_items=kept.n_items, repeats_dropped=True)
    assert res["hr@5"] > evaluate(masked, kept.test, k=5)["hr@5"]


def test_evaluate_refuses_a_bilstm_trained_on_the_other_preparation(both, tmp_path, capsys):
    kept, dropped = both
    kept_dir, dropped_dir = kept.save(tmp_path / "kept"), dropped.save(tmp_path / "dropped")
    tiny = ["--init", "random", "--hidden-size", "8", "--epochs", "1", "--quiet"]
    assert main(["train-next", "--data", str(dropped_dir), "--out", str(tmp_path / "b"), *tiny]) == 0
    with pytest.raises(DataError, match="repeats dropped, but this data has them kept"):
        run_evaluation(kept, ["bilstm"], next_model=str(tmp_path / "b"), show_progress=False)
    rc = main(["evaluate", "--data", str(kept_dir), "--models", "bilstm", "--next-model", str(tmp_path / "b"),
               "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "repeats dropped" in err and "\n" not in err
    assert run_evaluation(dropped, ["bilstm"], next_model=str(tmp_path / "b"), show_progress=False)["models"]


@pytest.mark.parametrize(
    "sessions, expected",
    [
        ([], False),
        ([[1, 1]], True),
        ([[1], [1]], False),  # the same item ending one session and starting the next is no repeat
        ([[1, 2], [2, 3]], False),
        ([[], [3], [3, 4, 4]], True),
        ([[5], [], [5]], False),
    ],
)
def test_has_repeats_looks_inside_sessions_only(sessions, expected):
    assert base.has_repeats([np.asarray(s, dtype=np.int64) for s in sessions]) is expected
