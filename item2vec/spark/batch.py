"""Batch scoring from the registry: ``recommend`` over a Spark table of sessions.

The registered model (``models:/NAME@champion``) runs inside the executors through
``mlflow.pyfunc.spark_udf``: the same pyfunc that ``mlflow models serve`` answers
with, so the batch table and the online answers agree.
"""

from __future__ import annotations

from typing import Any

__all__ = ["recommend_sessions", "RESULT_TYPE"]

#: The pyfunc's answer per row (see :meth:`item2vec.registry.ServedModel.predict_frame`).
RESULT_TYPE = "query string, item_ids array<{t}>, scores array<double>, unknown boolean, n_ignored long"


def recommend_sessions(
    sessions: Any,
    model_uri: str,
    k: int = 10,
    session_col: str = "session",
    item_type: str = "string",
    tracking_uri: str | None = None,
    out_col: str = "recommended",
) -> Any:
    """Add the model's top-``k`` next items for every session of a Spark table.

    Parameters
    ----------
    sessions : pyspark.sql.DataFrame
        One row per session; ``session_col`` is an array of item ids (oldest first).
    model_uri : str
        ``models:/NAME@champion``, ``models:/NAME/3``, ``runs:/...`` or a model directory.
    k : int
        Items per session.
    session_col : str
        The column of item-id arrays.
    item_type : {"string", "long"}
        The Spark type of the item ids the model answers with.
    tracking_uri : str, optional
        Where the registry lives (default: ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``).
    out_col : str
        Name of the added struct column ``query, item_ids, scores, unknown, n_ignored``.

    Returns
    -------
    pyspark.sql.DataFrame
        ``sessions`` plus ``out_col`` (lazy: nothing runs until it is written or collected).
    """
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    from item2vec.exceptions import MissingColumnError, OptionError
    from item2vec.tracking import use_tracking_uri

    if session_col not in sessions.columns:
        raise MissingColumnError(f"recommend_sessions: expected a column {session_col!r}, got {sessions.columns}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise OptionError(f"recommend_sessions: k must be an integer >= 1, got {k!r}", options=("k",))
    if item_type not in ("string", "long"):
        raise OptionError(f"recommend_sessions: item_type must be 'string' or 'long', got {item_type!r}",
                          options=("item_type",))
    with use_tracking_uri(tracking_uri):
        udf = mlflow.pyfunc.spark_udf(sessions.sparkSession, model_uri, env_manager="local",
                                      result_type=RESULT_TYPE.format(t=item_type), params={"k": k})
    # The pyfunc reads columns item_id and session (a null item_id asks for the session). Its
    # signature declares no input schema (see registry._signature), so spark_udf would name
    # separate columns "0", "1": one struct column reaches it as a DataFrame with its field names.
    no_item = F.lit(None).cast(item_type)
    request = F.struct(no_item.alias("item_id"), F.col(session_col).alias("session"))
    return sessions.withColumn(out_col, udf(request))
