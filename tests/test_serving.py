"""Round trip through ``mlflow models serve -m models:/NAME@champion --env-manager local``.

The server listens on 127.0.0.1 on a free port, runs in its own process group,
and this test ends that group (and only it) when done.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from item2vec.embeddings import Item2Vec
from item2vec.registry import ServedModel, log_model, set_alias
from item2vec.tracking import start_run

pytest.importorskip("mlflow")

NAME = "serve-test"
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's own process group, then SIGKILL whatever is left of it."""
    pgid = proc.pid  # start_new_session=True: the server leads its own group
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)  # anyone left in the group (uvicorn workers)?
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=5)


@contextlib.contextmanager
def serving(model_uri: str, store: str, cwd: Path) -> Iterator[str]:
    """``mlflow models serve -m MODEL_URI --env-manager local`` on a free port; yields its URL, then stops it."""
    port = _free_port()
    # the server execs `uvicorn` from PATH: put this interpreter's scripts first; it serves this checkout's item2vec
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PATH": path, "PYTHONPATH": pythonpath,
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    log_path = cwd / f"server-{port}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer /ping in 180 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        _stop_group(proc)
        log.close()


@pytest.fixture(scope="module")
def registered(tmp_path_factory, synthetic_data):
    from item2vec.nextitem import NextItemRecommender

    tmp = tmp_path_factory.mktemp("serving")
    store = f"sqlite:///{tmp}/mlflow.db"
    data = synthetic_data
    emb = Item2Vec(vector_size=16, epochs=5, show_progress=False).fit(data.decode(data.train)).embeddings_
    nxt = NextItemRecommender(embeddings=emb, vocab=data.vocab, epochs=1, hidden_size=16, num_threads=1,
                              show_progress=False).fit(data.train, n_items=data.n_items)
    served = ServedModel(emb, nxt)
    with start_run("serve", experiment="serving", tracking_uri=store):
        info = log_model(served, registered_model_name=NAME)
    set_alias(NAME, info.registered_model_version, "champion", tracking_uri=store)
    return tmp, store, served


@pytest.fixture(scope="module")
def server(registered):
    tmp, store, _ = registered
    with serving(f"models:/{NAME}@champion", store, tmp) as url:
        yield url


def test_similar_items_over_http(server, registered):
    _, _, served = registered
    a = served.embeddings.ids[0]
    body = json.dumps({"dataframe_records": [{"item_id": a}, {"item_id": "no-such-item"}], "params": {"k": 4}})
    status, out = _post(f"{server}/invocations", body.encode())
    assert status == 200, out
    rows = out["predictions"]
    ids, scores = served.similar_items(a, 4)
    assert rows[0]["item_ids"] == ids.tolist() and rows[0]["unknown"] is False
    np.testing.assert_allclose(rows[0]["scores"], scores, atol=1e-5)
    assert rows[1] == {"query": "item_id", "item_ids": [], "scores": [], "unknown": True, "n_ignored": 0}


def test_next_items_over_http(server, registered):
    _, _, served = registered
    a, b = served.embeddings.ids[:2].tolist()
    body = json.dumps({"dataframe_records": [{"session": [a, "ghost", b]}], "params": {"k": 3}})
    status, out = _post(f"{server}/invocations", body.encode())
    assert status == 200, out
    row = out["predictions"][0]
    assert row["item_ids"] == served.recommend([a, b], 3)[0].tolist()
    assert row["n_ignored"] == 1 and row["unknown"] is False


@pytest.mark.parametrize("body", [
    b"{not json",
    b'{"records": [{"item_id": "x"}]}',
    b'{"dataframe_records": [{"product": "x"}]}',
    b'{"dataframe_records": [{"item_id": "x"}], "params": {"k": "many"}}',
])
def test_malformed_bodies_get_a_4xx(server, body):
    status, _ = _post(f"{server}/invocations", body)
    assert 400 <= status < 500


def test_k_of_zero_is_a_400_with_one_sentence_and_no_stack_trace(server):
    body = json.dumps({"dataframe_records": [{"item_id": "x"}], "params": {"k": 0}})
    status, out = _post(f"{server}/invocations", body.encode())
    assert status == 400
    assert out["message"] == "k must be a positive integer, got 0"
    assert "stack_trace" not in out and "Traceback" not in json.dumps(out)
    body = json.dumps({"dataframe_records": [{"product": "x"}]})
    status, out = _post(f"{server}/invocations", body.encode())
    assert status == 400 and out["message"].startswith("expected a column 'item_id'") and "stack_trace" not in out


def test_instances_and_inputs_get_flat_answers(server, registered):
    _, _, served = registered
    a, b = served.embeddings.ids[:2].tolist()
    want = served.similar_items(a, 3)[0].tolist()
    for body in ({"instances": [{"item_id": a}, {"item_id": b}]},
                 {"inputs": {"item_id": [a, b]}},
                 {"inputs": [{"item_id": a}, {"item_id": b}]}):
        status, out = _post(f"{server}/invocations", json.dumps({**body, "params": {"k": 3}}).encode())
        assert status == 200, (body, out)
        rows = out["predictions"]
        assert isinstance(rows, list) and len(rows) == 2, (body, rows)
        assert rows[0]["item_ids"] == want and rows[1]["query"] == "item_id"


def test_filters_and_session_exclusion_over_http(server, registered):
    _, _, served = registered
    a, b = served.embeddings.ids[:2].tolist()
    top = served.similar_items(a, 3)[0].tolist()
    body = {"dataframe_records": [{"item_id": a}], "params": {"k": 3, "filter_items": top[:2]}}
    status, out = _post(f"{server}/invocations", json.dumps(body).encode())
    assert status == 200, out
    got = out["predictions"][0]["item_ids"]
    assert len(got) == 3 and not set(got) & set(top[:2]) and got[0] == top[2]

    session = [a, None, "ghost", b]
    body = {"dataframe_records": [{"session": session}], "params": {"k": 5, "exclude_session": True}}
    status, out = _post(f"{server}/invocations", json.dumps(body).encode())
    assert status == 200, out
    row = out["predictions"][0]
    assert row["item_ids"] == served.recommend([a, b], 5, exclude_session=True)[0].tolist()
    assert not {a, b} & set(row["item_ids"]) and row["n_ignored"] == 2


# ---------------------------------------------------------------------------
# retrain → register → promote → item2vec.load → mlflow models serve, on shared logs
# ---------------------------------------------------------------------------
SMALL_JOB = {"experiment": "deploy", "baselines": ["pop"], "tsne": False, "warm_start": False,
             "item2vec": {"vector_size": 16, "epochs": 3, "workers": 1, "random_state": 0}}
DEPLOYS = {
    # integer product ids, the BiLSTM served for sessions (pinned: its weights go through the pyfunc)
    "diginetica-int": ("diginetica-sample/sample_train-item-views.csv", None, None,
                       {"format": "diginetica", "use_bilstm": True, "serve": ["bilstm"],
                        "prepare": {"test_days": 3, "valid_days": 3},
                        "bilstm": {"epochs": 1, "hidden_size": 16, "patience": 1, "num_threads": 1}}),
    # string stock codes (some all digits: "71053" is a string here); the job picks what answers sessions
    "online-retail-str": ("online-retail/by-day", "2010-12-01", "2010-12-05",
                          {"format": "online-retail", "read": {"session": "invoice"}, "use_bilstm": False,
                           "prepare": {"test_days": 1, "valid_days": 1}}),
}


@pytest.mark.parametrize("case", sorted(DEPLOYS))
def test_retrain_register_promote_load_and_serve_a_shared_log(case, shared_datasets, tmp_path):
    import item2vec
    from item2vec.retrain import RetrainConfig, run_retrain

    rel, start, end, job = DEPLOYS[case]
    if not (shared_datasets / rel).exists():
        pytest.skip(f"{rel} is not among the shared datasets")
    store = f"sqlite:///{tmp_path}/mlflow.db"
    name = f"deploy-{case}"
    report = run_retrain(shared_datasets / rel, RetrainConfig.from_dict({**SMALL_JOB, **job, "model_name": name}),
                         start=start, end=end, tracking_uri=store)
    assert report.status == "ok" and report.promoted, report.error

    loaded = item2vec.load(f"models:/{name}@champion", tracking_uri=store)
    int_ids = case.endswith("int")
    assert loaded.ids_are_int is int_ids
    served_name = report.served_model
    assert served_name == ("bilstm" if int_ids else served_name) and loaded.info["served_model"] == served_name
    assert (loaded.next_model is None) is (served_name == "item2vec")
    a, b = loaded.embeddings.ids[:2].tolist()
    other = str(a) if int_ids else None  # the other spelling of an integer id
    want_item = loaded.similar_items(a, 4)[0].tolist()
    want_session = loaded.recommend([a, b], 4)[0].tolist()
    assert all(isinstance(x, int if int_ids else str) for x in want_item + want_session)

    records = [{"item_id": a}, {"session": [a, None, "no-such-item", b]}, {"item_id": "no-such-item"}]
    if other is not None:
        records.append({"item_id": other})
    with serving(f"models:/{name}@champion", store, tmp_path) as url:
        status, out = _post(f"{url}/invocations", json.dumps({"dataframe_records": records,
                                                               "params": {"k": 4}}).encode())
    assert status == 200, out
    rows = out["predictions"]
    assert rows[0]["item_ids"] == want_item and rows[0]["unknown"] is False
    assert rows[1]["item_ids"] == want_session and rows[1]["n_ignored"] == 2
    assert rows[2]["unknown"] is True and rows[2]["item_ids"] == []
    if other is not None:
        assert rows[3]["item_ids"] == want_item
