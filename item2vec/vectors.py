"""Item vectors that answer similar-item queries: :class:`ItemEmbeddings`.

An :class:`ItemEmbeddings` is the vectors and the external-id ↔ row map, small and
independent of the trainer (:class:`~item2vec.embeddings.Item2Vec` makes one; any
other vectors can too). It holds at most one search index, its strategy for
:meth:`~ItemEmbeddings.similar_items` (as gensim's ``most_similar(indexer=...)``
takes one): exact below :data:`item2vec.index.ANN_MIN_ITEMS` items and the
approximate HNSW graph from there up, unless :meth:`~ItemEmbeddings.use_index`
says otherwise. Saved directories are read by :meth:`ItemEmbeddings.load`.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from item2vec._io import atomic_dir
from item2vec.data.vocab import ItemVocab
from item2vec.exceptions import DataError, EmptyDataError
from item2vec.index import (
    ExactIndex,
    HNSWIndex,
    IndexKind,
    build_index,
    load_index,
    normalize,
    resolve_kind,
)

__all__ = ["ItemEmbeddings"]

FORMAT_VERSION = 2  # 2: checksums.json
KIND = "item2vec.ItemEmbeddings"


class ItemEmbeddings:
    """Item vectors and the external-id ↔ row map; answers similar-item queries.

    Parameters
    ----------
    ids : sequence
        External item ids (str or int), one per row of ``vectors``.
    vectors : ndarray, shape (n_items, dim)
    metadata : dict, optional
        Free-form facts saved alongside (training config, data statistics).

    Notes
    -----
    The search index is one strategy, held by the object: ``"auto"`` until
    :meth:`use_index` chooses another (see :attr:`index`). Every query goes to it.
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
        self._index_kind: IndexKind = "auto"  # what use_index asked for (meta.json's index_kind)
        self._index_params: dict[str, Any] = {}
        self._index: ExactIndex | HNSWIndex | None = None
        self._unit: np.ndarray | None = None
        self._neighbour_cache: tuple[np.ndarray, np.ndarray] | None = None

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
            The search index, as :meth:`use_index` takes it; other than
            ``"auto"`` it is built now, ``"auto"`` on the first query.
        **index_params
            For the approximate index (``M``, ``ef_construction``, ``ef``, ...).
        """
        emb = cls(ids, matrix, metadata=metadata)
        if index == "auto" and not index_params:
            return emb
        return emb.use_index(index, **index_params)

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
        """The search index every query goes to, built on first use (``"auto"`` unless :meth:`use_index` chose).

        ``index.kind`` says which: ``"exact"`` or ``"ann"``.
        """
        if self._index is None:
            kind = resolve_kind(self._index_kind, len(self))
            self._index = build_index(self.unit, kind, **(self._index_params if kind == "ann" else {}))
        return self._index

    def use_index(self, kind: IndexKind = "auto", **params: Any) -> ItemEmbeddings:
        """Search with the ``kind`` index from now on: built now, replacing the one held.

        Parameters
        ----------
        kind : {"auto", "exact", "ann"}
            ``"exact"``: brute force (:class:`~item2vec.index.ExactIndex`).
            ``"ann"``: the approximate HNSW graph (:class:`~item2vec.index.HNSWIndex`,
            the ``ann`` extra). ``"auto"``: approximate from
            :data:`item2vec.index.ANN_MIN_ITEMS` items up when hnswlib is installed.
        **params
            For :class:`~item2vec.index.HNSWIndex`: ``M``, ``ef_construction``,
            ``ef``, ``random_state``, ``num_threads`` (ignored by the exact index).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For another ``kind``.
        ImportError
            For ``"ann"`` without hnswlib, naming the extra.
        """
        resolved = resolve_kind(kind, len(self))
        self._index = build_index(self.unit, resolved, **(params if resolved == "ann" else {}))
        self._index_kind, self._index_params = kind, dict(params)
        return self

    def cache_neighbours(self, k: int = 50) -> ItemEmbeddings:
        """Keep every item's ``k`` nearest items in memory (exact cosine, computed now); ``k=0`` drops them.

        :meth:`similar_items` then answers a query of at most ``k`` neighbours
        without ``filter_items`` by a table lookup instead of a search: the latency
        path of a served model (``mlflow models serve`` does this at load for
        catalogues up to :data:`item2vec.registry.NEIGHBOUR_CACHE_MAX_ITEMS` items).
        The answers are those of the exact search (with an approximate index too);
        other queries still go to :attr:`index`. Costs ``n x k`` (int64 + float32) of
        memory and one exact all-items search: ~0.5 s at 3,400 items, ~7 s at 20,000
        (64-d, one core).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If ``k`` is negative.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"k must be an integer >= 0, got {k!r}")
        kk = min(int(k), len(self) - 1)
        if kk <= 0:
            self._neighbour_cache = None
            return self
        held = self._index  # not self.index: that would build an approximate graph only to look at its kind
        exact = held if held is not None and held.kind == "exact" else ExactIndex(self.unit)
        self._neighbour_cache = exact.neighbours(np.arange(len(self)), kk)
        return self

    @property
    def neighbour_cache_k(self) -> int:
        """How many neighbours per item :meth:`cache_neighbours` keeps (0: none)."""
        cache = getattr(self, "_neighbour_cache", None)
        return 0 if cache is None else int(cache[0].shape[1])

    def _neighbours(self, rows: np.ndarray, k: int, exclude_all: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The index's ``neighbours``, or the cached table's first ``k`` columns when they answer it."""
        cache = getattr(self, "_neighbour_cache", None)
        if cache is not None and k <= cache[0].shape[1] and (exclude_all is None or not len(exclude_all)):
            return cache[0][rows, :k], cache[1][rows, :k]
        return self.index.neighbours(rows, k, exclude_all=exclude_all)

    # -- queries ---------------------------------------------------------------
    def similar_items(
        self,
        items: Any,
        k: int = 10,
        filter_items: Iterable[Any] | None = None,
        missing: Literal["raise", "ignore"] = "raise",
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar (cosine) to each query item, searched by :attr:`index`.

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
            return self._similar_to_vectors(items, k, filter_items)
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
            found, sc = self._neighbours(np.array([row]), k_eff, exclude_all)
            found, sc = found[0], sc[0]
            if len(sc) and not np.isfinite(sc[-1]):  # filters left fewer than k: -inf places sort last
                valid = np.isfinite(sc)
                found, sc = found[valid], sc[valid]
            return ids_all[found], sc
        queries = list(items)
        rows = self.vocab.indices(queries, missing=missing if missing == "raise" else "pad") - 1
        known = rows >= 0
        found_rows, scores = self._neighbours(rows[known], k_eff, exclude_all)
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

        The approximate index goes to ``index/`` when it is the one held, or will
        be (``"auto"`` on a large catalogue: the build happens here, in the batch
        job, not in the server that loads the model). ``meta.json``'s
        ``index_kind`` is the kind :meth:`use_index` was given (``"auto"`` when
        none). Nothing is pickled; ``checksums.json`` holds the sha256 of every file.
        """
        from item2vec._io import write_checksums, write_meta

        held = self._index.kind if self._index is not None else resolve_kind(self._index_kind, len(self))
        with atomic_dir(path, marker="vectors.npy") as tmp:
            np.save(tmp / "vectors.npy", np.ascontiguousarray(self.vectors), allow_pickle=False)
            (tmp / "ids.json").write_text(json.dumps(self.vocab.to_list()))
            if held == "ann":
                self.index.save(tmp / "index")  # type: ignore[union-attr]
            write_meta(
                tmp / "meta.json", KIND, FORMAT_VERSION,
                n_items=len(self),
                dim=self.dim,
                id_type="int" if self.ids.dtype.kind in "iu" else "str",
                index_kind=self._index_kind,
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
        from item2vec._io import read_json, read_meta, verify_checksums
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
        id_list = read_json(p / "ids.json", list)
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
        emb._index_kind = meta.get("index_kind", "auto")  # built on the first query, as use_index would
        if (p / "index" / "index.json").exists():
            try:
                emb._index = load_index(p / "index", emb.unit)
            except ImportError as e:  # saved with the ann extra, loaded without it
                warnings.warn(f"{p}: the saved approximate index is not loaded ({e}); using exact search", stacklevel=2)
                emb._index_kind = "exact"
            else:
                emb._index_params = emb._index.params() if emb._index.kind == "ann" else {}
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
        self, vectors: np.ndarray, k: int, filter_items: Iterable[Any] | None
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
        rows, scores = self.index.search(np.atleast_2d(q), min(k, len(self)), exclude_all=exclude_all)
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
