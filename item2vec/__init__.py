"""item2vec: item embeddings from session logs, similar items, next-item models.

The public names are re-exported here and imported on first use (PEP 562), so
``import item2vec`` and the command line start fast; see the README for a tour.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Recommender": "item2vec.base",
    "ItemVocab": "item2vec.data",
    "PrepareConfig": "item2vec.data",
    "SessionData": "item2vec.data",
    "make_sessions": "item2vec.data",
    "prepare": "item2vec.data",
    "read_events": "item2vec.data",
    "Item2Vec": "item2vec.embeddings",
    "Item2VecConfig": "item2vec.embeddings",
    "ItemEmbeddings": "item2vec.embeddings",
    "evaluate": "item2vec.evaluation",
    "DataError": "item2vec.exceptions",
    "EmptyDataError": "item2vec.exceptions",
    "Item2VecError": "item2vec.exceptions",
    "MissingColumnError": "item2vec.exceptions",
    "NotFittedError": "item2vec.exceptions",
    "OutputExistsError": "item2vec.exceptions",
    "UnknownFormatError": "item2vec.exceptions",
    "UnknownItemError": "item2vec.exceptions",
    "Item2VecRecommender": "item2vec.recommenders",
    "make_recommender": "item2vec.recommenders",
    "BASELINES": "item2vec.baselines",
    "ServedModel": "item2vec.registry",
    "load": "item2vec.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'item2vec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

