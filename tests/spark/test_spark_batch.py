"""Batch scoring with mlflow.pyfunc.spark_udf on models:/NAME@champion, on the cluster."""

from __future__ import annotations

import numpy as np
import pytest

from item2vec import ItemEmbeddings
from item2vec.exceptions import MissingColumnError

pytestmark = pytest.mark.spark


def test_recommend_sessions_matches_the_registered_model(spark, tmp_path, monkeypatch):
    import pyarrow as pa

    from item2vec.registry import ServedModel, log_model, set_alias
    from item2vec.spark.batch import recommend_sessions
    from item2vec.tracking import start_run

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    rng = np.random.default_rng(0)
    served = ServedModel(ItemEmbeddings([f"i{j}" for j in range(60)], rng.normal(size=(60, 8)).astype(np.float32)))
    with start_run("batch", experiment="batch", tracking_uri=uri):
        info = log_model(served, registered_model_name="toy")
    set_alias("toy", info.registered_model_version, "champion", tracking_uri=uri)

    sessions = [["i1", "i2"], ["i3"], ["unknown", "i4"], ["nope"]]
    sdf = spark.createDataFrame(pa.table({"sid": list(range(len(sessions))), "items": sessions}), ).repartition(2)
    out = recommend_sessions(sdf, "models:/toy@champion", k=3, session_col="items", tracking_uri=uri)
    rows = {r["sid"]: r["recommended"] for r in out.collect()}
    for sid, s in enumerate(sessions):
        want = served.predict_frame({"session": [s]}, k=3).iloc[0]
        assert rows[sid]["item_ids"] == list(want["item_ids"])
        np.testing.assert_allclose(rows[sid]["scores"], want["scores"], rtol=1e-5)
        assert rows[sid]["unknown"] == bool(want["unknown"])
    assert rows[2]["n_ignored"] == 1
    with pytest.raises(MissingColumnError, match="'session'"):
        recommend_sessions(sdf, "models:/toy@champion", tracking_uri=uri)
