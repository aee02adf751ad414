"""A page to browse the item space: search, neighbours, and a 2-D map.

:class:`Explorer` holds what the page shows: the embeddings, item titles and
categories, and 2-D positions of every item (t-SNE, or PCA, of a sample of
``map_items`` items; an item outside the sample is placed at the weighted mean of
its five nearest sampled items, so a neighbour list can always be drawn on the
map). It answers :meth:`Explorer.search` (ids and titles) and
:meth:`Explorer.neighbours` in the ids' own type.

The page is one HTML document with its script and style inline and the map drawn
as an inline SVG, so it works offline. It runs in one of two modes:

- served (:func:`serve`, ``item2vec explore``): a standard-library HTTP server on
  127.0.0.1 serves the page and a JSON API, ``/api/search?q=`` and
  ``/api/neighbours?id=&k=``, answered from the model;
- a file (:meth:`Explorer.write_html`): the page carries its data (ids, titles,
  categories, positions and every item's top-``k_max`` neighbours) and answers
  in the browser; logged to MLflow beside the model's vectors.
"""

from __future__ import annotations

import html
import json
import os
import threading
from collections import Counter
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlparse

import numpy as np

from item2vec._io import atomic_file
from item2vec.embeddings import ItemEmbeddings
from item2vec.exceptions import DataError, MissingColumnError, OptionError, UnknownItemError
from item2vec.index import ExactIndex

__all__ = ["FILE_MAX_ITEMS", "Explorer", "read_metadata", "serve"]

#: A written page carries every item up to this many; above it, the map's sample and their neighbours.
FILE_MAX_ITEMS = 20_000
_N_COLOURS = 10
_PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79",
]
_OTHER = "other"
_OTHER_COLOUR = "#b0b0b0"
_PLACE_NEIGHBOURS = 5


def read_metadata(path: str | os.PathLike[str]) -> Any:
    """``item_id, title[, category]`` from a CSV, TSV or Parquet file, as a polars frame.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    MissingColumnError
        If it has no ``item_id`` column, or neither ``title`` nor ``category``.
    """
    import polars as pl

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no metadata file at {str(p)!r}; expected a CSV/TSV/Parquet file with item_id,title[,category]")
    if p.suffix == ".parquet":
        df = pl.read_parquet(p)
    else:
        sep = "\t" if p.suffix in (".tsv", ".tab") else ","
        df = pl.read_csv(p, separator=sep, infer_schema_length=0)  # every column as text; ids cast later
    if "item_id" not in df.columns or not ({"title", "category"} & set(df.columns)):
        raise MissingColumnError(
            f"metadata {p}: expected columns item_id,title[,category], got {','.join(df.columns)}"
        )
    return df


def _metadata_maps(metadata: Any, int_ids: bool) -> tuple[dict[Any, str], dict[Any, str]]:
    """``(titles, categories)`` from a frame, ids cast to the model's id type (rows that cannot be are skipped)."""
    if metadata is None:
        return {}, {}
    ids = list(metadata["item_id"].to_list())
    if int_ids:
        ids = [int(i) if isinstance(i, (int, np.integer)) or (isinstance(i, str) and i.strip().lstrip("-").isdigit())
               else None for i in ids]
    else:
        ids = [None if i is None else str(i) for i in ids]

    def column(name: str) -> dict[Any, str]:
        if name not in metadata.columns:
            return {}
        return {i: str(v) for i, v in zip(ids, metadata[name].to_list(), strict=True)
                if i is not None and v is not None and str(v) != ""}

    return column("title"), column("category")


def _project(x: np.ndarray, method: str, random_state: int) -> np.ndarray:
    if method == "tsne":
        from item2vec.viz import tsne_coordinates

        return tsne_coordinates(x, random_state=random_state)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    centred = unit - unit.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = np.zeros((len(x), 2))
    proj = centred @ vt[:2].T
    out[:, : proj.shape[1]] = proj
    return out


def _unit_box(xy: np.ndarray, margin: float = 0.03) -> np.ndarray:
    """Scale to ``[margin, 1 - margin]`` keeping the aspect ratio (y up)."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = float(max(hi[0] - lo[0], hi[1] - lo[1])) or 1.0
    centred = (xy - (lo + hi) / 2) / span  # in [-0.5, 0.5]
    return 0.5 + centred * (1 - 2 * margin)


class Explorer:
    """What the explore page shows, and the answers to its questions.

    Parameters
    ----------
    embeddings : ItemEmbeddings
    titles, categories : mapping, optional
        ``item_id -> text``. Categories colour the map: the ten most common in
        the sample get a colour each, the rest are grey (``other``).
    map_items : int
        Items on the map: a random sample of this many (all when fewer).
    k : int
        Neighbours shown by default.
    k_max : int
        The most neighbours a written page can show (it stores that many per item).
    projection : {"tsne", "pca"}
        How the sample is laid out in 2-D (t-SNE: :func:`item2vec.viz.tsne_coordinates`).
    random_state : int
        Seed of the sample and of t-SNE.

    Raises
    ------
    OptionError
        For ``map_items < 2``, ``k < 1``, ``k_max < k`` or an unknown projection.
    """

    def __init__(
        self,
        embeddings: ItemEmbeddings,
        titles: Mapping[Any, str] | None = None,
        categories: Mapping[Any, str] | None = None,
        *,
        map_items: int = 2000,
        k: int = 10,
        k_max: int = 20,
        projection: Literal["tsne", "pca"] = "tsne",
        random_state: int = 0,
    ) -> None:
        if not isinstance(embeddings, ItemEmbeddings):
            raise TypeError(f"Explorer expects ItemEmbeddings, got {type(embeddings).__name__}")
        for name, value, low in (("map_items", map_items, 2), ("k", k, 1), ("k_max", k_max, k)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise OptionError(f"Explorer: {name} must be an integer >= {low}, got {value!r}", options=(name,))
        if projection not in ("tsne", "pca"):
            raise OptionError(f"Explorer: projection must be 'tsne' or 'pca', got {projection!r}",
                              options=("projection",))
        if len(embeddings) < 2:
            raise DataError(f"the explore page needs at least 2 items, got {len(embeddings)}")
        self.embeddings = embeddings
        self.titles = dict(titles or {})
        self.categories = dict(categories or {})
        self.k, self.k_max = int(k), int(k_max)
        self.projection = projection
        self.int_ids = embeddings.ids.dtype.kind in "iu"
        self._ids = embeddings.vocab.to_list()
        self._search_text = [f"{i}".lower() for i in self._ids]
        self._title_text = [self.titles.get(i, "").lower() for i in self._ids]
        rng = np.random.default_rng(random_state)
        n = len(embeddings)
        self.sample = np.sort(rng.choice(n, size=min(int(map_items), n), replace=False))
        self.xy = self._positions(random_state)
        counts = Counter(self.categories.get(self._ids[r], _OTHER) for r in self.sample.tolist())
        top = [c for c, _ in counts.most_common() if c != _OTHER][:_N_COLOURS]
        self.legend = [*top, _OTHER]
        self._colour_of = {c: i for i, c in enumerate(top)}

    def __repr__(self) -> str:
        return f"Explorer(n_items={len(self.embeddings)}, map_items={len(self.sample)}, projection={self.projection!r})"

    # -- positions -------------------------------------------------------------------
    def _positions(self, random_state: int) -> np.ndarray:
        vec = np.asarray(self.embeddings.vectors, dtype=np.float32)
        xy = np.empty((len(vec), 2))
        xy[self.sample] = _unit_box(_project(vec[self.sample].astype(np.float64), self.projection, random_state))
        rest = np.setdiff1d(np.arange(len(vec)), self.sample)
        if len(rest):
            unit = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
            anchors = unit[self.sample]
            m = min(_PLACE_NEIGHBOURS, len(self.sample))
            for start in range(0, len(rest), 4096):
                rows = rest[start : start + 4096]
                sim = unit[rows] @ anchors.T
                near = np.argpartition(-sim, m - 1, axis=1)[:, :m]
                w = np.maximum(np.take_along_axis(sim, near, axis=1), 0.0) + 1e-6
                xy[rows] = (w[:, :, None] * xy[self.sample][near]).sum(axis=1) / w.sum(axis=1, keepdims=True)
        return xy

    # -- the questions -------------------------------------------------------------------
    def coerce(self, item: Any) -> Any:
        """The id as this model spells it: ``"42"`` → ``42`` for int ids, ``42`` → ``"42"`` for str ids."""
        if isinstance(item, np.generic):
            item = item.item()
        if self.int_ids and isinstance(item, str) and item.strip().lstrip("-").isdigit():
            return int(item)
        if not self.int_ids and isinstance(item, int) and not isinstance(item, bool):
            return str(item)
        return item

    def _record(self, row: int) -> dict[str, Any]:
        item = self._ids[row]
        return {"id": item, "title": self.titles.get(item, ""), "category": self.categories.get(item, ""),
                "colour": self._colour(item), "x": round(float(self.xy[row, 0]), 5),
                "y": round(float(self.xy[row, 1]), 5)}

    def _colour(self, item: Any) -> int:
        return self._colour_of.get(self.categories.get(item, _OTHER), -1)

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Items whose id or title contains ``query`` (case-insensitive): the exact id first, then ids, then titles.

        Returns
        -------
        list of dict
            ``id`` (in the ids' type), ``title``, ``category``, at most ``limit``.
        """
        q = str(query).strip().lower()
        if not q:
            return []
        exact, by_id, by_title = [], [], []
        for row, (text, title) in enumerate(zip(self._search_text, self._title_text, strict=True)):
            if text == q:
                exact.append(row)
            elif q in text:
                by_id.append(row)
            elif q in title:
                by_title.append(row)
        rows = (exact + sorted(by_id, key=lambda r: (len(self._search_text[r]), self._search_text[r])) + by_title)[:limit]
        return [{k: v for k, v in self._record(r).items() if k in ("id", "title", "category")} for r in rows]

    def neighbours(self, item: Any, k: int | None = None) -> dict[str, Any]:
        """The item and its ``k`` nearest items, each with title, category, map position (and score).

        Raises
        ------
        UnknownItemError
            (a ``KeyError``) when the model does not know ``item``.
        OptionError
            For ``k`` outside ``1..k_max``.
        """
        k = self.k if k is None else k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.k_max:
            raise OptionError(f"k must be an integer in 1..{self.k_max}, got {k!r}", options=("k",))
        item = self.coerce(item)
        row = self.embeddings.row(item)
        ids, scores = self.embeddings.similar_items(item, k=int(k))
        rows = self.embeddings.vocab.indices(ids.tolist()) - 1
        return {
            "item": self._record(row),
            "neighbours": [{**self._record(int(r)), "score": round(float(s), 4)}
                           for r, s in zip(rows.tolist(), scores.tolist(), strict=True)],
        }

    # -- the page ----------------------------------------------------------------------
    def _payload(self, mode: Literal["api", "file"]) -> dict[str, Any]:
        n = len(self.embeddings)
        if mode == "api":
            rows = self.sample
            nb_rows = None
        elif n <= FILE_MAX_ITEMS:
            rows = np.arange(n)
            nb_rows = self._neighbour_rows(rows)
        else:  # the sample and its neighbours
            first = self._neighbour_rows(self.sample)
            rows = np.union1d(self.sample, first[0].ravel())
            nb_rows = self._neighbour_rows(rows)
        position = {int(r): i for i, r in enumerate(rows.tolist())}
        data: dict[str, Any] = {
            "mode": mode,
            "n_items": n,
            "dim": self.embeddings.dim,
            "int_ids": self.int_ids,
            "k": self.k,
            "k_max": self.k_max,
            "projection": self.projection,
            "legend": [{"name": c, "colour": _PALETTE[i] if c != _OTHER else _OTHER_COLOUR}
                       for i, c in enumerate(self.legend)],
            "items": {
                "id": [self._ids[r] for r in rows.tolist()],
                "title": [self.titles.get(self._ids[r], "") for r in rows.tolist()],
                "category": [self.categories.get(self._ids[r], "") for r in rows.tolist()],
                "colour": [self._colour(self._ids[r]) for r in rows.tolist()],
                "x": np.round(self.xy[rows, 0], 5).tolist(),
                "y": np.round(self.xy[rows, 1], 5).tolist(),
            },
            "map": [position[int(r)] for r in self.sample.tolist()],
        }
        if nb_rows is not None:
            found, scores = nb_rows
            data["neighbours"] = [
                [[position.get(int(r), -1), round(float(s), 4)] for r, s in zip(fr, sc, strict=True) if np.isfinite(s)]
                for fr, sc in zip(found.tolist(), scores.tolist(), strict=True)
            ]
        return data

    def _neighbour_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = min(self.k_max, len(self.embeddings) - 1)
        found, scores = ExactIndex(self.embeddings.unit).neighbours(rows, k)  # the page's answers are exact
        return found, scores

    def html(self, mode: Literal["api", "file"] = "file") -> str:
        """The page: ``"file"`` carries its data and answers in the browser; ``"api"`` asks :func:`serve`'s API."""
        data = json.dumps(self._payload(mode), separators=(",", ":"), ensure_ascii=False)
        data = data.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        title = f"item2vec explorer: {len(self.embeddings):,} items"
        return (_PAGE.replace("__TITLE__", html.escape(title)).replace("__STYLE__", _STYLE)
                .replace("__SCRIPT__", _SCRIPT).replace("__DATA__", data))

    def write_html(self, path: str | os.PathLike[str]) -> Path:
        """Write the self-contained page (it opens from disk, offline) atomically; returns its path."""
        p = Path(path)
        with atomic_file(p) as fh:
            fh.write(self.html("file"))
        return p


# ---------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    explorer: Explorer
    page: bytes
    quiet: bool = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if not self.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if url.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, self.page, "text/html; charset=utf-8")
            elif url.path == "/api/search":
                limit = _int_param(query, "limit", 20)
                self._json(HTTPStatus.OK, {"query": query.get("q", ""),
                                           "results": self.explorer.search(query.get("q", ""), limit=limit)})
            elif url.path == "/api/neighbours":
                if "id" not in query:
                    raise OptionError("expected an id parameter: /api/neighbours?id=ITEM&k=10", options=("id",))
                k = _int_param(query, "k", self.explorer.k)
                self._json(HTTPStatus.OK, self.explorer.neighbours(query["id"], k))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page {url.path!r}; try / or /api/search?q="})
        except UnknownItemError as e:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(e), "unknown": True})
        except (OptionError, DataError) as e:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})


def _int_param(query: dict[str, str], name: str, default: int) -> int:
    if name not in query:
        return default
    try:
        return int(query[name])
    except ValueError:
        raise OptionError(f"{name} must be an integer, got {query[name]!r}", options=(name,)) from None


def serve(explorer: Explorer, host: str = "127.0.0.1", port: int = 0, quiet: bool = True) -> ThreadingHTTPServer:
    """Start the page's server in a background thread and return it.

    Parameters
    ----------
    explorer : Explorer
    host : str
        127.0.0.1 by default: the page is for this machine.
    port : int
        0 picks a free port (read it from ``server.server_address[1]``).
    quiet : bool
        No request log on stderr.

    Returns
    -------
    http.server.ThreadingHTTPServer
        Serving already; ``server.shutdown()`` then ``server.server_close()`` stops it.
    """
    handler = type("ExploreHandler", (_Handler,), {"explorer": explorer, "page": explorer.html("api").encode("utf-8"),
                                                   "quiet": quiet})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="item2vec-explore", daemon=True).start()
    return server


# ---------------------------------------------------------------------------
# the page (inline style and script: it must work offline and from a file)
# ---------------------------------------------------------------------------
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>__STYLE__</style>
</head>
<body>
<header>
  <h1>__TITLE__</h1>
  <div id="search-box">
    <input id="q" type="search" autocomplete="off" placeholder="item id or title, then Enter" aria-label="search items">
    <ul id="results" hidden></ul>
  </div>
</header>
<main>
  <section id="panel">
    <div id="message" role="status" hidden></div>
    <div id="chosen" hidden>
      <h2><span id="chosen-id"></span> <small id="chosen-title"></small></h2>
      <p id="chosen-category"></p>
      <table id="neighbours">
        <thead><tr><th>#</th><th>score</th><th>id</th><th>title</th><th>category</th></tr></thead>
        <tbody></tbody>
      </table>
    </div>
    <p id="hint">Type an item id or part of a title. Click a neighbour (or a point on the map) to move to it.</p>
  </section>
  <section id="map-box">
    <svg id="map" viewBox="0 0 1000 1000" preserveAspectRatio="xMidYMid meet" role="img" aria-label="map of items">
      <g id="points"></g><g id="highlight"></g>
    </svg>
    <div id="tip" hidden></div>
    <ul id="legend"></ul>
    <p id="map-note"></p>
  </section>
</main>
<script id="i2v-data" type="application/json">__DATA__</script>
<script>__SCRIPT__</script>
</body>
</html>
"""

_STYLE = """
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { display: flex; gap: 2em; align-items: center; padding: .6em 1em; background: #fff; border-bottom: 1px solid #ddd; }
h1 { font-size: 1.1em; margin: 0; white-space: nowrap; }
#search-box { position: relative; flex: 1; max-width: 40em; }
#q { width: 100%; padding: .45em .6em; font-size: 1em; border: 1px solid #bbb; border-radius: 4px; }
#results { position: absolute; z-index: 5; left: 0; right: 0; margin: 2px 0 0; padding: 0; list-style: none;
  background: #fff; border: 1px solid #bbb; border-radius: 4px; max-height: 22em; overflow-y: auto; }
#results li { padding: .3em .6em; cursor: pointer; }
#results li:hover, #results li.active { background: #e8f0fe; }
#results .rid, #neighbours .nid { font-family: ui-monospace, monospace; }
main { display: grid; grid-template-columns: minmax(22em, 1fr) minmax(24em, 1.3fr); gap: 1em; padding: 1em; }
#panel, #map-box { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .8em 1em; position: relative; }
h2 { font-size: 1.05em; margin: .2em 0; } h2 small { font-weight: normal; color: #555; }
#message { padding: .5em .8em; background: #fff4e5; border: 1px solid #f0b46c; border-radius: 4px; margin-bottom: .6em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .2em .4em; border-bottom: 1px solid #eee; }
td.score { font-variant-numeric: tabular-nums; }
a.nb { color: #1a56c4; cursor: pointer; text-decoration: none; } a.nb:hover { text-decoration: underline; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 50%; margin-right: .3em; vertical-align: -1px; }
#map { width: 100%; height: auto; max-height: 78vh; display: block; }
#map circle.pt { stroke: #fff; stroke-width: .8; cursor: pointer; opacity: .85; }
#map circle.pt:hover { stroke: #000; stroke-width: 2; }
#map circle.hl { fill: none; stroke: #000; stroke-width: 2; cursor: pointer; }
#map circle.hl.sel { stroke: #d00; stroke-width: 3.5; }
#map line.link { stroke: #d00; stroke-opacity: .35; stroke-width: 1.2; }
#map text.hl-label { font-size: 15px; paint-order: stroke; stroke: #fff; stroke-width: 4px; }
#tip { position: absolute; pointer-events: none; background: rgba(30,30,30,.92); color: #fff; padding: .25em .5em;
  border-radius: 3px; font-size: 12px; max-width: 28em; }
#legend { list-style: none; padding: 0; margin: .4em 0 0; display: flex; flex-wrap: wrap; gap: .3em 1em; font-size: 12px; }
#map-note { color: #666; font-size: 12px; margin: .3em 0 0; }
"""

_SCRIPT = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("i2v-data").textContent);
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const IT = DATA.items;
const key = (id) => JSON.stringify(id);
const pos = new Map(IT.id.map((id, i) => [key(id), i]));
const colourOf = (c) => (c >= 0 ? DATA.legend[c].colour : DATA.legend[DATA.legend.length - 1].colour);

// the model's spelling of a typed id: digits are an int when the ids are ints
function coerce(text) {
  const t = String(text).trim();
  return DATA.int_ids && /^-?\d+$/.test(t) ? Number(t) : t;
}
function record(i) {
  return { id: IT.id[i], title: IT.title[i], category: IT.category[i], colour: IT.colour[i], x: IT.x[i], y: IT.y[i] };
}

// two sources of answers with one shape: the server's API, or the data in this file
const fromFile = {
  async search(q) {
    const s = q.trim().toLowerCase(), exact = [], byId = [], byTitle = [];
    if (!s) return [];
    for (let i = 0; i < IT.id.length; i++) {
      const t = String(IT.id[i]).toLowerCase();
      if (t === s) exact.push(i); else if (t.includes(s)) byId.push(i);
      else if (IT.title[i].toLowerCase().includes(s)) byTitle.push(i);
    }
    byId.sort((a, b) => String(IT.id[a]).length - String(IT.id[b]).length);
    return exact.concat(byId, byTitle).slice(0, 20).map(record);
  },
  async neighbours(text, k) {
    const id = coerce(text), i = pos.get(key(id));
    if (i === undefined) {
      const what = DATA.n_items > IT.id.length ? " in this page (it holds " + IT.id.length + " of " + DATA.n_items + " items)" : "";
      throw new Error("unknown item id " + key(id) + ": it is not in the vocabulary" + what);
    }
    const nbs = DATA.neighbours[i].slice(0, k).map(([j, s]) => j >= 0 ? Object.assign(record(j), { score: s })
      : { id: "(not in this page)", title: "", category: "", colour: -1, score: s, missing: true });
    return { item: record(i), neighbours: nbs };
  },
};
const fromServer = {
  async search(q) {
    const r = await fetch("api/search?q=" + encodeURIComponent(q));
    return (await r.json()).results;
  },
  async neighbours(text, k) {
    const r = await fetch("api/neighbours?id=" + encodeURIComponent(text) + "&k=" + k);
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
    return body;
  },
};
const source = DATA.mode === "api" ? fromServer : fromFile;

// the map
const W = 1000, toX = (x) => x * W, toY = (y) => (1 - y) * W;
function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [a, v] of Object.entries(attrs)) e.setAttribute(a, v);
  if (parent) parent.appendChild(e);
  return e;
}
function label(r) { return String(r.id) + (r.title ? " \u2014 " + r.title : "") + (r.category ? " [" + r.category + "]" : ""); }
function hover(e, text) {
  const tip = $("tip"), box = $("map-box").getBoundingClientRect();
  tip.textContent = text; tip.hidden = false;
  tip.style.left = (e.clientX - box.left + 12) + "px"; tip.style.top = (e.clientY - box.top + 12) + "px";
}
function point(r, cls, radius, parent) {
  const c = el("circle", { cx: toX(r.x).toFixed(1), cy: toY(r.y).toFixed(1), r: radius, class: cls }, parent);
  if (cls === "pt") c.setAttribute("fill", colourOf(r.colour));
  c.dataset.id = String(r.id);
  el("title", {}, c).textContent = label(r);
  c.addEventListener("mousemove", (e) => hover(e, label(r)));
  c.addEventListener("mouseleave", () => { $("tip").hidden = true; });
  c.addEventListener("click", () => go(r.id));
  return c;
}
function drawMap() {
  const g = $("points");
  for (const i of DATA.map) point(record(i), "pt", 4.5, g);
  for (const l of DATA.legend) {
    const li = document.createElement("li");
    li.innerHTML = '<span class="swatch"></span>';
    li.firstChild.style.background = l.colour;
    li.appendChild(document.createTextNode(l.name));
    $("legend").appendChild(li);
  }
  $("map-note").textContent = DATA.map.length + " of " + DATA.n_items + " items (" +
    (DATA.projection === "tsne" ? "t-SNE" : "PCA") + " of a sample); the chosen item and its neighbours are ringed.";
}
function highlight(ans) {
  const g = $("highlight");
  g.replaceChildren();
  const a = ans.item;
  for (const n of ans.neighbours) if (!n.missing) el("line", { x1: toX(a.x), y1: toY(a.y), x2: toX(n.x), y2: toY(n.y), class: "link" }, g);
  for (const n of ans.neighbours) if (!n.missing) point(n, "hl nb", 7, g);
  point(a, "hl sel", 9, g);
  const t = el("text", { x: toX(a.x) + 12, y: toY(a.y) - 10, class: "hl-label" }, g);
  t.textContent = String(a.id);
}

// the panel
function message(text) { const m = $("message"); m.textContent = text; m.hidden = !text; }
function show(ans) {
  message("");
  $("hint").hidden = true;
  $("chosen").hidden = false;
  $("chosen-id").textContent = String(ans.item.id);
  $("chosen-title").textContent = ans.item.title || "";
  $("chosen-category").textContent = ans.item.category ? "category: " + ans.item.category : "";
  const body = $("neighbours").tBodies[0];
  body.replaceChildren();
  ans.neighbours.forEach((n, r) => {
    const tr = body.insertRow();
    tr.insertCell().textContent = r + 1;
    const s = tr.insertCell(); s.className = "score"; s.textContent = n.score.toFixed(3);
    const c = tr.insertCell();
    if (n.missing) c.textContent = n.id;
    else {
      const a = document.createElement("a");
      a.className = "nb nid"; a.textContent = String(n.id); a.dataset.id = String(n.id);
      a.href = "#item=" + encodeURIComponent(String(n.id));
      c.appendChild(a);
    }
    tr.insertCell().textContent = n.title || "";
    const cat = tr.insertCell();
    if (n.category) { const sw = document.createElement("span"); sw.className = "swatch"; sw.style.background = colourOf(n.colour); cat.append(sw, n.category); }
  });
  highlight(ans);
  document.title = String(ans.item.id) + " \u2014 item2vec explorer";
}
async function load(text) {
  try { show(await source.neighbours(text, DATA.k)); }
  catch (err) { $("chosen").hidden = true; $("highlight").replaceChildren(); message(err.message); }
}
function go(id) {
  const h = "#item=" + encodeURIComponent(String(id));
  if (location.hash === h) load(String(id)); else location.hash = h;
}
function fromHash() {
  const m = /^#item=(.*)$/.exec(location.hash);
  if (m) load(decodeURIComponent(m[1]));
}
window.addEventListener("hashchange", fromHash);

// the search box
let results = [], timer = null, asked = 0;
function listResults(rs) {
  results = rs;
  const ul = $("results");
  ul.replaceChildren();
  for (const r of rs) {
    const li = document.createElement("li");
    const id = document.createElement("span"); id.className = "rid"; id.textContent = String(r.id);
    li.append(id, r.title ? "  " + r.title : "");
    li.addEventListener("mousedown", (e) => { e.preventDefault(); ul.hidden = true; go(r.id); });
    ul.appendChild(li);
  }
  ul.hidden = rs.length === 0;
}
async function ask(q) {
  const n = ++asked, rs = await source.search(q);
  if (n === asked) listResults(rs);
  return rs;
}
$("q").addEventListener("input", () => {
  clearTimeout(timer);
  timer = setTimeout(async () => {  // a pause after typing an id shows it; a title lists the matches
    const q = $("q").value.trim(), rs = await ask(q);
    const exact = rs.find((r) => String(r.id) === q);
    if (exact && q === $("q").value.trim()) go(exact.id);
  }, 250);
});
$("q").addEventListener("blur", () => { $("results").hidden = true; });
$("q").addEventListener("keydown", async (e) => {
  if (e.key === "Escape") { $("results").hidden = true; return; }
  if (e.key !== "Enter") return;
  e.preventDefault();
  clearTimeout(timer);
  const q = $("q").value.trim();
  if (!q) return;
  $("results").hidden = true;
  const rs = await ask(q);
  $("results").hidden = true;
  const exact = rs.find((r) => String(r.id).toLowerCase() === q.toLowerCase());
  if (exact) go(exact.id);
  else if (rs.length === 1) go(rs[0].id);
  else if (rs.length === 0) { go(q); }
  else { $("results").hidden = false; message(rs.length + " items match \u201c" + q + "\u201d: pick one from the list"); }
});

drawMap();
fromHash();
"""
