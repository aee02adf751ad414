"""Data layer: readers, sessionizing and splitting, the vocabulary, synthetic logs."""

from item2vec.data.readers import (
    FORMATS,
    TIME_UNITS,
    infer_time_unit,
    item_titles,
    normalize_frame,
    read_events,
    read_item_metadata,
    read_table,
)
from item2vec.data.sessions import (
    PrepareConfig,
    SessionData,
    auto_split,
    describe_split,
    drop_consecutive_repeats,
    filter_support,
    prepare,
    sessionize,
    temporal_split,
    time_outliers,
)
from item2vec.data.synthetic import SyntheticTruth, make_sessions
from item2vec.data.vocab import PAD, ItemVocab

__all__ = [
    "FORMATS",
    "PAD",
    "ItemVocab",
    "PrepareConfig",
    "TIME_UNITS",
    "SessionData",
    "SyntheticTruth",
    "auto_split",
    "describe_split",
    "drop_consecutive_repeats",
    "filter_support",
    "infer_time_unit",
    "item_titles",
    "make_sessions",
    "normalize_frame",
    "prepare",
    "read_events",
    "read_item_metadata",
    "read_table",
    "sessionize",
    "temporal_split",
    "time_outliers",
]
