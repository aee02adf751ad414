"""The retraining job with ``engine = "spark"``: sessions and item2vec on the cluster, the same gating and registry."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from item2vec.cli import main
from item2vec.data import make_sessions
from item2vec.retrain import RetrainConfig, run_retrain

pytestmark = pytest.mark.spark

mlflow = pytest.importorskip("mlflow")

BASE = {"model_name": "spark-retrain", "experiment": "spark-retrain", "format": "csv", "baselines": ["pop"],
        "tsne": False, "use_bilstm": False, "prepare": {"test_days": 2.0, "valid_days": 2.0},
        "item2vec": {"vector_size": 16, "epochs": 3, "window": 3, "negative": 5}}


def _daily_log(folder, n_sessions=300):
    """A tiny log with string item ids, one CSV per day (``YYYY-MM-DD.csv``)."""
    events, _ = make_sessions(n_sessions=n_sessions, n_clusters=4, items_per_cluster=10, days=10, random_state=3)
    folder.mkdir()
    ev = events.with_columns(pl.col("timestamp").dt.date().alias("_day"))
    for day in ev["_day"].unique().sort().to_list():
        ev.filter(pl.col("_day") == day).drop("_day").write_csv(folder / f"{day}.csv")
    return folder


def test_retrain_on_spark_registers_a_champion_trained_cold_with_the_polars_sessions(spark, spark_cluster, tmp_path):
    from item2vec.registry import get_version_by_alias, load

    folder = _daily_log(tmp_path / "by-day")
    store = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = RetrainConfig.from_dict({**BASE, "engine": "spark", "spark_master": spark_cluster, "warm_start": True})
    report = run_retrain(folder, cfg, tracking_uri=store, report_path=tmp_path / "report.json")
    assert report.status == "ok" and report.promoted is True and report.model_version == 1
    # the run went to the cluster, trained cold, and says both
    assert report.engine["name"] == "spark" and report.engine["spark_master"] == spark_cluster
    assert report.warm_started is False and "trained cold" in report.engine["warm_start"]
    assert report.engine["ignored_item2vec_options"] == ["negative"]
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["engine"] == report.engine and saved["config"]["engine"] == "spark"
    # the same gating and registry as the polars job
    assert set(report.metrics) == {"pop", "item2vec", "challenger"}
    assert str(get_version_by_alias("spark-retrain", "champion", tracking_uri=store).version) == "1"
    served = load("models:/spark-retrain@champion", tracking_uri=store)
    assert served.embeddings.dim == 16 and served.embeddings.metadata["engine"] == "spark"
    item = served.embeddings.ids[0]
    ids, _ = served.embeddings.use_index("exact").similar_items([item], k=3)
    assert len(ids[0]) == 3 and item not in ids[0].tolist()
    # the sessions, split and vocabulary the polars engine makes of the same files
    polars_cfg = RetrainConfig.from_dict({**BASE, "model_name": "polars-retrain", "warm_start": False})
    want = run_retrain(folder, polars_cfg, tracking_uri=store)
    assert want.engine == {"name": "polars"}
    assert report.dataset == want.dataset
    for m in ("hr@20", "mrr@20", "ndcg@20", "n_predictions"):
        assert report.metrics["pop"][m] == want.metrics["pop"][m]
    assert np.isfinite(report.metrics["item2vec"]["mrr@20"])


def test_cli_engine_options_reach_the_config_and_bad_ones_exit_2(monkeypatch, tmp_path, capsys):
    import item2vec.retrain as retrain

    seen = {}

    def fake(events, cfg, **kw):
        seen["cfg"] = cfg
        raise retrain.RetrainError("read", RuntimeError("stop here"))

    monkeypatch.setattr(retrain, "run_retrain", fake)
    (tmp_path / "c.json").write_text(json.dumps({"engine": "spark", "spark_master": "local[1]"}))
    assert main(["retrain", "--events", str(tmp_path), "--config", str(tmp_path / "c.json"), "--quiet"]) == 1
    assert (seen["cfg"].engine, seen["cfg"].spark_master) == ("spark", "local[1]")  # the config decides
    assert main(["retrain", "--events", str(tmp_path), "--engine", "spark", "--spark-master", "local[2]",
                 "--quiet"]) == 1
    assert (seen["cfg"].engine, seen["cfg"].spark_master) == ("spark", "local[2]")
    assert main(["retrain", "--events", str(tmp_path), "--quiet"]) == 1
    assert (seen["cfg"].engine, seen["cfg"].spark_master) == ("polars", "local[*]")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["retrain", "--events", str(tmp_path), "--engine", "dask"])
    assert e.value.code == 2 and "invalid choice: 'dask'" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps({"engine": "dask"}))
    assert main(["retrain", "--events", str(tmp_path), "--config", str(tmp_path / "bad.json")]) == 2
    assert "engine must be 'polars' or 'spark', got 'dask'" in capsys.readouterr().err
