"""item2vec: item embeddings from session logs, similar items, next-item models.

The public names are re-exported here; see the README for a tour.
"""

from item2vec.base import Recommender
from item2vec.data import (
    ItemVocab,
    PrepareConfig,
    SessionData,
    make_sessions,
    prepare,
    read_events,
)
from item2vec.embeddings import Item2Vec, Item2VecConfig, ItemEmbeddings
from item2vec.evaluation import evaluate, evaluate_many
from item2vec.exceptions import (
    DataError,
    EmptyDataError,
    Item2VecError,
    MissingColumnError,
    NotFittedError,
    UnknownFormatError,
    UnknownItemError,
)
from item2vec.recommenders import Item2VecRecommender, make_recommender

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "EmptyDataError",
    "Item2Vec",
    "Item2VecConfig",
    "Item2VecError",
    "Item2VecRecommender",
    "ItemEmbeddings",
    "ItemVocab",
    "MissingColumnError",
    "NotFittedError",
    "PrepareConfig",
    "Recommender",
    "SessionData",
    "UnknownFormatError",
    "UnknownItemError",
    "evaluate",
    "evaluate_many",
    "make_recommender",
    "make_sessions",
    "prepare",
    "read_events",
]
