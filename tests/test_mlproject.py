"""`mlflow run mlflow -e retrain` as the README shows it, and the MLproject's environment file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "mlflow"

yaml = pytest.importorskip("yaml")


def _env() -> dict:
    return yaml.safe_load((PROJECT / "python_env.yaml").read_text())


def test_python_env_lists_the_package_dependencies():
    deps = [d for d in _env()["dependencies"] if not d.startswith("-")]
    want = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(deps) == sorted(want)


def test_python_env_resolves_where_mlflow_installs_it(tmp_path):
    """MLflow writes the dependencies to a requirements file in a temporary folder of links to mlflow/'s files."""
    pytest.importorskip("pip")
    for item in PROJECT.iterdir():
        (tmp_path / item.name).symlink_to(item)
    (tmp_path / "req.txt").write_text("\n".join(_env()["dependencies"]))
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "-r", "req.txt"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]


def test_mlflow_run_retrain_from_the_repository_root(tmp_path):
    """Relative events, config, report and store, as a user types them at the repository root."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from item2vec.data import make_sessions
    from pipelines.retrain import write_daily_files

    root = tmp_path / "repo"  # a checkout: the MLproject and the configs (item2vec comes from PYTHONPATH)
    shutil.copytree(PROJECT, root / "mlflow", symlinks=True)
    shutil.copytree(ROOT / "pipelines" / "configs", root / "pipelines" / "configs")
    events, _ = make_sessions(n_sessions=400, days=5, noise=0.05, random_state=0)
    write_daily_files(events, root / "events")
    env = {**os.environ, "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    p = subprocess.run([sys.executable, "-m", "mlflow", "run", "mlflow", "-e", "retrain", "-P", "events=events",
                        "-P", "config=pipelines/configs/retrain.toml", "-P", "report=runs/report.json",
                        "--env-manager", "local"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    report = json.loads((root / "runs" / "report.json").read_text())
    assert report["promoted"] is True
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias(report["model_name"], "champion").version) == str(report["model_version"])
    assert sorted(p.name for p in (root / "mlflow").iterdir()) == sorted(p.name for p in PROJECT.iterdir())
