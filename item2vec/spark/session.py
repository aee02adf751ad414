"""One place that starts (or reuses) the SparkSession item2vec runs on."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from item2vec.exceptions import OptionError

__all__ = ["get_spark", "import_pyspark"]


def import_pyspark() -> Any:
    """Import pyspark, or raise :class:`OptionError` saying how to install it and Java."""
    try:
        import pyspark
    except ModuleNotFoundError:
        raise OptionError(
            "the Spark engine needs pyspark: pip install 'item2vec[spark]' (and Java 17+ on the machine)",
            options=("engine",),
        ) from None
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise OptionError("the Spark engine needs Java 17+ (`java` is not on PATH and JAVA_HOME is unset)",
                          options=("engine",))
    return pyspark


def get_spark(master: str | None = None, app_name: str = "item2vec", **conf: Any) -> Any:
    """The active SparkSession, or a new one on ``master``.

    Parameters
    ----------
    master : str, optional
        ``local[*]`` (default), ``local[N]`` or ``spark://host:port`` of a standalone
        cluster. Ignored when a session is already active (Spark allows one per process).
    app_name : str
        The application name shown in the cluster UI.
    **conf
        Extra Spark settings (``spark.executor.memory="2g"``, ...); dots may be written
        as underscores (``spark_executor_memory``).

    Returns
    -------
    pyspark.sql.SparkSession
        With the session time zone set to UTC (item2vec's timestamps are naive UTC)
        and executors running this interpreter (``PYSPARK_PYTHON``).
    """
    import_pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master or "local[*]").appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    for key, value in conf.items():
        builder = builder.config(key if "." in key else key.replace("_", "."), str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
