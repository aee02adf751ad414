"""``item2vec explore``: browse a model's item space in a local page (see :mod:`item2vec.explore`)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "cmd_explore"]


def add_parser(sub: Any) -> None:
    """Register the ``explore`` subcommand on ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "explore", help="browse the item space in a local page: search, neighbours, a 2-D map",
        description="Start a page on 127.0.0.1 to search items by id or title, see an item's neighbours "
                    "(click one to move to it) and a 2-D map of the items; or write the page as one HTML file.",
    )
    p.add_argument("--model", required=True,
                   help="model directory (item2vec fit, a served model) or a registry URI: models:/NAME@champion")
    p.add_argument("--metadata", default=None, metavar="FILE",
                   help="item_id,title[,category] as CSV, TSV or Parquet (default: the metadata of the prepared "
                        "data the model was fitted on, when it has one)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI of the registry (for models:/ URIs)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("-k", type=int, default=10, help="neighbours shown (default %(default)s, at most 100)")
    p.add_argument("--map-items", type=int, default=2000, help="items on the map, a random sample (default %(default)s)")
    p.add_argument("--projection", choices=["tsne", "pca"], default="tsne", help="2-D layout of the map (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the map's sample and t-SNE")
    p.add_argument("--html", default=None, metavar="PATH", help="also write the page as one self-contained HTML file")
    p.add_argument("--no-serve", action="store_true", help="with --html: write the file and exit")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_explore)


def _load_metadata(a: argparse.Namespace, emb: Any) -> Any:
    from item2vec.explore import read_metadata

    if a.metadata:
        return read_metadata(a.metadata)
    data_dir = emb.metadata.get("data_dir")
    if data_dir and (Path(data_dir) / "metadata.parquet").exists():
        return read_metadata(Path(data_dir) / "metadata.parquet")
    return None


def cmd_explore(a: argparse.Namespace) -> int:
    """``item2vec explore``: write the page (``--html``) and/or serve it until Ctrl-C or SIGTERM."""
    from item2vec.exceptions import OptionError
    from item2vec.explore import Explorer, _metadata_maps, serve
    from item2vec.registry import load
    from item2vec.viz import title_categories

    if a.no_serve and not a.html:
        raise OptionError("--no-serve writes the page with --html PATH and exits; got no --html", options=("html",))
    if not 0 <= a.port <= 65535:
        raise OptionError(f"--port must be in 0..65535 (0: a free port), got {a.port}", options=("port",))
    emb = load(a.model, tracking_uri=a.tracking_uri).embeddings
    md = _load_metadata(a, emb)
    titles, categories = _metadata_maps(md, int_ids=emb.ids.dtype.kind in "iu")
    if titles and not categories:  # no category column: the product type from the title, as in the t-SNE picture
        categories = title_categories(titles)
    if not 1 <= a.k <= 100:
        raise OptionError(f"-k must be in 1..100, got {a.k}", options=("k",))
    if a.map_items < 2:
        raise OptionError(f"--map-items must be at least 2, got {a.map_items}", options=("map_items",))
    explorer = Explorer(emb, titles, categories, map_items=min(a.map_items, len(emb)), k=a.k, k_max=max(20, a.k),
                        projection=a.projection, random_state=a.seed)
    if a.html:
        explorer.write_html(a.html)
        print(f"wrote {a.html} ({len(emb):,} items; opens offline)", flush=True)
    if a.no_serve:
        return 0
    server = serve(explorer, host=a.host, port=a.port, quiet=a.quiet)
    url = f"http://{server.server_address[0]}:{server.server_address[1]}/"
    print(f"serving {url}  ({len(emb):,} items; Ctrl-C to stop)", flush=True)
    if a.open:
        import webbrowser

        webbrowser.open(url)
    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM (kill, a test's teardown) stops as Ctrl-C does

    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.shutdown()
        server.server_close()
    return 0

