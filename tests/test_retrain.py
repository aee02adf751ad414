"""The batch retraining job: gating, aliases, failures that leave the champion alone, reading windows, configs."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from item2vec.cli import main
from item2vec.data.readers import daily_files
from item2vec.embeddings import ItemEmbeddings
from item2vec.exceptions import DataError, EmptyDataError
from item2vec.retrain import (
    RetrainConfig,
    RetrainError,
    RetrainReport,
    format_report,
    load_config,
    neighbour_stability,
    read_window,
    run_retrain,
)

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from item2vec.registry import get_version_by_alias, registry_history  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "pipelines" / "configs"
NAME = "retrain-test"

# a model that learned almost nothing: one epoch at a vanishing learning rate, no BiLSTM, served as it is
WEAK = {"model_name": NAME, "experiment": "retrain-test", "format": "csv", "baselines": ["pop"], "tsne": False,
        "warm_start": False, "use_bilstm": False, "serve": ["item2vec"],
        "item2vec": {"vector_size": 16, "epochs": 1, "alpha": 1e-6, "min_alpha": 1e-7}}
GOOD = {**WEAK, "warm_start": True, "use_bilstm": True, "serve": "auto", "item2vec": {"vector_size": 16, "epochs": 8},
        "bilstm": {"epochs": 2, "hidden_size": 16, "patience": 5, "num_threads": 1}}


def write_daily(events: pl.DataFrame, folder: Path) -> list[str]:
    """One CSV per day (``YYYY-MM-DD.csv``); returns the days."""
    folder.mkdir(parents=True, exist_ok=True)
    ev = events.with_columns(pl.col("timestamp").dt.date().alias("_day"))
    days = sorted(ev["_day"].unique().to_list())
    for d in days:
        ev.filter(pl.col("_day") == d).drop("_day").write_csv(folder / f"{d}.csv")
    return [str(d) for d in days]


@pytest.fixture(scope="module")
def daily(tmp_path_factory, synthetic) -> tuple[Path, list[str]]:
    events, _ = synthetic
    folder = tmp_path_factory.mktemp("events") / "by-day"
    return folder, write_daily(events, folder)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture(scope="module")
def history(daily, store, tmp_path_factory) -> dict[str, dict]:
    """weak champion (CLI) → a better challenger is promoted → a deliberately worse one is not."""
    folder, days = daily
    tmp = tmp_path_factory.mktemp("reports")
    (tmp / "weak.json").write_text(json.dumps(WEAK))
    assert main(["retrain", "--events", str(folder), "--config", str(tmp / "weak.json"), "--end", days[19],
                 "--tracking-uri", store, "--report", str(tmp / "r1.json"), "--quiet"]) == 0
    first = json.loads((tmp / "r1.json").read_text())
    good = run_retrain(folder, RetrainConfig.from_dict(GOOD), end=days[20], tracking_uri=store)
    worse = run_retrain(folder, RetrainConfig.from_dict(WEAK), end=days[21], tracking_uri=store,
                        report_path=tmp / "r3.json")
    return {"first": first, "good": good, "worse": worse, "worse_file": json.loads((tmp / "r3.json").read_text())}


def _champion(store: str) -> str | None:
    v = get_version_by_alias(NAME, "champion", tracking_uri=store)
    return None if v is None else str(v.version)


# ---------------------------------------------------------------------------
# gating
# ---------------------------------------------------------------------------
def test_first_run_becomes_champion(history, store):
    r = history["first"]
    assert r["status"] == "ok" and r["model_version"] == 1 and r["promoted"] is True
    assert r["reason"] == "no champion yet"
    assert r["run_id"] and set(r["metrics"]) == {"pop", "item2vec", "challenger"}


def test_a_better_challenger_is_promoted(history, store):
    r = history["good"]
    g = r.gating
    assert r.promoted is True and r.model_version == 2
    assert g["champion_version"] == 1 and g["challenger"] > g["champion"]
    assert "beats the champion (v1)" in r.reason
    assert r.warm_started is True
    assert r.served_model in {"bilstm", "item2vec", "pop", "blend"}
    assert r.metrics["challenger"]["mrr@20"] == pytest.approx(r.metrics[r.served_model]["mrr@20"])
    # both scored on the same predictions
    assert r.metrics["champion"]["n_predictions"] == r.metrics["challenger"]["n_predictions"]
    assert 0.0 <= r.stability["overlap@10"] <= 1.0


def test_a_deliberately_worse_challenger_is_never_promoted(history, store):
    r = history["worse"]
    g = r.gating
    assert g["champion_version"] == 2
    assert g["challenger"] < g["champion"]
    assert r.promoted is False and "does not beat the champion (v2)" in r.reason
    assert _champion(store) == "2"
    assert str(get_version_by_alias(NAME, "challenger", tracking_uri=store).version) == "3"
    assert history["worse_file"]["promoted"] is False and history["worse_file"]["model_version"] == 3


def test_registry_history_and_version_tags(history, store):
    hist = registry_history(NAME, tracking_uri=store)
    assert [v["version"] for v in hist] == [1, 2, 3]
    assert [v["tags"]["promoted"] for v in hist] == ["true", "true", "false"]
    assert [v["aliases"] for v in hist] == [[], ["champion"], ["challenger"]]
    assert hist[1]["tags"]["served_model"] == history["good"].served_model
    assert hist[2]["tags"]["served_model"] == "item2vec" and hist[2]["tags"]["next_model"] == "item2vec-last"
    assert hist[2]["tags"]["previous_champion"] == "2"


def test_the_run_holds_params_epoch_metrics_and_the_report(history, store):
    client = MlflowClient(store)
    run = client.get_run(history["good"].run_id)
    assert run.data.params["config.item2vec.epochs"] == "8"
    assert run.data.tags["promoted"] == "true"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "bilstm.loss")] == [1, 2]
    assert len(client.get_metric_history(run.info.run_id, "item2vec.loss")) == 8
    for name in ("pop", "item2vec", "bilstm", "challenger", "champion"):
        assert f"test.{name}.mrr_at_20" in run.data.metrics
    arts = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"retrain_report.json", "evaluation.json", "dataset_stats.json", "item2vec"} <= arts


# ---------------------------------------------------------------------------
# failures leave the champion alone
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("step", ["bilstm", "register", "promote"])
def test_a_crash_mid_run_leaves_the_champion_and_its_alias(history, daily, store, tmp_path, step):
    folder, days = daily
    before = registry_history(NAME, tracking_uri=store)
    champ = _champion(store)

    def crash(s: str) -> None:
        if s == step:
            raise RuntimeError(f"injected crash in {s}")

    with pytest.raises(RetrainError, match=f"step '{step}'") as err:
        run_retrain(folder, RetrainConfig.from_dict(GOOD), end=days[22], tracking_uri=store,
                    report_path=tmp_path / "r.json", on_step=crash)
    assert err.value.step == step
    assert _champion(store) == champ == "2"
    after = registry_history(NAME, tracking_uri=store)
    assert [v["aliases"] for v in after[: len(before)]] == [v["aliases"] for v in before]
    assert all("champion" not in v["aliases"] for v in after[len(before):])
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["status"] == "failed" and report["failed_step"] == step and report["promoted"] is False
    assert "injected crash" in report["error"]
    run = MlflowClient(store).get_run(report["run_id"])
    assert run.info.status == "FAILED" and run.data.tags["failed_step"] == step


def test_an_empty_window_fails_at_read_and_the_cli_says_so(history, daily, store, tmp_path, capsys):
    folder, _ = daily
    champ = _champion(store)
    (tmp_path / "weak.json").write_text(json.dumps(WEAK))
    rc = main(["retrain", "--events", str(folder), "--config", str(tmp_path / "weak.json"), "--start", "2031-01-01",
               "--tracking-uri", store, "--quiet"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "step 'read'" in err and "champion is unchanged" in err
    assert _champion(store) == champ


# ---------------------------------------------------------------------------
# pieces
# ---------------------------------------------------------------------------
def test_read_window_picks_daily_files_and_filters_one_file(daily, synthetic, tmp_path):
    folder, days = daily
    ev = read_window(folder, "csv", start=days[3], end=days[5])
    got = sorted({str(d) for d in ev["timestamp"].dt.date().unique().to_list()})
    assert got == days[3:6]
    assert ev["_order"].to_list() == list(range(ev.height))
    events, _ = synthetic
    events.write_csv(tmp_path / "all.csv")
    one = read_window(tmp_path / "all.csv", "csv", end=days[1])
    assert one["timestamp"].max().date() <= dt.date.fromisoformat(days[1])
    with pytest.raises(EmptyDataError):
        read_window(folder, "csv", start="2030-01-01")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        read_window(folder, "csv", start="01/02/2024")


def test_daily_files_is_the_one_choice_of_files_for_the_readers_and_the_window(tmp_path):
    folder = tmp_path / "by-day"
    folder.mkdir()
    for name in ("2024-01-01.csv", "2024-01-02.csv.gz", "2024-01-03_part.csv", "2024-01-04.parquet", "notes.txt"):
        (folder / name).write_text("")
    (folder / "2024-01-05.csv").mkdir()  # a folder named by a date is not a daily file
    assert [f.name for f in daily_files(folder)] == ["2024-01-01.csv", "2024-01-02.csv.gz",
                                                      "2024-01-03_part.csv", "2024-01-04.parquet"]
    assert [f.name for f in daily_files(folder, "2024-01-02", "2024-01-03")] == ["2024-01-02.csv.gz",
                                                                                 "2024-01-03_part.csv"]
    assert [f.name for f in daily_files(folder, suffixes=(".csv", ".csv.gz"))] == [
        "2024-01-01.csv", "2024-01-02.csv.gz", "2024-01-03_part.csv"]
    with pytest.raises(EmptyDataError, match="no daily file between 2025-01-01 and None"):
        daily_files(folder, start="2025-01-01")
    with pytest.raises(EmptyDataError, match=r"online-retail .*no \.tsv files"):
        daily_files(folder, suffixes=(".tsv",), label="online-retail ")
    with pytest.raises(EmptyDataError, match="expected daily files named YYYY-MM-DD"):
        daily_files(tmp_path / "by-day" / "2024-01-05.csv")


def test_a_report_holds_only_what_its_steps_set():
    r = RetrainReport(model_name="m", tracking_uri="sqlite:///x.db", events="ev", config={"k": 20})
    assert list(r.to_dict()) == ["status", "run_id", "model_name", "model_version", "promoted", "reason",
                                 "failed_step", "tracking_uri", "events", "start", "end", "config"]
    r.metrics = {"challenger": {"mrr@20": 0.5, "hr@20": 0.7, "ndcg@20": 0.55}}
    assert r.to_dict()["stability"] is None  # evaluated without a champion: the key says so
    r.reason, r.model_version, r.gating = "no champion yet", 1, {"metric": "mrr@20", "challenger": 0.5}
    assert "version 1 is the challenger" in format_report(r) and "no champion yet" in format_report(r)


def test_neighbour_stability_known_answers():
    rng = np.random.default_rng(0)
    ids = [f"i{j}" for j in range(60)]
    a = ItemEmbeddings(ids, rng.normal(size=(60, 8)))
    same = ItemEmbeddings(ids[::-1], a.vectors[::-1].copy())  # other row order, same space
    assert neighbour_stability(a, same, k=10)["overlap@10"] == pytest.approx(1.0)
    other = ItemEmbeddings(ids, rng.normal(size=(60, 8)))
    s = neighbour_stability(a, other, k=10)
    assert s["n_common"] == 60 and s["overlap@10"] < 0.4
    # items only one side knows do not count
    more = ItemEmbeddings(ids + ["new"], np.vstack([a.vectors, rng.normal(size=(1, 8))]))
    assert neighbour_stability(more, a, k=10)["n_common"] == 60


def test_configs_validate_and_the_shipped_ones_load(tmp_path):
    for path in sorted(CONFIGS.glob("*.toml")):
        cfg = load_config(path)
        assert cfg.gating_k == 20
    with pytest.raises(ValueError, match="unknown retrain option"):
        RetrainConfig.from_dict({"modelname": "x"})
    with pytest.raises(ValueError, match="unknown prepare option"):
        RetrainConfig.from_dict({"prepare": {"test_dayz": 1}})
    with pytest.raises(ValueError, match="gating_metric"):
        RetrainConfig(gating_metric="auc")
    (tmp_path / "bad.toml").write_text("model_name = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")
    assert load_config(None, model_name="x", use_bilstm=None).use_bilstm is True


def test_config_sections_are_typed_and_round_trip_through_the_config_files():
    from item2vec.data import PrepareConfig
    from item2vec.embeddings import Item2VecConfig
    from item2vec.nextitem import NextItemConfig, TrainConfig
    from item2vec.retrain import BiLSTMConfig

    for path in sorted(CONFIGS.glob("*.toml")):
        cfg = load_config(path)
        assert isinstance(cfg.prepare, PrepareConfig) and isinstance(cfg.item2vec, Item2VecConfig)
        assert isinstance(cfg.bilstm, BiLSTMConfig)
        assert isinstance(cfg.bilstm.config, NextItemConfig) and isinstance(cfg.bilstm.train_config, TrainConfig)
        again = RetrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))  # through a JSON file
        assert again == cfg and again.to_dict() == cfg.to_dict()
    cfg = RetrainConfig.from_dict(GOOD)
    d = cfg.to_dict()
    # the sections' defaults are written out; the given values kept
    assert d["item2vec"] == {**Item2VecConfig().to_dict(), **GOOD["item2vec"]}
    assert d["bilstm"]["lr"] == TrainConfig().lr and d["bilstm"]["hidden_size"] == 16
    assert d["prepare"]["min_item_support"] == PrepareConfig().min_item_support
    # built from the vectors, the table is as wide as they are (no projection), as NextItemRecommender does
    assert (cfg.bilstm.config.embedding_dim, cfg.bilstm.config.projection_dim) == (16, None)
    assert RetrainConfig.from_dict({"bilstm": {"init": "random"}}).bilstm.config.embedding_dim == \
        NextItemConfig().embedding_dim
    # a dict given to the constructor is the same as from_dict
    assert RetrainConfig(item2vec={"epochs": 3}) == RetrainConfig.from_dict({"item2vec": {"epochs": 3}})
    # a typo in the [bilstm] table is refused with the config, not after item2vec trained
    with pytest.raises(ValueError, match=r"unknown bilstm option.*hiden_size"):
        RetrainConfig.from_dict({"bilstm": {"hiden_size": 8}})
    with pytest.raises(ValueError, match="unknown Item2Vec option"):
        RetrainConfig.from_dict({"item2vec": {"vectorsize": 8}})


def test_the_report_records_the_full_resolved_config(history):
    """The report's config is every option the run used, defaults included: the run can be repeated from it."""
    from item2vec.embeddings import Item2VecConfig

    first = history["first"]["config"]
    assert first == json.loads(json.dumps(RetrainConfig.from_dict(WEAK).to_dict()))
    assert first["item2vec"]["negative"] == Item2VecConfig().negative  # a default WEAK does not set
    assert RetrainConfig.from_dict(first) == RetrainConfig.from_dict(WEAK)


# ---------------------------------------------------------------------------
# bad windows and corrupt files
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("start,end", [(None, "2011-13-01"), ("2024-02-30", None), ("2024-01-05", "2024-01-04")])
def test_impossible_dates_are_refused_before_any_run(daily, tmp_path, capsys, start, end):
    folder, _ = daily
    store = f"sqlite:///{tmp_path}/m.db"
    with pytest.raises(DataError, match="start|end"):
        run_retrain(folder, RetrainConfig.from_dict(WEAK), start=start, end=end, tracking_uri=store)
    (tmp_path / "weak.json").write_text(json.dumps(WEAK))
    args = ["retrain", "--events", str(folder), "--config", str(tmp_path / "weak.json"), "--tracking-uri", store,
            "--quiet"] + (["--start", start] if start else []) + (["--end", end] if end else [])
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and (start or end) in err[0]
    assert registry_history(NAME, tracking_uri=store) == []


@pytest.mark.parametrize("fmt", ["csv", "online-retail"])
def test_a_corrupt_daily_file_is_named_in_one_line(daily, tmp_path, capsys, fmt):
    import gzip

    folder, days = daily
    bad = tmp_path / "by-day"
    bad.mkdir()
    if fmt == "csv":
        for d in days[:3]:
            (bad / f"{d}.csv").write_bytes((folder / f"{d}.csv").read_bytes())
        broken = bad / f"{days[3]}.csv"
        broken.write_bytes(b"session_id,item_id,timestamp\n1,\"a,2024-01-01\n2,b\x00\xff,notatime\n")
    else:
        good = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n" + \
            b"536365,85123A,X,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"
        (bad / "2010-12-01.csv.gz").write_bytes(gzip.compress(good))
        broken = bad / "2010-12-02.csv.gz"
        broken.write_bytes(gzip.compress(good * 50)[:40])  # cut short
    with pytest.raises(DataError, match=re.escape(str(broken))):
        read_window(bad, fmt)
    (tmp_path / "weak.json").write_text(json.dumps({**WEAK, "format": fmt}))
    rc = main(["retrain", "--events", str(bad), "--config", str(tmp_path / "weak.json"),
               "--tracking-uri", f"sqlite:///{tmp_path}/m.db", "--quiet"])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert str(broken) in err[0] and "step 'read'" in err[0] and len(err) == 2


# ---------------------------------------------------------------------------
# the served model is chosen on validation
# ---------------------------------------------------------------------------
CHOOSE = {**WEAK, "serve": "auto", "baselines": ["pop", "markov"], "item2vec": {"vector_size": 16, "epochs": 5}}


def test_the_served_model_is_the_best_candidate_on_validation(daily, tmp_path, capsys):
    import item2vec

    folder, days = daily
    store = f"sqlite:///{tmp_path}/m.db"
    r = run_retrain(folder, RetrainConfig.from_dict(CHOOSE), end=days[20], tracking_uri=store)
    val, served = r.validation, r.served_model
    assert set(val) == {"item2vec", "pop", "markov"}
    assert all(val[served]["mrr@20"] >= v["mrr@20"] for v in val.values())
    assert served in r.served_choice and "validation" in r.served_choice
    # what serves is what was gated: the served pyfunc scores exactly as the chosen model on the test days
    assert r.metrics["challenger"]["mrr@20"] == pytest.approx(r.metrics[served]["mrr@20"])
    hist = registry_history(NAME, tracking_uri=store)
    assert hist[-1]["tags"]["served_model"] == served and hist[-1]["tags"]["promoted"] == "true"
    assert main(["history", "--model-name", NAME, "--tracking-uri", store]) == 0
    assert f"| {served} |" in capsys.readouterr().out
    run = MlflowClient(store).get_run(r.run_id)
    assert run.data.tags["served_model"] == served and "valid.markov.mrr_at_20" in run.data.metrics
    # the champion loaded from the registry answers recommend() with that model, in external ids
    champ = item2vec.load(f"models:/{NAME}@champion", tracking_uri=store)
    assert champ.info["served_model"] == served
    if served != "item2vec":
        assert champ.next_model.name == served and served in repr(champ)
        session = champ.next_model.vocab.ids[:2].tolist()
        ids, _ = champ.recommend(session, k=5)
        idx, _ = champ.next_model.recommend(champ.next_model.vocab.indices(session), 5)
        assert ids.tolist() == champ.next_model.vocab.lookup(idx).tolist()


def test_markov_wins_validation_on_successor_chains_and_serves(daily, tmp_path):
    """Planted successor chains: last-item transitions beat a weak item2vec on validation, so Markov serves."""
    folder, days = daily
    r = run_retrain(folder, RetrainConfig.from_dict({**CHOOSE, "item2vec": WEAK["item2vec"]}), end=days[20],
                    tracking_uri=f"sqlite:///{tmp_path}/m.db")
    assert r.validation["markov"]["mrr@20"] > r.validation["item2vec"]["mrr@20"]
    assert r.served_model == "markov"
    assert r.metrics["challenger"]["mrr@20"] >= r.metrics["item2vec"]["mrr@20"]


def test_without_a_validation_split_the_job_says_what_it_serves(daily, tmp_path, caplog):
    folder, days = daily
    cfg = RetrainConfig.from_dict({**CHOOSE, "prepare": {"test_days": 1.0, "valid_days": 0.0}})
    r = run_retrain(folder, cfg, end=days[20], tracking_uri=f"sqlite:///{tmp_path}/m.db")
    assert r.served_model == "item2vec" and r.validation == {}
    assert "no validation" in r.served_choice and "no validation" in caplog.text


def test_serve_option_is_checked():
    assert RetrainConfig(use_bilstm=True, baselines=["pop", "markov", "item2vec-mean"]).candidates == \
        ["bilstm", "item2vec", "pop", "markov", "blend"]
    assert RetrainConfig(use_bilstm=False).candidates == ["item2vec", "pop", "markov"]
    assert RetrainConfig(blend=[]).candidates == ["bilstm", "item2vec", "pop", "markov"]
    assert RetrainConfig(serve=["markov", "sknn"]).candidates == ["markov", "sknn"]
    with pytest.raises(ValueError, match="serve must be"):
        RetrainConfig(serve=["item2vec-mean"])
    with pytest.raises(ValueError, match="use_bilstm is false"):
        RetrainConfig(serve=["bilstm"], use_bilstm=False)
    with pytest.raises(ValueError, match="'blend' but use_bilstm is false"):
        RetrainConfig(serve=["blend"], use_bilstm=False)
    with pytest.raises(ValueError, match="blend is empty"):
        RetrainConfig(serve=["blend"], blend=[])
    with pytest.raises(ValueError, match=r"blend must be a list of distinct names from \['pop'"):
        RetrainConfig(blend=["item2vec"])


def test_a_blend_of_the_bilstm_and_baselines_serves_from_the_registry(daily, tmp_path):
    """serve = ["blend", "bilstm"]: the blend holds the BiLSTM alone on its grid, so it is never behind it on
    validation and serves; the champion loaded from the registry is that blend, answering in external ids."""
    import item2vec
    from item2vec.blend import Blend

    folder, days = daily
    store = f"sqlite:///{tmp_path}/m.db"
    cfg = RetrainConfig.from_dict({**GOOD, "serve": ["blend", "bilstm"], "blend": ["markov"], "warm_start": False})
    r = run_retrain(folder, cfg, end=days[20], tracking_uri=store)
    assert set(r.validation) == {"blend", "bilstm"} and r.served_model == "blend"
    assert r.validation["blend"]["mrr@20"] >= r.validation["bilstm"]["mrr@20"]
    assert set(r.blend_weights) == {"bilstm", "markov"} and sum(r.blend_weights.values()) == pytest.approx(1.0)
    assert r.metrics["challenger"]["mrr@20"] == pytest.approx(r.metrics["blend"]["mrr@20"])
    assert "blend weights (chosen on validation): bilstm" in format_report(r)
    assert "last_item_factor" not in r.blend_weights  # repeats dropped: the last item is never recommended
    champ = item2vec.load(f"models:/{NAME}@champion", tracking_uri=store)
    assert isinstance(champ.next_model, Blend) and champ.info["served_model"] == "blend"
    assert [m.name for m in champ.next_model.models] == ["bilstm", "markov"]
    assert tuple(r.blend_weights.values()) == champ.next_model.weights_
    session = champ.next_model.vocab.ids[:3].tolist()
    ids, _ = champ.recommend(session, k=5)
    idx, _ = champ.next_model.recommend(champ.next_model.vocab.indices(session), 5)
    assert ids.tolist() == champ.next_model.vocab.lookup(idx).tolist()

    # with consecutive repeats kept, the blend also chooses a factor on the last item's score
    kept = RetrainConfig.from_dict({**GOOD, "model_name": "kept", "serve": ["blend"], "blend": ["markov"],
                                    "warm_start": False, "prepare": {"test_days": 1.0, "valid_days": 1.0,
                                                                     "drop_repeats": False}})
    r = run_retrain(folder, kept, end=days[20], tracking_uri=store)
    assert r.blend_weights["last_item_factor"] in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
    served = item2vec.load("models:/kept@champion", tracking_uri=store).next_model
    assert served.repeats_dropped_ is False and served.last_item_factor_ == r.blend_weights["last_item_factor"]


def test_the_candidates_come_from_the_one_registry(daily, tmp_path, monkeypatch):
    """retrain builds its candidates with recommenders.fitted_models, as `item2vec evaluate` does."""
    import item2vec.recommenders as recommenders

    calls: list[list[str]] = []
    fitted = recommenders.fitted_models

    def spy(data, names, **kw):
        calls.append(list(names))
        assert kw.get("embeddings") is not None  # item2vec on the vectors of the item2vec step, not a new fit
        yield from fitted(data, names, **kw)

    monkeypatch.setattr(recommenders, "fitted_models", spy)
    folder, days = daily
    r = run_retrain(folder, RetrainConfig.from_dict(CHOOSE), end=days[20], tracking_uri=f"sqlite:///{tmp_path}/m.db")
    assert calls == [["pop", "markov", "item2vec"]]
    assert {"pop", "markov", "item2vec"} <= set(r.metrics) and set(r.validation) == {"item2vec", "pop", "markov"}
