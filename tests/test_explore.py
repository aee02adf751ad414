"""The explore page: its answers (search, neighbours, map), its server, its CLI, and what a user sees in Chromium.

The browser tests drive Debian's Chromium headless through Selenium and skip, with
the reason, when the browser or its driver is absent (``apt-get install chromium
chromium-driver``; see the README). The Online Retail test also writes a
screenshot to ``runs/explore-online-retail.png``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from item2vec import Item2Vec
from item2vec.data import make_sessions
from item2vec.embeddings import ItemEmbeddings
from item2vec.exceptions import MissingColumnError, OptionError, UnknownItemError
from item2vec.explore import Explorer, read_metadata, serve

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
MAP_ITEMS = 90
K = 6


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def str_model():
    """Item2Vec on a synthetic log with clusters: ids like ``c03_i007``, a title and a category each."""
    events, truth = make_sessions(n_sessions=600, n_clusters=5, items_per_cluster=24, random_state=3)
    sessions = events.group_by("session_id", maintain_order=True).agg("item_id")["item_id"].to_list()
    emb = Item2Vec(vector_size=16, epochs=5, show_progress=False, compute_loss=False).fit(sessions).embeddings_
    titles = {i: f"Product {i.upper()} deluxe" for i in emb.ids.tolist()}
    categories = {i: f"cluster {truth.cluster[i]}" for i in emb.ids.tolist()}
    return emb, titles, categories


@pytest.fixture(scope="module")
def int_model():
    """Random vectors with int ids (as Online Retail's customers or MovieLens's movies have)."""
    rng = np.random.default_rng(7)
    ids = [int(x) for x in rng.choice(np.arange(1000, 99999), size=150, replace=False)]
    return ItemEmbeddings(ids, rng.normal(size=(150, 12)))


@pytest.fixture(scope="module")
def str_explorer(str_model):
    emb, titles, categories = str_model
    return Explorer(emb, titles, categories, map_items=MAP_ITEMS, k=K)


@pytest.fixture(scope="module")
def int_explorer(int_model):
    return Explorer(int_model, map_items=MAP_ITEMS, k=K, projection="pca")


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# ---------------------------------------------------------------------------
# the answers
# ---------------------------------------------------------------------------
def test_neighbours_are_the_models_in_the_ids_type(str_explorer, int_explorer, int_model):
    emb = str_explorer.embeddings
    item = emb.ids[5]
    ans = str_explorer.neighbours(item, 4)
    ids, scores = emb.similar_items(item, k=4)
    assert [n["id"] for n in ans["neighbours"]] == ids.tolist()
    np.testing.assert_allclose([n["score"] for n in ans["neighbours"]], scores, atol=1e-4)
    assert ans["item"]["title"] == f"Product {item.upper()} deluxe"
    # an int id typed as text is the int item; the answer keeps ints
    first = int(int_model.ids[0])
    ans = int_explorer.neighbours(str(first))
    assert ans["item"]["id"] == first and isinstance(ans["item"]["id"], int)
    assert all(isinstance(n["id"], int) for n in ans["neighbours"])
    assert len(ans["neighbours"]) == K


def test_unknown_item_and_bad_k_raise_specific_errors(str_explorer, int_explorer):
    with pytest.raises(UnknownItemError, match="nope"):
        str_explorer.neighbours("nope")
    with pytest.raises(UnknownItemError, match="abc"):
        int_explorer.neighbours("abc")  # not an int: unknown, not a crash
    with pytest.raises(OptionError, match="k must be an integer in 1..20"):
        str_explorer.neighbours(str_explorer.embeddings.ids[0], 0)
    with pytest.raises(OptionError, match="map_items"):
        Explorer(str_explorer.embeddings, map_items=1)


def test_search_finds_ids_and_titles_exact_id_first(str_explorer, int_explorer, int_model):
    emb = str_explorer.embeddings
    item = emb.ids[3]
    assert str_explorer.search(item)[0]["id"] == item
    assert str_explorer.search(item.upper())[0]["id"] == item  # case does not matter
    by_title = str_explorer.search(f"{item.upper()} DELUXE")
    assert [r["id"] for r in by_title] == [item]
    assert str_explorer.search("   ") == []
    assert str_explorer.search("no such thing") == []
    first = int(int_model.ids[0])
    assert int_explorer.search(str(first))[0]["id"] == first


def test_map_samples_and_places_every_item(str_explorer):
    n = len(str_explorer.embeddings)
    assert len(str_explorer.sample) == MAP_ITEMS < n
    assert str_explorer.xy.shape == (n, 2)
    assert np.isfinite(str_explorer.xy).all()
    assert (str_explorer.xy >= 0).all() and (str_explorer.xy <= 1).all()
    # the colours: one per category in the sample (5 clusters) plus "other"
    assert len(str_explorer.legend) == 6 and str_explorer.legend[-1] == "other"


def test_written_page_is_self_contained(str_explorer, tmp_path):
    page = str_explorer.write_html(tmp_path / "explore.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no CDN, no remote file
    assert "<svg" in page and '"mode":"file"' in page
    data = json.loads(re.search(r'<script id="i2v-data" type="application/json">(.*?)</script>', page, re.S).group(1))
    n = len(str_explorer.embeddings)
    assert len(data["items"]["id"]) == n and len(data["neighbours"]) == n
    assert len(data["map"]) == MAP_ITEMS
    row = 11
    ids, _ = str_explorer.embeddings.similar_items(data["items"]["id"][row], k=data["k_max"])
    assert [data["items"]["id"][j] for j, _ in data["neighbours"][row]] == ids.tolist()


def test_a_large_catalogue_file_holds_the_sample_and_its_neighbours(str_model, monkeypatch):
    import item2vec.explore as explore

    emb, titles, categories = str_model
    monkeypatch.setattr(explore, "FILE_MAX_ITEMS", 40)
    ex = Explorer(emb, titles, categories, map_items=25, k=3, k_max=3, projection="pca")
    page = ex.html("file")
    data = json.loads(re.search(r'<script id="i2v-data" type="application/json">(.*?)</script>', page, re.S).group(1))
    held = data["items"]["id"]
    assert data["n_items"] == len(emb) > len(held) >= 25
    sampled = [held[i] for i in data["map"]]
    assert sorted(sampled) == sorted(emb.ids[ex.sample].tolist())
    for i in data["map"]:  # every sampled item's neighbours are in the file, in the model's order
        want = emb.similar_items(held[i], k=data["k_max"])[0].tolist()
        assert [held[j] for j, _ in data["neighbours"][i]] == want


def test_a_title_with_a_script_tag_cannot_break_the_page(str_model, tmp_path):
    emb, titles, categories = str_model
    evil = dict(titles)
    evil[emb.ids[0]] = "</script><script>alert(1)</script>"
    page = Explorer(emb, evil, categories, map_items=20, projection="pca").html("file")
    assert page.count("</script>") == 2  # the data block's and the code's, nothing from the title


def test_read_metadata_wants_item_id_and_a_title(tmp_path):
    good = tmp_path / "m.csv"
    good.write_text("item_id,title,category\n1,Red mug,kitchen\n2,Blue mug,kitchen\n")
    assert read_metadata(good).columns == ["item_id", "title", "category"]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name\n1,x\n")
    with pytest.raises(MissingColumnError, match="expected columns item_id,title"):
        read_metadata(bad)
    with pytest.raises(FileNotFoundError, match="no metadata file"):
        read_metadata(tmp_path / "absent.csv")


# ---------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------
@pytest.fixture
def int_server(int_explorer):
    server = serve(int_explorer)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_api_answers_in_json_with_typed_ids(int_server, int_model):
    first = int(int_model.ids[0])
    status, body = _get(f"{int_server}/api/neighbours?id={first}&k=3")
    assert status == 200 and body["item"]["id"] == first
    assert [n["id"] for n in body["neighbours"]] == int_model.similar_items(first, k=3)[0].tolist()
    status, body = _get(f"{int_server}/api/search?q={first}")
    assert status == 200 and body["results"][0]["id"] == first
    status, body = _get(f"{int_server}/api/neighbours?id=12")
    assert status == 404 and "unknown item id 12" in body["error"]
    status, body = _get(f"{int_server}/api/neighbours?id={first}&k=x")
    assert status == 400 and "k must be an integer" in body["error"]
    status, body = _get(f"{int_server}/api/neighbours")
    assert status == 400 and "expected an id" in body["error"]
    status, body = _get(f"{int_server}/nowhere")
    assert status == 404


# ---------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------
def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_cli_serves_the_model_and_writes_the_page(int_model, tmp_path):
    model = int_model.save(tmp_path / "model")
    meta = tmp_path / "meta.csv"
    meta.write_text("item_id,title,category\n" + "".join(f"{i},thing {i},group {i % 3}\n" for i in int_model.ids[:40]))
    page = tmp_path / "page.html"
    proc = subprocess.Popen(
        [sys.executable, "-m", "item2vec.cli", "explore", "--model", str(model), "--metadata", str(meta),
         "--map-items", "50", "--projection", "pca", "--html", str(page), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            m = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
            url = m.group(1) if m else None
        assert url, proc.stderr.read() if proc.poll() is not None else "no 'serving' line"
        first = int(int_model.ids[0])
        status, body = _get(f"{url}api/neighbours?id={first}&k=2")
        assert status == 200 and body["item"]["title"] == f"thing {first}"
        assert body["item"]["category"] == f"group {first % 3}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert '"mode":"file"' in page.read_text()


def test_cli_opens_a_registry_uri(str_model, tmp_path):
    emb = str_model[0]
    pytest.importorskip("mlflow")
    from item2vec.cli import main
    from item2vec.registry import ServedModel, log_model, set_alias
    from item2vec.tracking import start_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with start_run("explore", experiment="explore", tracking_uri=uri):
        info = log_model(ServedModel(emb), registered_model_name="explore-toy")
    set_alias("explore-toy", info.registered_model_version, "champion", tracking_uri=uri)
    page = tmp_path / "page.html"
    assert main(["explore", "--model", "models:/explore-toy@champion", "--tracking-uri", uri, "--html", str(page),
                 "--no-serve", "--projection", "pca", "--quiet"]) == 0
    data = json.loads(re.search(r'<script id="i2v-data" type="application/json">(.*?)</script>',
                                page.read_text(), re.S).group(1))
    assert data["items"]["id"] == emb.ids.tolist() and data["int_ids"] is False


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, int_model):
    model = int_model.save(tmp_path / "model")
    for args, expected in (
        (["--model", str(tmp_path / "absent")], "no model at"),
        (["--model", str(model), "--no-serve"], "--no-serve writes the page with --html"),
        (["--model", str(model), "-k", "0"], "-k must be in 1..100"),
        (["--model", str(model), "--metadata", str(tmp_path / "nope.csv")], "no metadata file"),
    ):
        r = subprocess.run([sys.executable, "-m", "item2vec.cli", "explore", *args], capture_output=True, text=True,
                           env=_env(), timeout=120)
        assert r.returncode == 2, r.stderr
        assert expected in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# ---------------------------------------------------------------------------
# in a real browser
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Chromium and chromedriver are not installed: apt-get install -y chromium chromium-driver "
                    "(see the README, 'Explore the item space')")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--allow-file-access-from-files"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float = 20.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def _type(driver, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def _shown(driver) -> tuple[str, list[str], list[str]]:
    """What the panel shows: the chosen id, the neighbours' ids and scores."""
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#neighbours tbody tr")
    return (driver.find_element(By.ID, "chosen-id").text,
            [r.find_element(By.CSS_SELECTOR, "td:nth-child(3)").text for r in rows],
            [r.find_element(By.CSS_SELECTOR, "td.score").text for r in rows])


def _errors(driver) -> list[str]:
    """Console errors other than the API's own 404 for an unknown id."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and "404" not in e["message"]]


def _what_a_user_sees(driver, emb: ItemEmbeddings, titles: dict, unknown: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#map circle.pt")) == MAP_ITEMS)
    assert driver.find_element(By.ID, "chosen").is_displayed() is False
    # typing an id shows its neighbours, in the model's order, with scores and titles
    item = emb.ids[7].item() if hasattr(emb.ids[7], "item") else emb.ids[7]
    _type(driver, str(item))
    _wait(driver, lambda d: d.find_element(By.ID, "chosen-id").text == str(item))
    ids, scores = emb.similar_items(item, k=K)
    chosen, shown_ids, shown_scores = _shown(driver)
    assert shown_ids == [str(i) for i in ids.tolist()]
    np.testing.assert_allclose([float(s) for s in shown_scores], scores, atol=6e-4)  # shown with 3 decimals
    if titles:
        assert driver.find_element(By.ID, "chosen-title").text == titles[item]
        first_title = driver.find_element(By.CSS_SELECTOR, "#neighbours tbody tr td:nth-child(4)").text
        assert first_title == titles[ids[0]]
    # the map rings the item and its neighbours, beside the sample's points
    assert len(driver.find_elements(By.CSS_SELECTOR, "#map circle.hl.nb")) == K
    assert len(driver.find_elements(By.CSS_SELECTOR, "#map circle.hl.sel")) == 1
    assert len(driver.find_elements(By.CSS_SELECTOR, "#map circle.pt")) == MAP_ITEMS
    # clicking a neighbour moves to it
    target = ids[2].item() if hasattr(ids[2], "item") else ids[2]
    driver.find_elements(By.CSS_SELECTOR, "#neighbours a.nb")[2].click()
    _wait(driver, lambda d: d.find_element(By.ID, "chosen-id").text == str(target))
    assert _shown(driver)[1] == [str(i) for i in emb.similar_items(target, k=K)[0].tolist()]
    assert driver.current_url.endswith("#item=" + str(target))
    # back goes back to the first item
    driver.back()
    _wait(driver, lambda d: d.find_element(By.ID, "chosen-id").text == str(item))
    # typing an id, without Enter, shows it after a pause
    other = emb.ids[11].item() if hasattr(emb.ids[11], "item") else emb.ids[11]
    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(str(other))
    _wait(driver, lambda d: d.find_element(By.ID, "chosen-id").text == str(other))
    assert _shown(driver)[1] == [str(i) for i in emb.similar_items(other, k=K)[0].tolist()]
    # hovering a point labels it
    point = driver.find_elements(By.CSS_SELECTOR, "#map circle.pt")[0]
    ActionChains(driver).move_to_element(point).perform()
    tip = driver.find_element(By.ID, "tip")
    _wait(driver, lambda d: tip.is_displayed())
    assert tip.text.startswith(point.get_attribute("data-id"))
    # clicking a point on the map moves to it
    driver.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", point)
    _wait(driver, lambda d: d.find_element(By.ID, "chosen-id").text == point.get_attribute("data-id"))
    # an unknown id is a message on the same page, not an error page
    _type(driver, unknown)
    message = driver.find_element(By.ID, "message")
    _wait(driver, lambda d: message.is_displayed())
    assert "unknown item id" in message.text and unknown in message.text
    assert not driver.find_element(By.ID, "chosen").is_displayed()
    assert driver.find_element(By.ID, "q").is_displayed()
    assert _errors(driver) == []


def test_browser_live_page_str_ids(browser, str_explorer, str_model):
    server = serve(str_explorer)
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        _what_a_user_sees(browser, str_explorer.embeddings, str_model[1], unknown="no_such_item")
    finally:
        server.shutdown()
        server.server_close()


def test_browser_live_page_int_ids(browser, int_explorer):
    server = serve(int_explorer)
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        _what_a_user_sees(browser, int_explorer.embeddings, {}, unknown="424242")
    finally:
        server.shutdown()
        server.server_close()


def test_browser_written_file_works_offline(browser, str_explorer, str_model, tmp_path):
    page = str_explorer.write_html(tmp_path / "explore.html")
    browser.get(page.as_uri())
    _what_a_user_sees(browser, str_explorer.embeddings, str_model[1], unknown="no_such_item")


def test_browser_search_by_title_lists_matches(browser, str_explorer):
    from selenium.webdriver.common.by import By

    server = serve(str_explorer)
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        item = str_explorer.embeddings.ids[4]
        browser.find_element(By.ID, "q").send_keys(f"{item.upper()} deluxe")
        _wait(browser, lambda d: d.find_element(By.ID, "results").is_displayed())
        items = browser.find_elements(By.CSS_SELECTOR, "#results li")
        assert [li.find_element(By.CSS_SELECTOR, ".rid").text for li in items] == [item]
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(browser).click(items[0]).perform()
        _wait(browser, lambda d: d.find_element(By.ID, "chosen-id").text == item)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_browser_online_retail_screenshot(browser, shared_datasets):
    """The page on Online Retail (titles from the data): a screenshot in runs/ for people to look at."""
    from selenium.webdriver.common.by import By

    if not (shared_datasets / "online-retail" / "by-day").is_dir():
        pytest.skip("online-retail is not among the shared datasets")
    from item2vec.data import PrepareConfig, prepare, read_events, read_item_metadata
    from item2vec.explore import _metadata_maps
    from item2vec.viz import title_categories
    from pipelines.datasets import ONLINE_RETAIL_THEMES

    path = shared_datasets / "online-retail" / "by-day"
    events = read_events(path, "online-retail", start="2011-09-01")
    data = prepare(events, PrepareConfig(test_days=7, valid_days=7, max_session_length=50),
                   metadata=read_item_metadata(path, "online-retail"), name="online-retail")
    emb = Item2Vec(vector_size=32, epochs=3, show_progress=False, compute_loss=False).fit(
        data.decode(data.train)).embeddings_
    titles, _ = _metadata_maps(data.metadata, int_ids=False)
    explorer = Explorer(emb, titles, title_categories(titles, ONLINE_RETAIL_THEMES), map_items=600, k=10)
    server = serve(explorer)
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#map circle.pt")) == 600)
        item = "85123A" if "85123A" in emb else emb.ids[0]  # WHITE HANGING HEART T-LIGHT HOLDER
        _type(browser, item)
        _wait(browser, lambda d: d.find_element(By.ID, "chosen-id").text == item)
        assert browser.find_element(By.ID, "chosen-title").text == titles[item]
        assert _shown(browser)[1] == emb.similar_items(item, k=10)[0].tolist()
        out = ROOT / "runs" / "explore-online-retail.png"
        out.parent.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(out))
        print(f"\nscreenshot: {out} ({len(emb):,} items; {item} {titles[item]!r})")
    finally:
        server.shutdown()
        server.server_close()
