"""One round trip for every config dataclass: to a flat dict and back, refusing unknown keys.

The same dict goes to ``mlflow.log_params``, the pipeline config files and the
checkpoints, so an unknown key is a typo to report, not to drop.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self

__all__ = ["DictConfig"]


class DictConfig:
    """Mixin for ``@dataclass`` configs; ``_label`` names the options in error messages."""

    _label: ClassVar[str] = "option"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown {cls._label}(s) {sorted(unknown)}; expected some of {sorted(names)}")
        return cls(**d)
