"""Data layer: readers, sessionizing and splitting, the vocabulary, synthetic logs."""

from item2vec.data.readers import FORMATS, read_events, read_item_metadata, read_table
from item2vec.data.sessions import (
    PrepareConfig,
    SessionData,
    drop_consecutive_repeats,
    filter_support,
    prepare,
    sessionize,
    temporal_split,
)
from item2vec.data.synthetic import SyntheticTruth, make_sessions
from item2vec.data.vocab import PAD, ItemVocab

__all__ = [
    "FORMATS",
    "PAD",
    "ItemVocab",
    "PrepareConfig",
    "SessionData",
    "SyntheticTruth",
    "drop_consecutive_repeats",
    "filter_support",
    "make_sessions",
    "prepare",
    "read_events",
    "read_item_metadata",
    "read_table",
    "sessionize",
    "temporal_split",
]
