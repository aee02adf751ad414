"""Round trip through ``mlflow models serve -m models:/NAME@champion --env-manager local``.

The server listens on 127.0.0.1 on a free port, runs in its own process group,
and this test ends that group (and only it) when done.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from item2vec.embeddings import Item2Vec
from item2vec.registry import ServedModel, log_model, set_alias
from item2vec.tracking import start_run

pytest.importorskip("mlflow")

NAME = "serve-test"


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
    port = _free_port()
    # the server execs `uvicorn` from PATH: put this interpreter's scripts first
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PATH": path, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@champion",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited ({proc.returncode}):\n{Path(tmp / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer /ping in 180 s:\n{Path(tmp / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        _stop_group(proc)
        log.close()


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
