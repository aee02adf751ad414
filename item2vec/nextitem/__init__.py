"""The BiLSTM next-item model: config + module, trainer, recommender, checkpoint loader."""

from item2vec.nextitem.distributed import DistributedTrainingError
from item2vec.nextitem.model import NextItemConfig, NextItemModel, pretrained_table
from item2vec.nextitem.recommender import NextItemRecommender, load_next_model
from item2vec.nextitem.train import (
    Examples,
    TrainConfig,
    Trainer,
    TrainResult,
    make_examples,
    resolve_device,
)

__all__ = [
    "DistributedTrainingError",
    "Examples",
    "NextItemConfig",
    "NextItemModel",
    "NextItemRecommender",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "load_next_model",
    "make_examples",
    "pretrained_table",
    "resolve_device",
]
