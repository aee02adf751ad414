"""Item2Vec (skip-gram with negative sampling over sessions) and ItemEmbeddings.

:class:`Item2Vec` is the estimator: its constructor stores hyperparameters and
:meth:`Item2Vec.fit` trains gensim's Word2Vec on sessions, treating each session
as a sentence and each item id as a word. The result is an
:class:`ItemEmbeddings`: only the vectors and the id ↔ row map, small and
independent of the trainer, which answers :meth:`ItemEmbeddings.similar_items`.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from gensim.models import Word2Vec
from gensim.models.callbacks import CallbackAny2Vec

from item2vec._config import DictConfig
from item2vec._io import atomic_dir
from item2vec._progress import tqdm
from item2vec.data.vocab import ItemVocab
from item2vec.exceptions import (
    DataError,
    EmptyDataError,
    NotFittedError,
    OptionError,
)
from item2vec.index import (
    ExactIndex,
    HNSWIndex,
    IndexKind,
    build_index,
    load_index,
    normalize,
    resolve_kind,
)

__all__ = ["Item2Vec", "Item2VecConfig", "ItemEmbeddings"]

FORMAT_VERSION = 2  # 2: checksums.json
KIND = "item2vec.ItemEmbeddings"


# ---------------------------------------------------------------------------
# the serving object
# ---------------------------------------------------------------------------
class ItemEmbeddings:
    """Item vectors and the external-id ↔ row map; answers similar-item queries.

    Parameters
    ----------
    ids : sequence
        External item ids (str or int), one per row of ``vectors``.
    vectors : ndarray, shape (n_items, dim)
    metadata : dict, optional
        Free-form facts saved alongside (training config, data statistics).

    Attributes
    ----------
    index_kind : {"auto", "exact", "ann"}
        The index :meth:`similar_items` uses by default; ``"auto"`` is exact below
        :data:`item2vec.index.ANN_MIN_ITEMS` items and approximate from there up
        (see :meth:`build_index`).
    """

    def __init__(self, ids: Sequence[Any] | np.ndarray, vectors: np.ndarray, metadata: dict[str, Any] | None = None) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise DataError(f"vectors must be a 2-D (n_items, dim) array, got shape {vectors.shape}")
        self.vocab = ids if isinstance(ids, ItemVocab) else ItemVocab(ids)
        if len(self.vocab) != vectors.shape[0]:
            raise DataError(
                f"{len(self.vocab)} ids for {vectors.shape[0]} vectors; expected one id per row"
            )
        if len(self.vocab) == 0:
            raise EmptyDataError("ItemEmbeddings needs at least one item")
        if not np.isfinite(vectors).all():
            raise DataError("vectors contain NaN or infinite values")
        self.vectors = vectors
        self.metadata = dict(metadata or {})
        self.index_kind: IndexKind = "auto"
        self.index_params: dict[str, Any] = {}
        self._indexes: dict[str, ExactIndex | HNSWIndex] = {}
        self._unit: np.ndarray | None = None

    @classmethod
    def from_vectors(
        cls,
        ids: Sequence[Any],
        matrix: np.ndarray,
        metadata: dict[str, Any] | None = None,
        index: IndexKind = "auto",
        **index_params: Any,
    ) -> ItemEmbeddings:
        """Build from any vectors (e.g. another trainer's output).

        Parameters
        ----------
        ids : sequence
            External ids, one per row of ``matrix``.
        matrix : ndarray, shape (n_items, dim)
        metadata : dict, optional
        index : {"auto", "exact", "ann"}
            The default index of :meth:`similar_items`. ``"ann"`` builds the
            approximate index now; the others build lazily on the first query.
        **index_params
            For the approximate index (``M``, ``ef_construction``, ``ef``, ...).
        """
        emb = cls(ids, matrix, metadata=metadata)
        if index == "ann":
            return emb.build_index("ann", **index_params)
        resolve_kind(index, len(emb))  # validate the name
        emb.index_kind, emb.index_params = index, dict(index_params)
        return emb

    # -- basic protocol ------------------------------------------------------
    def __len__(self) -> int:
        return self.vectors.shape[0]

    def __contains__(self, item: object) -> bool:
        return item in self.vocab

    def __repr__(self) -> str:
        return f"ItemEmbeddings(n_items={len(self)}, dim={self.dim})"

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def ids(self) -> np.ndarray:
        return self.vocab.ids

    def row(self, item: object) -> int:
        """Row of one id; :class:`UnknownItemError` (a ``KeyError``) naming it if absent."""
        return self.vocab.index(item) - 1

    def __getitem__(self, item: object) -> np.ndarray:
        return self.vectors[self.row(item)]

    @property
    def unit(self) -> np.ndarray:
        """The vectors scaled to unit length (float32), computed once: every index shares this matrix."""
        if getattr(self, "_unit", None) is None:
            self._unit = normalize(self.vectors)
        return self._unit

    @property
    def index(self) -> ExactIndex | HNSWIndex:
        """The default index (built on first use); see :attr:`index_kind`."""
        return self.get_index(None)

    def get_index(self, kind: IndexKind | None = None) -> ExactIndex | HNSWIndex:
        """The index of ``kind`` (``None``: :attr:`index_kind`), built on first use."""
        resolved = resolve_kind(self.index_kind if kind is None else kind, len(self))
        if resolved not in self._indexes:
            params = self.index_params if resolved == "ann" else {}
            self._indexes[resolved] = build_index(self.unit, resolved, **params)
        return self._indexes[resolved]

    def build_index(self, kind: IndexKind = "ann", **params: Any) -> ItemEmbeddings:
        """Build the ``kind`` index now (replacing one built before) and make it the default.

        Parameters
        ----------
        kind : {"auto", "exact", "ann"}
        **params
            For :class:`~item2vec.index.HNSWIndex`: ``M``, ``ef_construction``,
            ``ef``, ``random_state``, ``num_threads``.

        Returns
        -------
        self
        """
        resolved = resolve_kind(kind, len(self))
        self.index_kind = resolved
        if resolved == "ann":
            self.index_params = dict(params)
        self._indexes[resolved] = build_index(self.unit, resolved, **(params if resolved == "ann" else {}))
        return self

    # -- queries ---------------------------------------------------------------
    def similar_items(
        self,
        items: Any,
        k: int = 10,
        filter_items: Iterable[Any] | None = None,
        missing: Literal["raise", "ignore"] = "raise",
        index: IndexKind | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar (cosine) to each query item.

        Parameters
        ----------
        items : id or list/array of ids
            One external id gives 1-D answers; a list or array gives 2-D answers,
            one row per query, computed as one matrix product.
            A float array is a query vector instead (shape ``(dim,)``: 1-D answers;
            ``(n, dim)``: one row per vector), e.g. ``emb["a"] + emb["b"] - emb["c"]``;
            nothing is excluded from its answer but ``filter_items``.
        k : int
            Number of neighbours (> 0). Fewer come back when the catalogue is
            smaller than ``k + 1``.
        filter_items : iterable of ids, optional
            Ids never to return (unknown ids here are ignored).
        missing : {"raise", "ignore"}
            For the batch form: an unknown query id raises
            :class:`~item2vec.exceptions.UnknownItemError`, or (``"ignore"``) gets a
            row of NaN scores and empty ids (``None``, or -1 for int ids).
        index : {"auto", "exact", "ann"}, optional
            Which index answers: exact brute force, the approximate HNSW graph
            (the ``ann`` extra; built on first use), or ``"auto"`` (approximate
            from :data:`item2vec.index.ANN_MIN_ITEMS` items up). Default:
            :attr:`index_kind`.

        Returns
        -------
        (ids, scores) : ndarrays
            Shape ``(k,)`` for one id, ``(len(items), k)`` for a batch; scores
            are cosine similarities, best first. The query item is never in its
            own answer, nor is any of ``filter_items``. A single answer that the
            filter leaves with fewer than ``k`` items is shorter; a batch row is
            padded at its end with :attr:`sentinel` (-1 for int ids, ``None``
            otherwise) scored ``-inf``.

        Raises
        ------
        UnknownItemError
            (a ``KeyError``) naming the first unknown query id.
        ValueError
            If ``k <= 0`` or ``missing`` is not a known policy.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if missing not in ("raise", "ignore"):
            raise ValueError(f"missing must be 'raise' or 'ignore', got {missing!r}")
        if isinstance(items, np.ndarray) and items.dtype.kind == "f":  # query vectors, not ids
            return self._similar_to_vectors(items, k, filter_items, index)
        single = not isinstance(items, (list, tuple, np.ndarray)) or (
            isinstance(items, np.ndarray) and items.ndim == 0
        )
        k_eff = min(k, len(self) - 1)
        if k_eff <= 0:
            raise ValueError(f"the catalogue has {len(self)} item(s): no neighbours to return")
        exclude_all = None
        if filter_items is not None:
            exclude_all = self.vocab.indices(filter_items, missing="drop") - 1
        ids_all = self.vocab.ids
        if single:  # the latency path: one dict lookup, one index query
            row = self.vocab.index(items) - 1
            found, sc = self.get_index(index).neighbours(np.array([row]), k_eff, exclude_all=exclude_all)
            found, sc = found[0], sc[0]
            if len(sc) and not np.isfinite(sc[-1]):  # filters left fewer than k: -inf places sort last
                valid = np.isfinite(sc)
                found, sc = found[valid], sc[valid]
            return ids_all[found], sc
        queries = list(items)
        rows = self.vocab.indices(queries, missing=missing if missing == "raise" else "pad") - 1
        known = rows >= 0
        found_rows, scores = self.get_index(index).neighbours(rows[known], k_eff, exclude_all=exclude_all)
        out_ids, out_scores = self._padded(found_rows, scores)
        # unknown queries (missing="ignore") get rows of sentinel ids and NaN scores
        if not known.all():
            full_ids = np.full((len(queries), k_eff), self.sentinel, dtype=ids_all.dtype)
            full_scores = np.full((len(queries), k_eff), np.nan, dtype=np.float32)
            full_ids[known], full_scores[known] = out_ids, out_scores
            out_ids, out_scores = full_ids, full_scores
        return out_ids, out_scores

    @property
    def sentinel(self) -> Any:
        """The id that fills the empty places of a batch answer: -1 for int ids, else ``None``."""
        return -1 if self.vocab.ids.dtype.kind in "iu" else None

    def _padded(self, rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index rows to ids; places an index left empty (score ``-inf``) get :attr:`sentinel`."""
        ids = self.vocab.ids[rows]
        empty = np.isneginf(scores)
        if empty.any():
            ids = ids.copy()
            ids[empty] = self.sentinel
        return ids, scores

    # -- persistence -------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``vectors.npy``, ``ids.json``, ``meta.json``, the index and ``checksums.json``, atomically.

        The approximate index goes to ``index/`` when one was built or when the
        default index resolves to it (large catalogues: the build happens here,
        in the batch job, not in the server that loads the model). Nothing is
        pickled; ``checksums.json`` holds the sha256 of every file.
        """
        from item2vec._io import write_checksums, write_meta

        ann = "ann" in self._indexes or resolve_kind(self.index_kind, len(self)) == "ann"
        with atomic_dir(path, marker="vectors.npy") as tmp:
            np.save(tmp / "vectors.npy", np.ascontiguousarray(self.vectors), allow_pickle=False)
            (tmp / "ids.json").write_text(json.dumps(self.vocab.to_list()))
            if ann:
                self.get_index("ann").save(tmp / "index")  # type: ignore[union-attr]
            write_meta(
                tmp / "meta.json", KIND, FORMAT_VERSION,
                n_items=len(self),
                dim=self.dim,
                id_type="int" if self.ids.dtype.kind in "iu" else "str",
                index_kind=self.index_kind,
                metadata=self.metadata,
            )
            write_checksums(tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], mmap: bool = False) -> ItemEmbeddings:
        """Read a directory written by :meth:`save` (``mmap=True`` maps the vectors).

        Every file is checked against ``checksums.json`` before it is read, and
        the files against each other (one unique id per row, ``n_items`` and
        ``dim`` as ``meta.json`` says).

        Raises
        ------
        FileNotFoundError
            If ``path`` holds no ``meta.json``.
        FormatVersionError
            If the directory was written in a format this item2vec does not read.
        CorruptModelError
            Naming the file that fails its checksum or does not match the others.
        """
        from item2vec._io import read_meta, verify_checksums
        from item2vec.exceptions import CorruptModelError

        p = Path(path)
        if not (p / "meta.json").exists():
            raise FileNotFoundError(f"{str(p)!r} is not an item2vec model directory (no meta.json)")
        meta = read_meta(p / "meta.json", KIND, (1, FORMAT_VERSION), what="embeddings")
        version = meta["format_version"]
        if version == FORMAT_VERSION:  # version 1 had no checksums
            verify_checksums(p)
        try:
            vectors = np.load(p / "vectors.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise CorruptModelError(f"{p / 'vectors.npy'}: not a float array saved by numpy ({e})") from None
        if vectors.ndim != 2 or vectors.shape[0] == 0 or vectors.dtype.kind != "f":
            raise CorruptModelError(
                f"{p / 'vectors.npy'}: expected a non-empty 2-D float array, got shape {vectors.shape} {vectors.dtype}"
            )
        id_list = _read_json(p / "ids.json", list)
        n_items, dim = meta.get("n_items", vectors.shape[0]), meta.get("dim", vectors.shape[1])
        if len(id_list) != n_items:
            raise CorruptModelError(f"{p / 'ids.json'}: {len(id_list)} ids, meta.json says n_items={n_items}")
        if vectors.shape != (n_items, dim):
            raise CorruptModelError(
                f"{p / 'vectors.npy'}: shape {vectors.shape}, meta.json says ({n_items}, {dim})"
            )
        try:
            ids = ItemVocab.from_list(id_list)
        except DataError as e:
            raise CorruptModelError(f"{p / 'ids.json'}: {e}") from None
        emb = cls(ids, vectors, metadata=meta.get("metadata"))
        emb.index_kind = meta.get("index_kind", "auto")
        if (p / "index" / "index.json").exists():
            try:
                idx = load_index(p / "index", emb.unit)
            except ImportError as e:  # saved with the ann extra, loaded without it
                warnings.warn(f"{p}: the saved approximate index is not loaded ({e}); using exact search", stacklevel=2)
                emb.index_kind = "exact"
            else:
                emb._indexes[idx.kind] = idx
                emb.index_params = idx.params()
        return emb

    def to_word2vec_format(self, path: str | os.PathLike[str]) -> Path:
        """Export in the word2vec text format (``n dim`` header, then ``id v1 v2 ...``), atomically.

        Written by gensim's ``KeyedVectors.save_word2vec_format`` (each value in full
        float32 precision); read back with ``KeyedVectors.load_word2vec_format``.

        Raises
        ------
        DataError
            If an id is empty or has whitespace: the format cannot hold it.
        """
        import tempfile

        from gensim.models import KeyedVectors

        from item2vec._io import atomic_file

        keys = [str(item) for item in self.vocab.to_list()]
        for item, key in zip(self.vocab.to_list(), keys, strict=True):
            if any(c.isspace() for c in key) or not key:
                raise DataError(f"id {item!r} has whitespace; the word2vec text format cannot hold it")
        # keyed by the text written, not the ids (to_keyed_vectors): gensim writes int keys
        # 0, 1, ... that equal their row twice (a Doc2Vec path of save_word2vec_format)
        kv = KeyedVectors(vector_size=self.dim, count=0, dtype=np.float32)
        kv.add_vectors(keys, np.asarray(self.vectors, dtype=np.float32))
        kv.allocate_vecattrs(["count"], [np.int64])  # all 0: rows kept in order, without gensim's warning
        p = Path(path)
        with tempfile.TemporaryDirectory() as tmp, atomic_file(p, mode="wb") as fh:
            kv.save_word2vec_format(str(Path(tmp) / "vectors.txt"), binary=False)
            fh.write((Path(tmp) / "vectors.txt").read_bytes())
        return p

    # -- vectors that travel: gensim, the TensorFlow Embedding Projector -------------
    def _similar_to_vectors(
        self, vectors: np.ndarray, k: int, filter_items: Iterable[Any] | None, index: IndexKind | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`similar_items` for a query vector (1-D) or a batch of them (2-D); nothing is excluded."""
        q = np.asarray(vectors, dtype=np.float32)
        if q.ndim not in (1, 2) or q.shape[-1] != self.dim:
            raise DataError(
                f"a query vector must have shape ({self.dim},) or (n, {self.dim}) for these {self.dim}-d "
                f"embeddings, got shape {q.shape}"
            )
        if not np.isfinite(q).all():
            raise DataError("the query vector holds NaN or infinite values")
        exclude_all = None if filter_items is None else self.vocab.indices(filter_items, missing="drop") - 1
        rows, scores = self.get_index(index).search(np.atleast_2d(q), min(k, len(self)), exclude_all=exclude_all)
        if q.ndim == 2:
            return self._padded(rows, scores)
        found = self.vocab.ids[rows]
        valid = np.isfinite(scores[0])  # filters that left fewer than k items: -inf places sort last
        return found[0][valid], scores[0][valid]

    def to_keyed_vectors(self) -> Any:
        """The vectors as a gensim :class:`~gensim.models.KeyedVectors`, keyed by the ids as they are.

        gensim then answers ``most_similar(positive=[...], negative=[...])``,
        ``similar_by_vector`` and ``n_similarity`` on item ids. Int ids stay ints
        (``kv.most_similar(85123)``); note that gensim reads an int that is *not* a
        key as a row number (``kv[7]`` is row 7 when 7 is no id, and ``7 in kv`` is
        true), so test an unsure int with ``7 in kv.key_to_index``.

        Returns
        -------
        gensim.models.KeyedVectors
            A copy: changing it leaves these embeddings alone.
        """
        from gensim.models import KeyedVectors

        kv = KeyedVectors(vector_size=self.dim, count=0, dtype=np.float32)
        kv.add_vectors(self.vocab.to_list(), np.array(self.vectors, dtype=np.float32, copy=True))
        return kv

    @classmethod
    def from_keyed_vectors(
        cls,
        kv: Any,
        id_type: type | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ItemEmbeddings:
        """Build from gensim vectors: a ``KeyedVectors`` or a model holding one as ``.wv`` (Word2Vec).

        Parameters
        ----------
        kv : gensim.models.KeyedVectors or gensim.models.Word2Vec
        id_type : {None, int, str}
            ``None`` keeps the keys as they are; ``int`` turns string keys such as
            ``"85123"`` (the word2vec text format, a Word2Vec trained on
            ``str(id)``) back into int ids; ``str`` makes every key a string.
        metadata : dict, optional

        Raises
        ------
        TypeError
            If ``kv`` is not gensim vectors, or ``id_type`` is not None, int or str.
        DataError
            If ``id_type=int`` and a key is not an integer, or keys collide once
            converted (``1`` and ``"1"`` with ``id_type=str``).
        EmptyDataError
            If ``kv`` holds no vectors.
        """
        from gensim.models import KeyedVectors

        wv = kv.wv if isinstance(getattr(kv, "wv", None), KeyedVectors) else kv
        if not isinstance(wv, KeyedVectors):
            raise TypeError(
                f"from_keyed_vectors expects gensim KeyedVectors or a model with .wv (Word2Vec), "
                f"got {type(kv).__name__}"
            )
        if id_type not in (None, int, str):
            raise TypeError(f"id_type must be None, int or str, got {id_type!r}")
        keys = list(wv.index_to_key)
        if id_type is int:
            for key in keys:
                if not (isinstance(key, (int, np.integer)) or (isinstance(key, str) and key.strip().lstrip("-").isdigit())):
                    raise DataError(f"id_type=int: key {key!r} of the gensim vectors is not an integer")
            keys = [int(key) for key in keys]
        elif id_type is str:
            keys = [str(key) for key in keys]
        if not keys:
            raise EmptyDataError("the gensim vectors hold no keys; ItemEmbeddings needs at least one item")
        return cls(keys, np.array(wv.vectors[: len(keys)], dtype=np.float32, copy=True), metadata=metadata)

    def to_projector(
        self,
        path: str | os.PathLike[str],
        titles: Mapping[Any, str] | None = None,
        categories: Mapping[Any, str] | None = None,
    ) -> tuple[Path, Path]:
        """Write ``vectors.tsv`` and ``metadata.tsv`` for the TensorFlow Embedding Projector.

        Load both at https://projector.tensorflow.org ("Load"), or in TensorBoard.
        ``vectors.tsv`` has one tab-separated row of floats per item;
        ``metadata.tsv`` the matching rows: ``item_id``, ``title`` and
        ``category`` under a header when ``titles`` or ``categories`` are given,
        else the bare ids without a header (the projector's rule for one column).
        Items without a title or category get an empty cell; tabs and newlines in
        them become spaces. Both files are written atomically.

        Parameters
        ----------
        path : directory
            Created when absent; other files in it are left alone.
        titles, categories : mapping, optional
            ``item_id -> text`` (e.g. :meth:`SessionData.titles`).

        Returns
        -------
        (vectors_path, metadata_path)
        """
        from item2vec._io import atomic_file

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_file(out / "vectors.tsv") as fh:
            for vec in self.vectors:
                fh.write("\t".join(f"{x:.6g}" for x in vec) + "\n")
        columns = [("title", titles), ("category", categories)]
        columns = [(name, m) for name, m in columns if m is not None]
        with atomic_file(out / "metadata.tsv") as fh:
            if columns:
                fh.write("\t".join(["item_id"] + [name for name, _ in columns]) + "\n")
            for item in self.vocab.to_list():
                cells = [item] + [m.get(item, "") for _, m in columns]
                fh.write("\t".join(_tsv_cell(c) for c in cells) + "\n")
        return out / "vectors.tsv", out / "metadata.tsv"


def _tsv_cell(value: Any) -> str:
    """One cell of a projector TSV: tabs, newlines and runs of spaces become one space."""
    return " ".join(str("" if value is None else value).split())


# ---------------------------------------------------------------------------
# the estimator

def _read_json(path: Path, kind: type) -> Any:
    """A JSON file of a model directory, as ``kind``; :class:`CorruptModelError` naming it otherwise."""
    from item2vec.exceptions import CorruptModelError

    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CorruptModelError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(out, kind):
        raise CorruptModelError(f"{path}: expected a JSON {kind.__name__}, got {type(out).__name__}")
    return out

# ---------------------------------------------------------------------------
@dataclass
class Item2VecConfig(DictConfig):
    """Item2Vec hyperparameters; round-trips to a flat dict (MLflow params, config files).

    ``window=None`` means the whole session is the context (item2vec, Barkan &
    Koenigstein 2016): the window is set to the longest session and, with
    ``shrink_windows=False``, every pair of items in a session is a training pair.

    The defaults were chosen on the validation splits of four real logs
    (``python -m pipelines.tune``, see the README): against gensim-like settings
    (whole session, 64-d, 5 negatives, ``ns_exponent=0.75``, 10 epochs) they lift
    validation MRR@20 from 0.035 to 0.156 on Diginetica and from 0.066 to 0.099 on
    Gowalla, tie on Online Retail (0.158 vs 0.157) and lose on MovieLens (0.024 to
    0.016). With ``shrink_windows=False`` a window of 5 is the whole session for
    sessions of up to 6 items; the whole-session window scored the same on Online
    Retail at twice the training time.

    ``vector_size`` is 32 since ``python -m pipelines.defaults`` (issue #14): at 128
    dimensions MovieLens kept only half of its tuned HR@20; at 32 every shared log,
    including Amazon Video Games, which played no part in the choice, keeps at least
    0.85 of it, and no other single knob did that without costing Diginetica
    (see the README, "Defaults without tuning").
    """

    _label = "Item2Vec option"

    vector_size: int = 32
    window: int | None = 5
    negative: int = 10
    ns_exponent: float = 1.0
    sample: float = 1e-3
    epochs: int = 40
    alpha: float = 0.025
    min_alpha: float = 0.0001
    min_count: int = 1
    shrink_windows: bool = False
    workers: int = 1
    random_state: int = 0

    def __post_init__(self) -> None:
        """Refuse values that cannot train (they used to save the random initial vectors)."""
        ints = {"vector_size": 1, "negative": 1, "epochs": 1, "min_count": 1, "workers": 1, "random_state": 0}
        for name, low in ints.items():
            _check_option(name, getattr(self, name), int, low)
        if self.window is not None:
            _check_option("window", self.window, int, 1, hint="; None (CLI: --window 0) means the whole session")
        _check_option("alpha", self.alpha, float, 0.0, low_open=True)
        _check_option("min_alpha", self.min_alpha, float, 0.0)
        if self.min_alpha > self.alpha:
            raise OptionError(
                f"Item2Vec: min_alpha must be <= alpha (the learning rate decays from alpha to min_alpha), "
                f"got min_alpha={self.min_alpha} and alpha={self.alpha}", options=("min_alpha", "alpha"),
            )
        _check_option("sample", self.sample, float, 0.0)
        _check_option("ns_exponent", self.ns_exponent, float, None)
        if not isinstance(self.shrink_windows, (bool, np.bool_)):
            raise OptionError(f"Item2Vec: shrink_windows must be True or False, got {self.shrink_windows!r}",
                              options=("shrink_windows",))


def _check_option(
    name: str, v: Any, kind: type, low: float | None, low_open: bool = False, hint: str = ""
) -> None:
    """Type and lower bound of one hyperparameter; :class:`OptionError` naming it otherwise."""
    types: tuple[type, ...] = (int, np.integer) if kind is int else (int, float, np.integer, np.floating)
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, types):
        what = "an integer" if kind is int else "a number"
        raise OptionError(f"Item2Vec: {name} must be {what}, got {v!r} ({type(v).__name__}){hint}", options=(name,))
    if not np.isfinite(v) or (low is not None and (v < low or (low_open and v == low))):
        bound = "" if low is None else (f" > {low:g}" if low_open else f" >= {low:g}")
        what = "an integer" if kind is int else "a finite number"
        raise OptionError(f"Item2Vec: {name} must be {what}{bound}, got {v!r}{hint}", options=(name,))



class _Tokens:
    """A re-iterable view of sessions as lists of string tokens (gensim's words)."""

    def __init__(self, sessions: Iterable[Sequence[Any]], token: dict[Any, str]) -> None:
        self.sessions, self.token = sessions, token

    def __iter__(self) -> Iterator[list[str]]:
        tok = self.token
        for s in self.sessions:
            yield [tok[x] if x in tok else _add(tok, x) for x in _as_list(s)]


def _as_list(s: Any) -> list[Any]:
    if isinstance(s, np.ndarray):
        return s.tolist()
    if _is_frame(s) and type(s).__name__ == "Series":  # pandas and polars both have to_list
        return s.to_list()
    if isinstance(s, (str, bytes)) or not hasattr(s, "__iter__") or _is_frame(s):
        tail = "; a string is not a session of its characters" if isinstance(s, (str, bytes)) else ""
        raise TypeError(
            f"each session must be a list or array of item ids, got a {type(s).__name__} ({s!r:.60}){tail}"
        )
    return list(s)


def _is_frame(x: Any) -> bool:
    """A pandas or polars DataFrame / Series (checked by module, without importing pandas)."""
    mod = type(x).__module__
    return (mod.startswith("pandas") or mod.startswith("polars")) and type(x).__name__ in (
        "DataFrame", "Series", "LazyFrame"
    )


def _check_sessions_type(sessions: Any) -> None:
    if _is_frame(sessions) and type(sessions).__name__ != "Series":  # a Series of lists is fine
        kind = f"a {type(sessions).__module__.split('.')[0]} {type(sessions).__name__}"
        raise TypeError(
            f"Item2Vec.fit expects sessions as a list of lists of item ids, got {kind}. For an event "
            "frame (one row per event) run item2vec.prepare(frame, item_col=..., session_col=..., "
            "time_col=...) and fit on data.decode(data.train); or group it yourself, e.g. "
            "df.groupby('session_id')['item_id'].agg(list).tolist() in pandas"
        )
    if isinstance(sessions, (str, bytes, dict)) or not hasattr(sessions, "__iter__"):
        raise TypeError(
            f"Item2Vec.fit expects sessions as a list of lists of item ids, got {type(sessions).__name__}"
        )


def _add(tok: dict[Any, str], x: Any) -> str:
    if x is None or (isinstance(x, float)):
        raise DataError(f"item ids must be str or int, got {x!r} ({type(x).__name__})")
    t = str(x)
    tok[x] = t
    return t


class Item2Vec:
    """Skip-gram item embeddings from sessions (gensim Word2Vec underneath).

    The constructor only stores hyperparameters (see :class:`Item2VecConfig`),
    ``show_progress`` (a tqdm bar over epochs) and ``compute_loss`` (gensim's loss
    tracking, shown in the bar and kept in ``loss_history_``; about 9% of the
    training time, so batch jobs that do not read it can turn it off);
    :meth:`fit` does the work and sets ``embeddings_``, ``model_`` (the gensim
    model, kept for warm starts) and ``loss_history_``.

    Examples
    --------
    >>> model = Item2Vec(vector_size=32, epochs=5).fit([["a", "b", "c"], ["b", "c", "d"]] * 50)
    >>> ids, scores = model.embeddings_.similar_items("b", k=2)
    """

    def __init__(
        self,
        config: Item2VecConfig | None = None,
        show_progress: bool = True,
        compute_loss: bool = True,
        **params: Any,
    ) -> None:
        base = (config or Item2VecConfig()).to_dict()
        base.update(params)
        self.config = Item2VecConfig.from_dict(base)
        self.show_progress = show_progress
        self.compute_loss = compute_loss

    def get_params(self) -> dict[str, Any]:
        return self.config.to_dict()

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.get_params().items() if getattr(Item2VecConfig(), k) != v}
        return f"Item2Vec({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    @property
    def embeddings_(self) -> ItemEmbeddings:
        if not hasattr(self, "_embeddings"):
            raise NotFittedError("this Item2Vec is not fitted yet; call fit(sessions) first")
        return self._embeddings

    def fit(self, sessions: Iterable[Sequence[Any]], init: ItemEmbeddings | None = None) -> Item2Vec:
        """Train on sessions.

        Parameters
        ----------
        sessions : list or re-iterable of sequences of item ids
            Each session is a sequence of external ids (str or int). A one-shot
            iterator or generator is refused: training reads the data
            ``epochs + 1`` times.
        init : ItemEmbeddings, optional
            Warm start: items present in ``init`` start from its vectors (same
            dimension required), so the new vector space stays comparable.

        Returns
        -------
        self

        Raises
        ------
        TypeError
            For a one-shot iterator/generator, a DataFrame or Series (pass lists of
            ids: ``prepare(frame)`` then ``data.decode(data.train)``), a string, or
            a session that is a string or not a sequence.
        EmptyDataError
            If no session has two or more items.
        """
        _check_sessions_type(sessions)
        if iter(sessions) is sessions:
            raise TypeError(
                "sessions is a one-shot iterator or generator, but Item2Vec reads the sessions "
                f"{self.config.epochs + 1} times (vocabulary + each epoch). Pass a list "
                "(list(sessions)) or an object whose __iter__ starts over on every call."
            )
        cfg = self.config
        token: dict[Any, str] = {}
        if isinstance(sessions, Sequence):
            corpus: Any = list(_Tokens(sessions, token))  # convert once, reuse every epoch
        else:
            corpus = _Tokens(sessions, token)
        n_pairs_sessions, max_len, n_words = 0, 0, 0
        for s in corpus:
            n_words += len(s)
            if len(s) >= 2:
                n_pairs_sessions += 1
            max_len = max(max_len, len(s))
        if n_pairs_sessions == 0:
            raise EmptyDataError(
                "Item2Vec.fit: expected at least one session with 2 or more items, found none"
            )
        back = {t: x for x, t in token.items()}
        if len(back) != len(token):
            raise DataError("item ids collide once written as strings (e.g. 1 and '1'); use one id type")
        window = cfg.window if cfg.window is not None else max(max_len - 1, 1)
        w2v = Word2Vec(
            vector_size=cfg.vector_size,
            window=window,
            min_count=cfg.min_count,
            sg=1,
            hs=0,
            negative=cfg.negative,
            ns_exponent=cfg.ns_exponent,
            sample=cfg.sample,
            alpha=cfg.alpha,
            min_alpha=cfg.min_alpha,
            seed=cfg.random_state,
            workers=cfg.workers,
            shrink_windows=cfg.shrink_windows,
            compute_loss=self.compute_loss,
        )
        t0 = time.perf_counter()
        w2v.build_vocab(corpus)
        if init is not None:
            self._warm_start(w2v, init, back)
        callbacks = [_Progress(cfg.epochs, self.show_progress)]
        w2v.train(
            corpus,
            total_examples=w2v.corpus_count,
            total_words=w2v.corpus_total_words,
            epochs=cfg.epochs,
            callbacks=callbacks,
            compute_loss=self.compute_loss,
        )
        self.fit_seconds_ = time.perf_counter() - t0
        self.loss_history_ = callbacks[0].losses
        self.words_per_second_ = n_words * cfg.epochs / max(self.fit_seconds_, 1e-9)
        self.model_ = w2v
        keys = [back[t] for t in w2v.wv.index_to_key]
        self._embeddings = ItemEmbeddings(
            keys, w2v.wv.vectors.copy(), metadata={"item2vec": cfg.to_dict(), "window_used": window}
        )
        return self

    @staticmethod
    def _warm_start(w2v: Any, init: ItemEmbeddings, back: dict[str, Any]) -> None:
        if init.dim != w2v.wv.vector_size:
            raise DataError(f"warm start needs vectors of size {w2v.wv.vector_size}, got {init.dim}")
        for i, t in enumerate(w2v.wv.index_to_key):
            item = back[t]
            if item in init:
                w2v.wv.vectors[i] = init[item]


class _Progress(CallbackAny2Vec):
    """gensim callback: a tqdm bar over epochs with the epoch's loss in the postfix."""

    def __init__(self, epochs: int, show: bool) -> None:
        self.bar = tqdm(total=epochs, desc="item2vec", unit="epoch", disable=not show, leave=False)
        self.losses: list[float] = []
        self._last = 0.0

    def on_epoch_end(self, model: Any) -> None:
        total = float(model.get_latest_training_loss())
        self.losses.append(total - self._last)  # gensim accumulates the loss over epochs
        self._last = total
        self.bar.set_postfix(loss=f"{self.losses[-1]:.4g}")
        self.bar.update(1)

    def on_train_end(self, model: Any) -> None:
        self.bar.close()
