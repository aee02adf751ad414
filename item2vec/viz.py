"""Pictures of item vectors: a 2-D t-SNE map coloured by category, with a few labelled items.

:func:`tsne_plot` is what the notebook tour shows and what the retraining job logs
to MLflow. It builds a bare :class:`matplotlib.figure.Figure` on an Agg canvas and
never touches ``pyplot`` or the global backend, so it works headless (CI, batch
jobs) and leaves a notebook's inline backend alone. Text labels are placed by a
greedy search over candidate positions around each point, measured with the
figure's renderer, so that no two labels overlap.

:func:`title_categories` derives a category from product titles (Online Retail
has no category column).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from item2vec._io import atomic_file
from item2vec.embeddings import ItemEmbeddings
from item2vec.exceptions import DataError, EmptyDataError

__all__ = ["LABEL_GID", "OTHER", "label_boxes", "title_categories", "tsne_coordinates", "tsne_plot"]

#: ``gid`` of the item labels drawn by :func:`tsne_plot` (to find them in ``ax.texts``).
LABEL_GID = "item2vec-label"
#: The colour group of items outside the top categories (or without one).
OTHER = "other"

# tab10 without its grey (kept for OTHER), then tab20's darker second shades.
_PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79",
    "#637939", "#8c6d31",
]
_OTHER_COLOUR = "#b0b0b0"
_MAX_LABEL_CHARS = 32

# words that end many titles without naming the product (colours, sizes, "DESIGN")
_NOT_A_TYPE = {
    "RED", "PINK", "BLUE", "GREEN", "WHITE", "BLACK", "IVORY", "CREAM", "SILVER", "GOLD", "PURPLE",
    "YELLOW", "ORANGE", "BROWN", "GREY", "NATURAL", "CLEAR", "LARGE", "SMALL", "MEDIUM", "MINI", "JUMBO",
    "DESIGN", "SET", "ASSORTED", "COLOUR", "VINTAGE", "RETROSPOT", "POLKADOT", "SPOT", "HEART",
    "FLOWER", "ROSE", "STAR", "LOVE", "OF", "AND", "WITH", "IN", "THE", "W",
}
_FONT_SIZE = 7.5


# ---------------------------------------------------------------------------
# categories from titles
# ---------------------------------------------------------------------------
def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("S") and not word.endswith("SS") else word


def _words(title: str) -> list[str]:
    return re.findall(r"[A-Z][A-Z\-']+", title.upper())


def title_categories(
    titles: Mapping[Hashable, str],
    keywords: Mapping[str, Sequence[str]] | None = None,
    default: str = OTHER,
) -> dict[Hashable, str]:
    """A category per item from its title.

    Parameters
    ----------
    titles : mapping
        ``item_id -> title`` (e.g. :meth:`SessionData.titles`).
    keywords : mapping, optional
        ``category -> words``: an item gets the first category (in mapping order)
        one of whose words is a whole word of its title (case-insensitive, a
        plural ``S`` ignored, so ``"CANDLE"`` matches ``"T-LIGHT CANDLES"``).
        Without ``keywords`` the category is the last word of the title that is
        not a colour, size or pattern (``"JUMBO BAG RED RETROSPOT"`` -> ``"BAG"``),
        the product type in most catalogues. For Online Retail,
        ``pipelines.datasets.ONLINE_RETAIL_THEMES`` groups products by theme
        instead, which matches what is bought together far better.
    default : str
        The category of a title that matches nothing (or has no word).

    Returns
    -------
    dict
        ``item_id -> category``.
    """
    out: dict[Hashable, str] = {}
    table = [(c, {_singular(w) for w in _words(" ".join(kw))}) for c, kw in (keywords or {}).items()]
    for item, title in titles.items():
        words = _words(str(title)) if title is not None else []
        if keywords is None:
            typed = [w for w in words if w not in _NOT_A_TYPE]
            out[item] = typed[-1] if typed else default
            continue
        present = {_singular(w) for w in words}
        out[item] = next((c for c, kw in table if kw & present), default)
    return out


# ---------------------------------------------------------------------------
# projection
# ---------------------------------------------------------------------------
def tsne_coordinates(vectors: np.ndarray, random_state: int = 0, n_threads: int | None = 1) -> np.ndarray:
    """2-D t-SNE of the rows of ``vectors`` under cosine geometry.

    Rows are normalised to unit length (item2vec similarity is the cosine), then
    scikit-learn's :class:`~sklearn.manifold.TSNE` runs with ``init="pca"`` and a
    perplexity valid for ``n`` rows: ``min(30, (n - 1) / 3)``. Fewer than 4 rows
    get their first two principal components instead (t-SNE needs more points
    than its perplexity).

    ``n_threads`` caps the OpenMP/BLAS threads t-SNE uses (``None``: no cap). The
    default of 1 is deliberate: scikit-learn's Barnes-Hut t-SNE slows down many
    times over when its threads compete with other jobs for the cores, while one
    thread projects 2,000 items in seconds.

    Returns
    -------
    ndarray, shape (n, 2)
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise EmptyDataError(f"t-SNE needs a 2-D array of at least 2 vectors, got shape {x.shape}")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n = x.shape[0]
    if n < 4 or x.shape[1] < 2:
        centred = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        out = np.zeros((n, 2))
        proj = centred @ vt[:2].T
        out[:, : proj.shape[1]] = proj
        return out
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    perplexity = float(min(30.0, (n - 1) / 3.0))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=random_state)
    with threadpool_limits(limits=n_threads):
        return np.asarray(tsne.fit_transform(x), dtype=np.float64)


# ---------------------------------------------------------------------------
# the picture
# ---------------------------------------------------------------------------
def _short(text: str, limit: int = _MAX_LABEL_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _sample(
    ids: np.ndarray, keep: np.ndarray, max_items: int, rng: np.random.Generator
) -> np.ndarray:
    """Row numbers: every row in ``keep`` plus a random draw of the others, sorted."""
    if len(ids) <= max_items:
        return np.arange(len(ids))
    rest = np.setdiff1d(np.arange(len(ids)), keep)
    n_more = max(max_items - len(keep), 0)
    more = rng.choice(rest, size=min(n_more, len(rest)), replace=False)
    return np.sort(np.concatenate([keep, more]).astype(np.int64))


def _choose_labelled(
    xy: np.ndarray, cand: np.ndarray, cats: np.ndarray, order: list[str], n_labels: int
) -> list[int]:
    """Pick ``n_labels`` of the candidate points to label (indices into ``xy``).

    With categories: one per category in turn (largest first), each time the
    candidate whose 25 nearest 2-D neighbours are most often of its own colour
    (the core of a cluster), preferring ones not close to a label already
    chosen. Without categories: farthest-point order.
    """
    if len(cand) <= n_labels:
        return [int(c) for c in cand]
    span = float(np.ptp(xy, axis=0).max()) or 1.0
    k = min(25, len(xy) - 1)
    d2 = ((xy[cand, None, :] - xy[None, :, :]) ** 2).sum(-1)
    nearest = np.argsort(d2, axis=1)[:, 1 : k + 1]
    purity = (cats[nearest] == cats[cand][:, None]).mean(axis=1)
    chosen: list[int] = []
    groups = [g for g in order if g != OTHER and np.any(cats[cand] == g)]
    if not groups:  # no categories: spread the labels out
        chosen = [int(cand[0])]
        while len(chosen) < n_labels:
            dist = ((xy[cand, None, :] - xy[None, chosen, :]) ** 2).sum(-1).min(axis=1)
            chosen.append(int(cand[int(np.argmax(dist))]))
        return chosen
    taken = np.zeros(len(cand), dtype=bool)
    while len(chosen) < n_labels and not taken.all():
        progress = False
        for g in groups:
            if len(chosen) >= n_labels:
                break
            pool = np.flatnonzero((cats[cand] == g) & ~taken)
            if len(pool) == 0:
                continue
            if chosen:
                far = np.sqrt(((xy[cand[pool], None, :] - xy[None, chosen, :]) ** 2).sum(-1)).min(axis=1)
                score = purity[pool] - 1.0 * (far < 0.08 * span)
            else:
                score = purity[pool]
            j = pool[int(np.argmax(score))]
            taken[j] = True
            chosen.append(int(cand[j]))
            progress = True
        if not progress:
            break
    if len(chosen) < n_labels:  # candidates outside the named groups fill the rest
        for j in np.flatnonzero(~taken):
            if len(chosen) >= n_labels:
                break
            chosen.append(int(cand[j]))
    return chosen


def _candidate_offsets(max_radius: float) -> list[tuple[float, float]]:
    """Offsets (display pixels) from a point, nearest rings first, denser on larger rings."""
    out = []
    r = 10.0
    while r <= max_radius:
        n_dir = max(16, int(2 * math.pi * r / 30))  # no more than ~30 px between neighbours on a ring
        for a in range(n_dir):
            t = 2 * math.pi * a / n_dir + (0.2 if int(r) % 2 else 0.0)
            out.append((r * math.cos(t), r * math.sin(t)))
        r *= 1.3
    return out


def _box_at(anchor: np.ndarray, off: tuple[float, float], w: float, h: float) -> tuple[float, float, float, float]:
    """The box of a ``w x h`` label whose near corner/edge sits at ``anchor + off``."""
    x, y = anchor[0] + off[0], anchor[1] + off[1]
    ha = "left" if off[0] > 2 else ("right" if off[0] < -2 else "center")
    va = "bottom" if off[1] > 2 else ("top" if off[1] < -2 else "center")
    x0 = x if ha == "left" else (x - w if ha == "right" else x - w / 2)
    y0 = y if va == "bottom" else (y - h if va == "top" else y - h / 2)
    return x0, y0, x0 + w, y0 + h


def _alignment(off: tuple[float, float]) -> tuple[str, str]:
    ha = "left" if off[0] > 2 else ("right" if off[0] < -2 else "center")
    va = "bottom" if off[1] > 2 else ("top" if off[1] < -2 else "center")
    return ha, va


def _crosses(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> bool:
    """Whether segments ``p1-p2`` and ``q1-q2`` properly cross."""

    def orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
        return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    return (orient(p1, p2, q1) * orient(p1, p2, q2) < 0) and (orient(q1, q2, p1) * orient(q1, q2, p2) < 0)


def _segment_hits_box(a: np.ndarray, b: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    """Whether segment ``a-b`` passes through the inside of ``box`` (Liang-Barsky clipping)."""
    t0, t1 = 0.0, 1.0
    dx, dy = float(b[0] - a[0]), float(b[1] - a[1])
    for p, q in ((-dx, a[0] - box[0]), (dx, box[2] - a[0]), (-dy, a[1] - box[1]), (dy, box[3] - a[1])):
        if p == 0:
            if q <= 0:
                return False
            continue
        t = float(q) / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 >= t1:
            return False
    return True


def _place_labels(fig: Figure, ax: Any, xy: np.ndarray, chosen: list[int], texts: list[str]) -> list[Text]:
    """Greedy placement around each point, nearest free spot first.

    A spot is allowed when its box stays inside the axes and keeps a gap to
    every label placed so far (hard rules). Among allowed spots the best one
    covers no other labelled point and has a leader that neither crosses
    another leader nor runs under another label (strongly preferred), then
    covers the fewest points, then is the nearest.

    Not adjustText (on PyPI): it repels labels iteratively and promises no
    layout, where this placer guarantees what ``test_viz`` checks (no two labels
    overlap, none leaves the axes, a clear error when no spot is left) and
    needs no dependency beyond matplotlib.
    """
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    px = ax.transData.transform(xy)  # (n, 2) display pixels
    axbox = ax.get_window_extent(renderer)
    pad = 0.3 * _FONT_SIZE * fig.dpi / 72.0  # the label's white box around the text
    gap = 3.0
    anchors = px[chosen]
    boxes: list[tuple[float, float, float, float]] = []
    leaders: list[tuple[np.ndarray, np.ndarray]] = []
    offsets = _candidate_offsets(float(max(axbox.width, axbox.height)))
    out: list[Text] = []
    for lab, (i, text) in enumerate(zip(chosen, texts, strict=True)):
        probe = ax.text(0, 0, text, fontsize=_FONT_SIZE, transform=None)
        ext = probe.get_window_extent(renderer)
        probe.remove()
        others = np.delete(anchors, lab, axis=0)
        best, best_cost = None, math.inf
        for off in offsets:
            x0, y0, x1, y1 = _box_at(px[i], off, ext.width, ext.height)
            box = (x0 - pad, y0 - pad, x1 + pad, y1 + pad)
            if box[0] < axbox.x0 + 2 or box[1] < axbox.y0 + 2 or box[2] > axbox.x1 - 2 or box[3] > axbox.y1 - 2:
                continue
            if any(box[0] < b[2] + gap and b[0] - gap < box[2] and box[1] < b[3] + gap and b[1] - gap < box[3]
                   for b in boxes):
                continue
            # soft rules: covering another labelled point, crossing a leader, a leader under a label
            tip = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])  # the leader aims at the centre
            clash = 0
            if len(others) and np.any((others[:, 0] > box[0] - 4) & (others[:, 0] < box[2] + 4)
                                      & (others[:, 1] > box[1] - 4) & (others[:, 1] < box[3] + 4)):
                clash += 1
            clash += sum(_crosses(px[i], tip, a, b) for a, b in leaders)
            clash += sum(_segment_hits_box(px[i], tip, b) for b in boxes)
            clash += sum(_segment_hits_box(a, b, box) for a, b in leaders)
            inside = int(np.count_nonzero((px[:, 0] >= box[0]) & (px[:, 0] <= box[2])
                                          & (px[:, 1] >= box[1]) & (px[:, 1] <= box[3])))
            dist = math.hypot(*off)
            cost = 1000.0 * clash + inside + dist / 12.0
            if cost < best_cost:
                best, best_cost = off, cost
            if clash == 0 and inside == 0 and dist <= 30:
                break  # a clean spot right next to the point
        if best is None:
            raise DataError(
                f"no free space left for label {lab + 1} of {len(chosen)}; ask for fewer labels "
                "(n_labels) or a larger figure"
            )
        ha, va = _alignment(best)
        scale = 72.0 / fig.dpi  # points per pixel
        ann = ax.annotate(
            text,
            xy=tuple(xy[i]),
            xytext=(best[0] * scale, best[1] * scale),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=_FONT_SIZE,
            bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "0.4", "lw": 0.6, "alpha": 0.92},
            arrowprops={"arrowstyle": "-", "color": "0.2", "lw": 0.7, "shrinkA": 0, "shrinkB": 2},
            zorder=5,
        )
        ann.set_gid(LABEL_GID)
        x0, y0, x1, y1 = _box_at(px[i], best, ext.width, ext.height)
        boxes.append((x0 - pad, y0 - pad, x1 + pad, y1 + pad))
        leaders.append((px[i], np.array([(x0 + x1) / 2, (y0 + y1) / 2])))
        out.append(ann)
    return out


def label_boxes(fig: Figure) -> list[Bbox]:
    """Display-space boxes (white background included) of the item labels of a :func:`tsne_plot`."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    fig.draw(renderer)
    boxes = []
    for ax in fig.axes:
        for t in ax.texts:
            if t.get_gid() == LABEL_GID:
                patch = t.get_bbox_patch()
                boxes.append(patch.get_window_extent(renderer) if patch is not None else Text.get_window_extent(t, renderer))
    return boxes


def tsne_plot(
    embeddings: ItemEmbeddings,
    *,
    categories: Mapping[Hashable, str] | None = None,
    labels: Mapping[Hashable, str] | None = None,
    n_labels: int = 8,
    max_items: int = 2000,
    random_state: int = 0,
    path: str | os.PathLike[str] | None = None,
    max_categories: int = 10,
    title: str | None = None,
    layout: tuple[np.ndarray, np.ndarray] | None = None,
) -> Figure:
    """A 2-D t-SNE map of item vectors, coloured by category, with labelled items.

    Parameters
    ----------
    embeddings : ItemEmbeddings
    categories : mapping, optional
        ``item_id -> category``. The ``max_categories`` most common categories
        in the sample get their own colour; the rest, and items without a
        category, are grey (``"other"``).
    labels : mapping, optional
        ``item_id -> text`` for the items that may be labelled (default: the
        item ids). With more than ``n_labels`` of them, ``n_labels`` are chosen
        after the projection: one per category in turn (largest first), each
        the candidate at the core of its colour's cluster and away from the
        labels already placed; without categories, spread out over the map.
        Texts longer than 32 characters are shortened.
    n_labels : int
        How many labels to draw (fewer when fewer items are labelled). Labels
        never overlap one another; a leader line joins each to its point.
    max_items : int
        At most this many items are projected: the labelled candidates (when
        they are at most half of ``max_items``) plus a random draw of the others.
    random_state : int
        Seeds the sample and t-SNE.
    path : path-like, optional
        Save the figure there (PNG, or the format the suffix names), atomically.
    max_categories : int
        Colours before ``"other"`` (at most 12).
    title : str, optional
    layout : (rows, xy), optional
        Rows of ``embeddings`` already laid out in 2-D (shape ``(n, 2)``), e.g.
        an :class:`~item2vec.explore.Explorer`'s ``sample`` and its positions:
        drawn as they are, instead of sampling and running t-SNE again.

    Returns
    -------
    matplotlib.figure.Figure
        On an Agg canvas, not registered with ``pyplot``: display it in a
        notebook with ``IPython.display.display(fig)`` or show the saved file;
        log it with ``mlflow.log_figure(fig, "tsne.png")``.

    Raises
    ------
    EmptyDataError
        Fewer than 2 items to project.
    DataError
        No room left to place a label (far too many labels for the figure).
    """
    if not isinstance(embeddings, ItemEmbeddings):
        raise TypeError(f"embeddings must be an ItemEmbeddings, got {type(embeddings).__name__}")
    if n_labels < 0 or max_items < 2:
        raise ValueError(f"need n_labels >= 0 and max_items >= 2, got {n_labels} and {max_items}")
    if not 1 <= max_categories <= len(_PALETTE):
        raise ValueError(f"max_categories must be in 1..{len(_PALETTE)}, got {max_categories}")
    ids = embeddings.ids
    n_all = len(ids)
    if n_all < 2:
        raise EmptyDataError(f"a t-SNE map needs at least 2 items, the embeddings have {n_all}")
    rng = np.random.default_rng(random_state)
    id_list = ids.tolist()
    text_of = labels if labels is not None else {i: str(i) for i in id_list}
    cand_rows = np.array([r for r, i in enumerate(id_list) if i in text_of], dtype=np.int64)
    if layout is None:
        keep = cand_rows if len(cand_rows) <= max_items // 2 else np.empty(0, dtype=np.int64)
        rows = _sample(ids, keep, max_items, rng)
        xy = tsne_coordinates(embeddings.vectors[rows], random_state=random_state)
    else:
        rows, xy = np.asarray(layout[0], dtype=np.int64), np.asarray(layout[1], dtype=np.float64)
        if rows.ndim != 1 or xy.shape != (len(rows), 2) or len(rows) < 2:
            raise ValueError(f"layout must be (rows, xy) with xy of shape (len(rows), 2) and at least 2 rows, "
                             f"got rows of shape {rows.shape} and xy of shape {xy.shape}")
    sample_ids = [id_list[r] for r in rows]

    cat_map = categories or {}
    raw = np.array([str(cat_map.get(i, OTHER)) if cat_map.get(i) is not None else OTHER for i in sample_ids],
                   dtype=object)
    counts = Counter(c for c in raw if c != OTHER)
    top = [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_categories]]
    cats = np.where(np.isin(raw, top), raw, OTHER)

    fig = Figure(figsize=(11, 8.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.03, 0.74, 0.9))
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_color("0.8")
    size = float(np.clip(2500.0 / max(len(rows), 1), 6.0, 40.0))
    is_other = cats == OTHER
    if is_other.any():
        ax.scatter(xy[is_other, 0], xy[is_other, 1], s=size, c=_OTHER_COLOUR, alpha=0.45, linewidths=0,
                   label=f"{OTHER} ({int(is_other.sum())})" if top else f"items ({len(rows)})")
    for colour, c in zip(_PALETTE, top, strict=False):
        m = cats == c
        ax.scatter(xy[m, 0], xy[m, 1], s=size, c=colour, alpha=0.85, linewidths=0, label=f"{c} ({int(m.sum())})")
    # room around the points for labels at the edges
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    margin = 0.08 * np.maximum(hi - lo, 1e-9)
    ax.set_xlim(lo[0] - margin[0], hi[0] + margin[0])
    ax.set_ylim(lo[1] - margin[1], hi[1] + margin[1])
    if top or is_other.any():
        handles, names = ax.get_legend_handles_labels()
        order = list(range(1, len(handles))) + [0] if is_other.any() and top else list(range(len(handles)))
        fig.legend([handles[j] for j in order], [names[j] for j in order], loc="upper left",
                   bbox_to_anchor=(0.77, 0.93), frameon=False, fontsize=9, markerscale=1.5,
                   title="category" if top else None)
    ax.set_title(title or f"t-SNE of {len(rows):,} of {n_all:,} item vectors ({embeddings.dim}-d, cosine)",
                 fontsize=11)

    in_sample = {i: j for j, i in enumerate(sample_ids)}
    cand = np.array([in_sample[i] for i in sample_ids if i in text_of], dtype=np.int64)
    chosen = _choose_labelled(xy, cand, cats, top, n_labels) if n_labels and len(cand) else []
    if chosen:
        ax.scatter(xy[chosen, 0], xy[chosen, 1], s=size * 2.5, facecolors="none", edgecolors="black",
                   linewidths=1.0, zorder=4)
        _place_labels(fig, ax, xy, chosen, [_short(text_of[sample_ids[j]]) for j in chosen])
    if path is not None:
        _save(fig, path)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    with atomic_file(path, mode="wb") as fh:
        fig.savefig(fh, format=fmt, dpi=fig.dpi)
    # the temporary file was created private (0600); give the picture the usual permissions
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
