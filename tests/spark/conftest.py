"""A real standalone Spark cluster for the Spark tests: one master and two workers on 127.0.0.1.

Started once per test session (:func:`item2vec.spark.cluster.local_cluster`: the jars
inside the pyspark wheel, each process in its own process group, free ports, waits
until both workers are registered) and stopped by those process groups at the end,
never by name. The tests skip, with the reason, only where Java or pyspark is absent.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
N_WORKERS = 2


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``spark://127.0.0.1:PORT`` of a master with two registered 1-core workers."""
    if shutil.which("java") is None:
        pytest.skip("Spark tests need Java 17+ (`java` is not on PATH)")
    pytest.importorskip("pyspark", reason="Spark tests need pyspark: pip install 'item2vec[spark]'")
    from item2vec.spark.cluster import local_cluster

    with local_cluster(N_WORKERS, cores=1, memory="2g", work_dir=tmp_path_factory.mktemp("spark-cluster"),
                       python_path=str(ROOT)) as cluster:
        assert cluster.alive_workers() == N_WORKERS
        yield cluster.url


@pytest.fixture(scope="session")
def spark(spark_cluster: str) -> Iterator[object]:
    """A SparkSession on the two-worker cluster (one per test session: Spark allows one per process)."""
    from item2vec.spark.session import get_spark

    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    session = get_spark(
        spark_cluster, app_name="item2vec-tests",
        **{"spark.executor.memory": "1g", "spark.executor.cores": "1", "spark.cores.max": "2",
           "spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2",
           "spark.driver.memory": "1g", "spark.executorEnv.PYTHONPATH": str(ROOT),
           "spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1"},
    )
    yield session
    session.stop()
