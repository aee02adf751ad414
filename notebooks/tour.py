# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A tour of item2vec
#
# From a log of shopping baskets to item vectors, neighbours, a map of the catalogue,
# a comparison against the usual baselines, and a BiLSTM next-item model.
#
# * **Data**: the UCI *Online Retail* transactions (a UK gift-ware wholesaler, 2010-12
#   to 2011-12) when `../shared/datasets` is beside the checkout, otherwise the
#   synthetic generator (clusters of items with a planted "next item").
# * **Size**: `ITEM2VEC_TOUR_SMALL=1` (set by the test suite) uses seven weeks of
#   Online Retail or a small synthetic log and a few epochs, so the whole tour runs in
#   well under a minute. `ITEM2VEC_TOUR_DATA=synthetic` forces the synthetic log.
# * **Picture**: the t-SNE map is written to `$ITEM2VEC_TOUR_PNG`
#   (default `runs/tour/tsne.png`, which git ignores).
#
# The source of this notebook is `notebooks/tour.py` (jupytext percent format); edit
# that file and regenerate the `.ipynb` with
# `.venv/bin/jupytext --to ipynb notebooks/tour.py`.

# %%
import os
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets

import polars as pl  # noqa: E402
from IPython.display import Image, display  # noqa: E402

from item2vec.data import PrepareConfig, make_sessions, prepare, read_events, read_item_metadata  # noqa: E402
from item2vec.embeddings import Item2Vec  # noqa: E402
from item2vec.evaluation import evaluate, format_table, run_evaluation  # noqa: E402
from item2vec.recommenders import Item2VecRecommender  # noqa: E402
from item2vec.viz import title_categories, tsne_plot  # noqa: E402

SMALL = os.environ.get("ITEM2VEC_TOUR_SMALL", "") not in ("", "0")


def repo_root(start: Path) -> Path:
    """The checkout holding this notebook (the folder with pyproject.toml)."""
    for p in [start, *start.parents]:
        if (p / "pyproject.toml").exists():
            return p
    return start


ROOT = repo_root(Path.cwd().resolve())
sys.path.insert(0, str(ROOT))  # the checkout's pipelines/: what is known about each dataset
from pipelines.datasets import ONLINE_RETAIL_THEMES  # noqa: E402

DATASETS = Path(os.environ.get("ITEM2VEC_DATASETS", ROOT.parent / "shared" / "datasets"))
RETAIL = DATASETS / "online-retail" / "by-day"
USE_RETAIL = RETAIL.is_dir() and os.environ.get("ITEM2VEC_TOUR_DATA", "online-retail") != "synthetic"
PNG = Path(os.environ.get("ITEM2VEC_TOUR_PNG", ROOT / "runs" / "tour" / "tsne.png"))
print(f"data: {'Online Retail' if USE_RETAIL else 'synthetic'} ({'small' if SMALL else 'full'}); "
      f"picture -> {PNG}")

# %% [markdown]
# ## 1. Sessions
#
# Online Retail has one row per invoice line. An **invoice is a session** (a basket):
# `read_events` keeps product stock codes, drops cancellations and postage lines, and
# normalises the log to `session_id, item_id, timestamp`. `prepare` then drops rare
# items, caps long baskets and splits **by time**: the last days are test, the days
# before them validation, everything earlier training.

# %%
t0 = time.perf_counter()
if USE_RETAIL:
    span = {"start": "2011-10-01", "end": "2011-11-21"} if SMALL else {}
    events = read_events(RETAIL, "online-retail", **span)
    titles_frame = read_item_metadata(RETAIL, "online-retail")
    config = (PrepareConfig(test_days=3, valid_days=3, min_item_support=30, max_session_length=30) if SMALL
              else PrepareConfig(test_days=14, valid_days=14, max_session_length=50))
    data = prepare(events, config, metadata=titles_frame, name="online-retail")
    titles = data.titles()
else:
    events, truth = make_sessions(n_sessions=1500 if SMALL else 5000, n_clusters=8, items_per_cluster=25,
                                  noise=0.05, random_state=0)
    data = prepare(events, PrepareConfig(test_days=3, valid_days=3), name="synthetic")
    # the generator's ids name their planted cluster ("c03_i017"): use them as titles
    titles = {i: i for i in data.vocab.ids.tolist()}
print(f"{events.height:,} events -> {data.n_items:,} items; sessions train/valid/test: "
      f"{len(data.train):,} / {len(data.valid):,} / {len(data.test):,} ({time.perf_counter() - t0:.1f}s)")
events.head()

# %% [markdown]
# ## 2. Train item2vec
#
# Skip-gram with negative sampling where a session is a sentence and an item a word.
# By default the window is the **whole session** (every pair of items in a basket is a
# training pair), as in Barkan & Koenigstein's item2vec.

# %%
item2vec = Item2Vec(epochs=5 if SMALL else 10, show_progress=False, random_state=0)
emb = item2vec.fit(data.decode(data.train)).embeddings_
print(f"{emb}: trained in {item2vec.fit_seconds_:.1f}s")

# %% [markdown]
# ## 3. Similar items
#
# `similar_items` takes one id (1-D answers) or a list (2-D answers); the query is never
# in its own answer. The most-bought products are first in `emb.ids`.

# %%
queries = [i for i in ["85123A", "22423", "85099B", "23084"] if i in emb][:3] or list(emb.ids[:3])
ids, scores = emb.similar_items(queries, k=5)
for q, row, sc in zip(queries, ids, scores, strict=True):
    print(f"\n{q}  {titles.get(q, '')}")
    for i, s in zip(row, sc, strict=True):
        print(f"    {s:5.2f}  {i:8s} {titles.get(i, '')}")

# %% [markdown]
# ## 4. A map of the catalogue
#
# A 2-D t-SNE projection of the item vectors (cosine geometry), coloured by category.
# Online Retail has no category column, so `title_categories` derives one from the
# product description with a small keyword table (`pipelines.datasets.ONLINE_RETAIL_THEMES`: Christmas,
# jewellery, bags, ...); without a table it takes the title's last product word. The
# synthetic items are coloured by their planted cluster. A few products are labelled,
# one per colour, chosen at the core of their colour's cluster.
#
# The same function, `item2vec.viz.tsne_plot`, draws the picture the retraining job
# logs to MLflow.

# %%
if USE_RETAIL:
    categories = title_categories(titles, ONLINE_RETAIL_THEMES)
else:
    categories = {i: f"cluster {truth.cluster[i]}" for i in titles}
t0 = time.perf_counter()
fig = tsne_plot(emb, categories=categories, labels=titles, n_labels=8,
                max_items=400 if SMALL else 2000, random_state=0, path=PNG)
print(f"t-SNE of {min(len(emb), 400 if SMALL else 2000):,} items in {time.perf_counter() - t0:.1f}s -> {PNG}")
display(Image(filename=str(PNG)))

# %% [markdown]
# ## 5. Against the baselines
#
# Every model sees the same test prefixes: for each test session and each position
# `t >= 1` it ranks the whole catalogue for the item at `t`. HR@20 (the next item is in
# the top 20), MRR@20 and NDCG@20 (how high it is). `item2vec` recommends the
# neighbours of the last item; `item2vec-mean` those of the mean of the session's vectors.

# %%
names = ["pop", "markov", "sknn", "implicit", "item2vec", "item2vec-mean"]
report = run_evaluation(data, names, k=20, embeddings=emb, show_progress=False)
results = report["models"]
print(f"{report['n_predictions']:,} test predictions\n")
print(format_table(results, 20))

# %% [markdown]
# ## 6. The BiLSTM, and what it adds
#
# item2vec knows which items **go together**; it has no notion of order, and the
# `item2vec` recommender reads only the last item of the session. The next-item model
# starts from the same vectors (its embedding table is initialised with them), reads
# the **whole prefix in order** with a bidirectional LSTM and scores the catalogue for
# the next item. Where the log has a real order (a click stream; the synthetic log's
# planted successors) this is what it learns and item2vec cannot. Online Retail
# baskets are in invoice-line order, which carries little sequence, so there expect
# it to match rather than beat the co-occurrence models. It trains on a sample of the
# training prefixes (3,000 for two epochs in small mode, 50,000 for five otherwise) to
# keep the tour short; the retraining job trains it in full.

# %%
try:
    import torch

    from item2vec.nextitem import NextItemRecommender
except ImportError as e:  # the module is optional in a trimmed install
    NextItemRecommender = None
    print(f"BiLSTM section skipped: item2vec.nextitem is not available ({e})")

if NextItemRecommender is not None:
    torch.set_num_threads(1)  # steadier than many threads for a model this size on a shared CPU
    bilstm = NextItemRecommender(
        embeddings=emb, vocab=data.vocab, init="item2vec", hidden_size=32 if SMALL else 64,
        epochs=2 if SMALL else 5, max_train=3000 if SMALL else 50_000, max_valid=500 if SMALL else 3000,
        num_threads=1, show_progress=False, random_state=0,
    )
    t0 = time.perf_counter()
    bilstm.fit(data.train, n_items=data.n_items, valid=data.valid)
    fit_s = time.perf_counter() - t0
    results["bilstm"] = {**evaluate(bilstm, data.test, k=20), "fit_seconds": fit_s}
    print(format_table(results, 20))

    # one test session: what each model proposes after its first three items
    last_item = Item2VecRecommender(embeddings=emb, vocab=data.vocab).fit(data.train, n_items=data.n_items)
    session = next(s for s in data.test if len(s) >= 4)
    prefix, target = session[:3], int(session[3])
    print("\nprefix:", [titles.get(i, i) for i in data.vocab.lookup(prefix).tolist()])
    print("next:  ", titles.get(data.vocab.lookup([target])[0], target))
    columns = {}
    for name, model in [("item2vec", last_item), ("bilstm", bilstm)]:
        top, _ = model.recommend(prefix, k=5)
        columns[name] = [("* " if int(j) == target else "") + str(titles.get(i, i))
                         for j, i in zip(top, data.vocab.lookup(top).tolist(), strict=True)]
    display(pl.DataFrame(columns))

# %% [markdown]
# ## 7. Tracking in MLflow
#
# The retraining job (`item2vec retrain`, see `pipelines/configs/retrain.toml`) logs
# parameters, per-epoch metrics, the evaluation table, the vectors and this t-SNE
# picture to MLflow, in a local SQLite store by default. To browse the runs, start the
# UI from the repository root (not from this notebook):
#
# ```bash
# .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db
# # then open http://127.0.0.1:5000
# ```
#
# To log a picture from your own run:
#
# ```python
# import mlflow
# with mlflow.start_run():
#     mlflow.log_figure(tsne_plot(emb, categories=categories, labels=titles), "tsne.png")
# ```
