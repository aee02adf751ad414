"""The notebook tour: its .ipynb matches its jupytext source, and it runs end to end on small data.

The notebook is executed with nbclient in a kernel that is this interpreter
(``sys.executable``), registered in a temporary Jupyter path, so a user's own
``python3`` kernel cannot be picked up by mistake. Any cell error fails the test.
Set ``ITEM2VEC_TEST_ARTIFACTS=DIR`` to keep the t-SNE pictures the runs draw.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TOUR_PY = NOTEBOOKS / "tour.py"
TOUR_IPYNB = NOTEBOOKS / "tour.ipynb"
KERNEL = "item2vec-tests"


def cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_ipynb_is_in_sync_with_its_jupytext_source():
    from_py = jupytext.read(TOUR_PY)
    ipynb = nbformat.read(TOUR_IPYNB, as_version=4)
    assert cells(ipynb) == cells(from_py), (
        "notebooks/tour.ipynb differs from notebooks/tour.py; regenerate it with "
        "`.venv/bin/jupytext --to ipynb notebooks/tour.py`"
    )
    assert all(not c.get("outputs") for c in ipynb.cells if c.cell_type == "code"), "commit the notebook without outputs"


@pytest.fixture()
def kernel_here(tmp_path, monkeypatch):
    """A kernelspec for this very interpreter, visible only through a temporary JUPYTER_PATH."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "item2vec tests",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return KERNEL


def run_tour(kernel: str, png: Path, data: str, monkeypatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("ITEM2VEC_TOUR_SMALL", "1")
    monkeypatch.setenv("ITEM2VEC_TOUR_PNG", str(png))
    monkeypatch.setenv("ITEM2VEC_TOUR_DATA", data)
    nb = nbformat.read(TOUR_IPYNB, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=kernel, timeout=120, allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    return nb


def picture_path(tmp_path: Path, name: str) -> Path:
    keep = os.environ.get("ITEM2VEC_TEST_ARTIFACTS")
    return (Path(keep).resolve() if keep else tmp_path) / name


def outputs_text(nb) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            parts.append(o.get("text", "") or o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_tour_runs_on_the_synthetic_log(kernel_here, tmp_path, monkeypatch):
    png = picture_path(tmp_path, "tour-synthetic-tsne.png")
    nb = run_tour(kernel_here, png, "synthetic", monkeypatch)
    assert png.read_bytes()[:4] == b"\x89PNG"
    text = outputs_text(nb)
    assert "data: synthetic (small)" in text
    for model in ("pop", "markov", "item2vec", "item2vec-mean"):
        assert f"\n{model} " in text
    assert "bilstm" in text  # trained, or skipped with a message saying why
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.slow
def test_tour_runs_on_a_slice_of_online_retail(shared_datasets, kernel_here, tmp_path, monkeypatch):
    if not (shared_datasets / "online-retail" / "by-day").is_dir():
        pytest.skip("online-retail is not among the shared datasets")
    monkeypatch.setenv("ITEM2VEC_DATASETS", str(shared_datasets))
    png = picture_path(tmp_path, "tour-online-retail-tsne.png")
    nb = run_tour(kernel_here, png, "online-retail", monkeypatch)
    assert png.read_bytes()[:4] == b"\x89PNG"
    text = outputs_text(nb)
    assert "data: Online Retail (small)" in text
    assert "WHITE HANGING HEART T-LIGHT HOLDER" in text  # neighbours come with their descriptions
