"""ItemVocab: one object that maps external item ids to dense row indices."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np

from item2vec.exceptions import DataError, UnknownItemError

__all__ = ["ItemVocab", "PAD"]

#: Index 0 is reserved for padding in every int-encoded session.
PAD = 0

MissingPolicy = Literal["raise", "drop", "pad"]


class ItemVocab:
    """Map external item ids (str or int, as the user gave them) to indices 1..n.

    Index 0 is reserved for padding (:data:`PAD`), so ``len(vocab) == n`` items
    occupy indices ``1..n`` and an embedding table for them has ``n + 1`` rows.

    Parameters
    ----------
    ids : sequence
        Distinct external ids, in the order that defines their indices.

    Raises
    ------
    DataError
        If ``ids`` has duplicates or null values.
    """

    def __init__(self, ids: Sequence[Any] | np.ndarray) -> None:
        if isinstance(ids, np.ndarray):
            arr = ids
        else:
            items = list(ids)
            if items and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in items):
                arr = np.asarray(items, dtype=np.int64)
            else:  # object, not numpy's fixed-width str (which drops trailing NULs)
                arr = np.empty(len(items), dtype=object)
                arr[:] = items
                if any(isinstance(x, float) for x in items):
                    raise DataError("item ids must be str or int, got floats")
        if arr.dtype.kind == "f":
            raise DataError(f"item ids must be str or int, got floats (dtype {arr.dtype})")
        if arr.dtype.kind not in "iuUO":
            raise DataError(f"item ids must be str or int, got dtype {arr.dtype}")
        if arr.dtype.kind == "U":
            arr = arr.astype(object)
        self._ids = arr
        self._index: dict[Any, int] = {}
        for i, item in enumerate(arr.tolist(), start=1):
            if item is None:
                raise DataError("item ids must not be null; found None in the vocabulary")
            if item in self._index:
                raise DataError(f"duplicate item id {item!r} in the vocabulary")
            self._index[item] = i

    # -- basic protocol -------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item: object) -> bool:
        return self._key(item) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ItemVocab) and self._ids.tolist() == other._ids.tolist()

    def __repr__(self) -> str:
        head = ", ".join(repr(x) for x in self._ids[:3].tolist())
        return f"ItemVocab(n={len(self)}, ids=[{head}{', ...' if len(self) > 3 else ''}])"

    @property
    def ids(self) -> np.ndarray:
        """External ids in index order; ``ids[i - 1]`` has index ``i``."""
        return self._ids

    @property
    def size(self) -> int:
        """Rows needed by a table indexed with this vocabulary (``len + 1``, for padding)."""
        return len(self) + 1

    @staticmethod
    def _key(item: object) -> object:
        # numpy scalars hash like Python scalars, but normalise them to be safe.
        return item.item() if isinstance(item, np.generic) else item

    # -- lookups --------------------------------------------------------
    def index(self, item: object) -> int:
        """Index of one external id.

        Raises
        ------
        UnknownItemError
            (a ``KeyError``) naming the id when it is not in the vocabulary.
        """
        try:
            return self._index[self._key(item)]
        except (KeyError, TypeError):
            kind = "integer" if self._ids.dtype.kind in "iu" else "string"
            raise UnknownItemError(item, f"unknown item id {item!r} ({type(item).__name__}): "
                                         f"this catalogue holds {kind} ids and does not know it") from None

    def indices(self, items: Iterable[Any], missing: MissingPolicy = "raise") -> np.ndarray:
        """Indices of many external ids.

        Parameters
        ----------
        items : iterable
            External ids.
        missing : {"raise", "drop", "pad"}
            What to do with an unknown id: raise :class:`UnknownItemError`, drop it
            from the answer, or map it to :data:`PAD` (0).

        Returns
        -------
        numpy.ndarray of int64
        """
        if missing not in ("raise", "drop", "pad"):
            raise ValueError(f"missing must be 'raise', 'drop' or 'pad', got {missing!r}")
        out: list[int] = []
        get = self._index.get
        for item in items:
            idx = get(self._key(item), 0)
            if idx == 0:
                if missing == "raise":
                    raise UnknownItemError(item)
                if missing == "drop":
                    continue
            out.append(idx)
        return np.asarray(out, dtype=np.int64)

    def lookup(self, indices: Iterable[int] | np.ndarray) -> np.ndarray:
        """External ids of indices (1..n). Index 0 (padding) maps to ``None``."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() > len(self)):
            raise IndexError(f"indices must lie in 0..{len(self)}, got {idx.min()}..{idx.max()}")
        if (idx > 0).all():  # the common case: no padding, keep the ids' dtype
            return self._ids[idx - 1]
        out = np.empty(idx.shape, dtype=object)  # O(len(indices)), not O(catalogue)
        known = idx > 0
        out[known] = self._ids[idx[known] - 1]
        out[~known] = None
        return out

    # -- serialisation --------------------------------------------------
    def to_list(self) -> list[Any]:
        return self._ids.tolist()

    @classmethod
    def from_list(cls, ids: list[Any]) -> ItemVocab:
        return cls(ids)
