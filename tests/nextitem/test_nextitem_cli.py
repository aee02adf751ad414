"""`item2vec train-next`: trains and writes a checkpoint; bad input is one line and exit 2."""

from __future__ import annotations

import numpy as np
import pytest

from item2vec.cli import main
from item2vec.embeddings import Item2Vec, Item2VecConfig
from item2vec.evaluation import evaluate
from item2vec.nextitem.recommender import load_next_model

TINY = ["--hidden-size", "8", "--epochs", "2", "--max-prefix", "5", "--quiet"]


@pytest.fixture(scope="module")
def prepared(sequential_data, tmp_path_factory):
    data, _ = sequential_data
    return data.save(tmp_path_factory.mktemp("prep") / "data")


@pytest.fixture(scope="module")
def embeddings_dir(sequential_data, tmp_path_factory):
    data, _ = sequential_data
    emb = Item2Vec(vector_size=8, epochs=2, show_progress=False).fit(data.decode(data.train)).embeddings_
    return emb.save(tmp_path_factory.mktemp("emb") / "i2v")


def test_train_next_with_embeddings_frozen(prepared, embeddings_dir, sequential_data, tmp_path):
    data, _ = sequential_data
    out = tmp_path / "bilstm"
    assert main(["train-next", "--data", str(prepared), "--embeddings", str(embeddings_dir), "--freeze",
                 "--out", str(out), *TINY]) == 0
    model = load_next_model(out)
    assert model.freeze and model.config_.embedding_dim == 8 and model.config_.max_prefix == 5
    assert not model.model_.embedding.weight.requires_grad
    res = evaluate(model, data.test, k=20)
    assert 0.0 <= res["hr@20"] <= 1.0 and res["n_predictions"] > 0


def test_train_next_random_and_default_item2vec(prepared, tmp_path, capsys):
    assert main(["train-next", "--data", str(prepared), "--init", "random", "--untied",
                 "--out", str(tmp_path / "r"), "--hidden-size", "8", "--epochs", "1"]) == 0
    assert "kept epoch 1 of 1" in capsys.readouterr().out
    assert not load_next_model(tmp_path / "r").config_.tied
    assert main(["train-next", "--data", str(prepared), "--init", "random", "--residual-last", "--lr-decay", "0.5",
                 "--out", str(tmp_path / "r2"), "--hidden-size", "8", "--epochs", "1", "--quiet"]) == 0
    back = load_next_model(tmp_path / "r2")
    assert back.config_.residual_last and back.get_params()["lr_decay"] == 0.5
    # no --embeddings: item2vec is fitted on the training split with its defaults first
    assert main(["train-next", "--data", str(prepared), "--out", str(tmp_path / "d"), *TINY]) == 0
    m = load_next_model(tmp_path / "d")
    assert m.init == "item2vec" and m.config_.embedding_dim == Item2VecConfig().vector_size
    ids, _ = m.recommend_ids([m.vocab.ids[0]], k=3)
    assert len(ids) == 3 and set(ids) <= set(m.vocab.ids.tolist())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--init", "random", "--freeze"], "--freeze needs --init item2vec"),
        (["--init", "random", "--embeddings", "x"], "--embeddings is for --init item2vec"),
        (["--hidden-size", "0", "--init", "random"], "hidden_size=0"),
        (["--device", "toaster", "--init", "random"], "torch device name"),
    ],
)
def test_bad_input_one_line_exit_2(prepared, tmp_path, capsys, extra, message):
    assert main(["train-next", "--data", str(prepared), "--out", str(tmp_path / "x"), "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("item2vec: error:") and message in err and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_missing_checkpoint_and_data(tmp_path, capsys):
    assert main(["train-next", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "not a prepared-data directory" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        load_next_model(tmp_path)


def test_evaluate_with_next_model(prepared, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["train-next", "--data", str(prepared), "--init", "random", "--out", str(out), *TINY]) == 0
    report = tmp_path / "r.json"
    rc = main(["evaluate", "--data", str(prepared), "--models", "pop,bilstm", "--next-model", str(out),
               "--json", str(report), "--quiet"])
    assert rc == 0
    import json

    res = json.loads(report.read_text())["models"]
    assert np.isfinite(res["bilstm"]["hr@20"]) and res["bilstm"]["hr@20"] >= res["pop"]["hr@20"]


def test_train_next_out_replaces_a_checkpoint_never_something_else(prepared, embeddings_dir, tmp_path, capsys):
    run = ["train-next", "--data", str(prepared), "--init", "random", "--hidden-size", "8", "--epochs", "1", "--quiet"]
    out = tmp_path / "bilstm"
    assert main([*run, "--out", str(out)]) == 0
    assert "kept epoch 1 of 1" in capsys.readouterr().out  # --quiet hides bars, not the result
    assert main([*run, "--out", str(out), "--seed", "3"]) == 0  # an older checkpoint: replaced
    assert load_next_model(out).get_params()["random_state"] == 3
    # an item2vec model directory is not a checkpoint directory, and it is this command's input
    capsys.readouterr()
    code = main(["train-next", "--data", str(prepared), "--embeddings", str(embeddings_dir), "--out",
                 str(embeddings_dir), *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "input" in err[0], err
    other = tmp_path / "reports"
    other.mkdir()
    (other / "q3.csv").write_text("keep")
    assert main([*run, "--out", str(other)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (other / "q3.csv").read_text() == "keep"
    assert main([*run, "--out", str(other), "--overwrite"]) == 0
    assert load_next_model(other).init == "random"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
