"""The cluster fixture itself: two workers run the tasks."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.spark


def test_cluster_runs_tasks_on_both_workers(spark, spark_cluster):
    sc = spark.sparkContext
    assert sc.master == spark_cluster
    pids = set(sc.parallelize(range(8), 4).map(lambda _: __import__("os").getpid()).collect())
    assert len(pids) >= 2  # one Python worker per executor at least
    assert spark.range(1000).selectExpr("sum(id) AS s").first()["s"] == 499500
    assert int(spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size()) == 3  # driver + 2 executors
