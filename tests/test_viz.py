"""The t-SNE picture: written atomically, labelled as asked, labels apart, clusters kept, tiny sets work."""

from __future__ import annotations

import itertools
import os

import matplotlib
import numpy as np
import pytest

from item2vec.embeddings import ItemEmbeddings
from item2vec.exceptions import EmptyDataError
from item2vec.viz import (
    LABEL_GID,
    OTHER,
    label_boxes,
    title_categories,
    tsne_coordinates,
    tsne_plot,
)
from pipelines.datasets import ONLINE_RETAIL_THEMES


def blobs(n_clusters: int, per_cluster: int, dim: int = 16, spread: float = 0.15, seed: int = 0):
    """Item vectors around ``n_clusters`` random directions; ids ``c{k}_i{j}``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    ids, vecs, cluster = [], [], {}
    for k in range(n_clusters):
        for j in range(per_cluster):
            item = f"c{k}_i{j:02d}"
            ids.append(item)
            vecs.append(centres[k] + spread * rng.normal(size=dim) / np.sqrt(dim))
            cluster[item] = f"cluster {k}"
    return ItemEmbeddings(ids, np.asarray(vecs, dtype=np.float32)), cluster


def item_labels(fig):
    return [t for ax in fig.axes for t in ax.texts if t.get_gid() == LABEL_GID]


def boxes_from_renderer(fig):
    """Each label's box (text + its white background) measured by the figure's own renderer."""
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    return [t.get_bbox_patch().get_window_extent(renderer) for t in item_labels(fig)]


def assert_apart(boxes):
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), f"labels overlap: {a} and {b}"


@pytest.fixture(scope="module")
def clustered():
    return blobs(n_clusters=6, per_cluster=25)


def test_picture_is_written_with_the_requested_labels_apart(clustered, tmp_path):
    emb, cluster = clustered
    titles = {i: f"product {i} with a longish name" for i in emb.ids}
    out = tmp_path / "deeper" / "tsne.png"
    backend = matplotlib.get_backend()
    fig = tsne_plot(emb, categories=cluster, labels=titles, n_labels=8, path=out)
    assert matplotlib.get_backend() == backend  # the global backend is left alone
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["tsne.png"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # like any new file, not private like a temp file
    texts = item_labels(fig)
    assert len(texts) == 8
    assert all(t.get_text().startswith("product c") for t in texts)
    boxes = boxes_from_renderer(fig)
    assert_apart(boxes)
    axbox = fig.axes[0].get_window_extent()
    assert all(axbox.x0 <= b.x0 and b.x1 <= axbox.x1 and axbox.y0 <= b.y0 and b.y1 <= axbox.y1 for b in boxes)
    assert len(label_boxes(fig)) == 8
    # one label per category first: 6 clusters, so 6 different clusters among the 8
    labelled = [t.get_text().split()[1] for t in texts]
    assert len({cluster[i] for i in labelled}) == 6


def test_many_labels_in_a_crowded_picture_still_do_not_overlap(tmp_path):
    emb, cluster = blobs(n_clusters=4, per_cluster=50, seed=3)
    fig = tsne_plot(emb, categories=cluster, labels={i: f"item {i}" for i in emb.ids}, n_labels=24,
                    random_state=1)
    assert len(item_labels(fig)) == 24
    assert_apart(boxes_from_renderer(fig))


def test_tsne_keeps_clusters_apart(clustered):
    emb, cluster = clustered
    xy = tsne_coordinates(emb.vectors, random_state=0)
    assert xy.shape == (len(emb), 2)
    d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = d.argmin(axis=1)
    labels = np.array([cluster[i] for i in emb.ids])
    assert (labels[nearest] == labels).mean() > 0.95


def test_sample_is_capped_and_keeps_the_labelled_items(clustered):
    emb, cluster = clustered
    wanted = {"c0_i03": "first", "c5_i24": "second", "c2_i11": "third"}
    fig = tsne_plot(emb, categories=cluster, labels=wanted, n_labels=8, max_items=40)
    ax = fig.axes[0]
    n_points = sum(len(c.get_offsets()) for c in ax.collections[:-1])  # the last one rings the labelled
    assert n_points == 40
    assert sorted(t.get_text() for t in item_labels(fig)) == ["first", "second", "third"]


def test_tiny_sets_work():
    emb, cluster = blobs(n_clusters=3, per_cluster=4)  # 12 items
    fig = tsne_plot(emb, categories=cluster, n_labels=5)
    assert len(item_labels(fig)) == 5
    assert_apart(boxes_from_renderer(fig))
    three = ItemEmbeddings(["a", "b", "c"], np.eye(3, 8, dtype=np.float32))
    assert len(item_labels(tsne_plot(three, n_labels=3))) == 3
    assert tsne_coordinates(three.vectors).shape == (3, 2)
    with pytest.raises(EmptyDataError):
        tsne_plot(ItemEmbeddings(["a"], np.ones((1, 4), dtype=np.float32)))


def test_without_categories_or_labels_ids_are_the_labels(clustered):
    emb, _ = clustered
    fig = tsne_plot(emb, n_labels=4, max_items=60)
    texts = [t.get_text() for t in item_labels(fig)]
    assert len(texts) == 4 and all(t in emb for t in texts)


def test_rare_categories_become_other(clustered):
    emb, cluster = clustered
    fig = tsne_plot(emb, categories=cluster, n_labels=0, max_categories=2)
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(names) == 3 and names[-1].startswith(OTHER)
    assert item_labels(fig) == []


def test_bad_arguments_are_refused(clustered):
    emb, _ = clustered
    with pytest.raises(TypeError, match="ItemEmbeddings"):
        tsne_plot(emb.vectors)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_labels"):
        tsne_plot(emb, n_labels=-1)
    with pytest.raises(ValueError, match="max_categories"):
        tsne_plot(emb, max_categories=99)


def test_title_categories():
    titles = {
        1: "JUMBO BAG RED RETROSPOT",
        2: "WHITE HANGING HEART T-LIGHT HOLDER",
        3: "PAPER CHAIN KIT 50'S CHRISTMAS",
        4: "",
        5: "ASSORTED COLOUR BIRD ORNAMENT",
        6: "red glass bowls",
    }
    assert title_categories(titles) == {
        1: "BAG", 2: "HOLDER", 3: "CHRISTMAS", 4: OTHER, 5: "ORNAMENT", 6: "BOWLS",
    }
    themed = title_categories(titles, ONLINE_RETAIL_THEMES)
    assert themed == {
        1: "bags", 2: "candles & lights", 3: "christmas", 4: OTHER, 5: "garden", 6: "kitchen",
    }
    # the first matching category in mapping order wins; plurals match
    assert title_categories({"x": "CANDLES FOR CHRISTMAS"}, {"a": ["candle"], "b": ["christmas"]}) == {"x": "a"}
    assert title_categories({"x": "MUG"}, {"a": ["cup"]}, default="none") == {"x": "none"}


def test_dataset_knowledge_lives_in_pipelines_not_in_the_library():
    import item2vec.viz as viz
    from pipelines.datasets import DATASETS, THEMES

    assert not hasattr(viz, "ONLINE_RETAIL_THEMES") and "ONLINE_RETAIL_THEMES" not in viz.__all__
    assert set(THEMES) <= set(DATASETS) and THEMES["online-retail"] is ONLINE_RETAIL_THEMES
    cats = title_categories({1: "WHITE HANGING HEART T-LIGHT HOLDER", 2: "PAPER CHAIN KIT 50'S CHRISTMAS"},
                            THEMES["online-retail"])
    assert cats == {1: "candles & lights", 2: "christmas"}
