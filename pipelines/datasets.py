"""The shared real datasets and how each is prepared for the results tables.

Paths are relative to ``../shared/datasets`` beside the checkout (override with
``ITEM2VEC_DATASETS``). The choices, and why:

- diginetica: the SR-GNN sample is tiny and sparse (7,139 items in 12,391 views),
  so items need only 2 views; a time-ordered 70/10/20 split keeps ~130 test sessions.
- online-retail: invoices as sessions (in line order), the last 14 days test and the
  14 before validation; sessions capped at their last 50 items.
- movielens: a user's ratings cut at 60-minute gaps; latest 10% of sessions test,
  10% before validation (22 years of data: days would leave test nearly empty).
- gowalla: a user's check-ins cut at 24-hour gaps; places with >= 3 check-ins.
- amazon-videogames: SASRec's 5-core review sequences (no timestamps: the line order),
  its first 10,000 users (a third of the file: fits as cheap as MovieLens'), one
  session per user, capped at their last 50 items; the last 10% of those users in the
  file are test, the 10% before validation. Not used to choose the defaults
  (``pipelines/defaults.py`` checks them on it).

Each can be prepared two ways: consecutive repeats dropped (the default) or kept
(``keep_repeats=True``, the GRU4Rec / SR-GNN protocol); the prepared data records which.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from item2vec.data import PrepareConfig, SessionData, prepare, read_events, read_item_metadata

ROOT = Path(os.environ.get("ITEM2VEC_DATASETS", Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))

DATASETS: dict[str, dict[str, Any]] = {
    "diginetica": {
        "path": "diginetica-sample/sample_train-item-views.csv",
        "format": "diginetica",
        "prepare": {"min_item_support": 2, "test_fraction": 0.2, "valid_fraction": 0.1},
    },
    "online-retail": {
        "path": "online-retail/by-day",
        "format": "online-retail",
        "prepare": {"test_days": 14, "valid_days": 14, "max_session_length": 50},
    },
    "movielens": {
        "path": "movielens-latest-small",
        "format": "movielens",
        "prepare": {"session_gap_minutes": 60, "test_fraction": 0.1, "valid_fraction": 0.1, "max_session_length": 50},
    },
    "gowalla": {
        "path": "gowalla-checkins-sample/Gowalla_totalCheckins50000.txt",
        "format": "gowalla",
        "prepare": {"session_gap_minutes": 1440, "min_item_support": 3, "test_fraction": 0.1, "valid_fraction": 0.1},
    },
    "amazon-videogames": {
        "path": "amazon-videogames-sasrec/Video.txt",
        "format": "sasrec",
        "first_users": 10_000,
        "prepare": {"test_fraction": 0.1, "valid_fraction": 0.1, "max_session_length": 50},
    },
}


#: Themes of the Online Retail catalogue (gift-ware) for :func:`item2vec.viz.title_categories`:
#: the seasonal and jewellery lines are bought together, so they form clusters.
ONLINE_RETAIL_THEMES: dict[str, list[str]] = {
    "christmas": ["CHRISTMAS", "XMAS", "ADVENT", "SNOWFLAKE", "REINDEER", "SANTA", "NATIVITY", "BAUBLE"],
    "easter": ["EASTER", "EGG", "CHICK", "RABBIT", "BUNNY"],
    "jewellery": ["NECKLACE", "BRACELET", "EARRING", "CHARM", "DIAMANTE", "BROOCH", "HAIRCLIP"],
    "bags": ["BAG", "SHOPPER", "PURSE"],
    "candles & lights": ["CANDLE", "T-LIGHT", "TEALIGHT", "LANTERN", "LIGHT", "NIGHTLIGHT"],
    "party & baking": ["PARTY", "BUNTING", "BALLOON", "NAPKIN", "CASES", "BAKING"],
    "kitchen": ["MUG", "CUP", "SAUCER", "TEACUP", "PLATE", "BOWL", "LUNCH", "JAR", "TIN", "CUTLERY",
                "SPOON", "TEAPOT", "TRAY", "APRON"],
    "cards & wrap": ["CARD", "WRAP", "PAPER", "STICKER", "NOTEBOOK", "PENCIL", "ERASER", "CALENDAR"],
    "garden": ["GARDEN", "PLANT", "WATERING", "BIRD", "PLANTER"],
    "home": ["CUSHION", "FRAME", "MIRROR", "CLOCK", "SIGN", "HOOK", "DOORMAT", "WALL", "DOORSTOP"],
}

#: Keyword tables for :func:`item2vec.viz.title_categories`, per dataset that has one.
THEMES: dict[str, dict[str, list[str]]] = {"online-retail": ONLINE_RETAIL_THEMES}


def load_dataset(name: str, root: Path = ROOT, keep_repeats: bool = False) -> SessionData:
    """Read and prepare one of :data:`DATASETS` (with item metadata where the source has it).

    ``keep_repeats`` keeps consecutive repeats of an item (``PrepareConfig(drop_repeats=False)``).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    spec = DATASETS[name]
    path = root / spec["path"]
    events = read_events(path, spec["format"])
    if "first_users" in spec:  # SASRec ids count users from 1 in the file's order
        events = events.filter(events["user_id"] <= spec["first_users"])
    meta = read_item_metadata(path, spec["format"])
    config = PrepareConfig(**{**spec["prepare"], "drop_repeats": not keep_repeats})
    return prepare(events, config, metadata=meta, name=name)
