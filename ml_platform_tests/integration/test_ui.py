"""The Dagster UI in a real browser: find the asset graph, materialize the pipeline from the UI.

`dagster dev` (webserver + daemon) runs on a free port of 127.0.0.1 with a temp DAGSTER_HOME (the
`dagster_dev` fixture of test_webserver). Debian's Chromium, driven by Playwright (never
`playwright install`: no browser is downloaded), only ever reaches 127.0.0.1. Screenshots of the
asset graph and of the model_metrics page are saved to test-artifacts/ui/.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from ml_platform_tests.support.constants import DAYS, END_DAY, MODEL_NAME, ROOT
from ml_platform_tests.support.dagster_dev import (  # noqa: F401 (dagster_dev: a fixture, used by name)
    dagster_dev,
    graphql,
    ingest_earlier_days,
    wait_for_run,
)
from ml_platform_tests.support.platform import service_unavailable

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
except ImportError:  # the dev extra is not installed
    sync_playwright = None

pytestmark = pytest.mark.cli

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOW_TO_INSTALL = "apt-get install chromium (or: make services)"
ARTIFACTS = ROOT / "test-artifacts" / "ui"
GROUPS = ["demo", "diabetes"]  # one asset group per pipeline of pipelines.yaml
ASSETS = ["raw_data", "training_data", "train_split", "test_split", "trained_model", "model_metrics", "deployed_model"]
# Wide enough for the expanded graph to draw full asset nodes, not the zoomed-out outlines.
VIEWPORT = {"width": 2400, "height": 1200}

UI_RUNS = """
query($partition: String!) {
  runsOrError(filter: {pipelineName: "demo_training",
                       tags: [{key: "dagster/partition", value: $partition}]}) {
    ... on Runs { results { runId status tags { key value } } } } }
"""


@pytest.fixture
def chromium() -> Iterator[Browser]:
    """Headless Debian Chromium; skipped (failed under CI) when it is missing or cannot start."""
    if sync_playwright is None:
        service_unavailable("Playwright", 'pip install -e ".[dev]"')
    if not CHROMIUM.is_file():
        service_unavailable("Chromium", HOW_TO_INSTALL)
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=60_000
            )
        except PlaywrightError as error:
            service_unavailable("Chromium", f"{HOW_TO_INSTALL} ({str(error).splitlines()[0]})")
        try:
            yield browser
        finally:
            browser.close()


def _nav(page: Page, name: str):
    """A link of the left navigation (its accessible name also holds the icon's name)."""
    return page.get_by_role("navigation").get_by_role("link", name=re.compile(rf"{name}$"))


def _dismiss_community_dialog(page: Page) -> None:
    """On a new instance, Dagster asks (1 s after the first page load) to join its community."""
    dialog = page.get_by_role("dialog").filter(has_text="Join the Dagster community")
    try:
        dialog.get_by_role("button", name="Skip").click(timeout=20_000)
    except PlaywrightTimeoutError:
        return  # not asked: already dismissed on this instance
    expect(dialog).to_be_hidden()


def _settled(locator, timeout: float = 10) -> None:
    """Wait until an element stops moving (the graph pans and zooms to fit after a layout)."""
    deadline = time.monotonic() + timeout
    previous = None
    while time.monotonic() < deadline:
        box = locator.bounding_box()
        if box is not None and box == previous:
            return
        previous = box
        time.sleep(0.3)
    raise AssertionError(f"{locator} kept moving for {timeout} s")


def _show_asset_graph(page: Page) -> None:
    """Lineage: the global asset graph, groups expanded, nodes with description and owner
    (idempotent: the group list beside the graph comes back on every visit)."""
    _nav(page, "Lineage").click()
    title = page.get_by_text("Global asset lineage")
    expect(title).to_be_visible()
    # Hide the group list beside the graph: more room, so the nodes are drawn in full.
    page.get_by_role("button", name="panel_show_right", exact=True).click()
    for group in GROUPS:
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    # Description and owner are not among the default facets of a node.
    page.get_by_role("button", name="config", exact=True).click()
    facets = page.get_by_role("dialog").filter(has_text="Choose Asset Facets")
    for facet in ("Description", "Owner"):
        box = facets.get_by_role("checkbox", name=facet)
        if not box.is_checked():
            facets.get_by_text(facet, exact=True).click()  # the input itself is hidden
        expect(box).to_be_checked()
    facets.get_by_role("button", name="Save").click()
    expect(facets).to_be_hidden()
    # Groups start collapsed (a box per group with its asset count); expanded, they stay so for
    # the session. The group boxes are drawn by now, so the check below does not race.
    if not page.get_by_text(ASSETS[0], exact=True).first.is_visible():
        page.get_by_role("button", name="settings", exact=True).click()
        page.get_by_role("menuitem", name=re.compile("Expand all groups")).click()
        title.click()  # the menu stays open until a click elsewhere
        expect(page.get_by_role("menu")).to_be_hidden()
    for asset in ASSETS:  # in both pipelines
        expect(page.get_by_text(asset, exact=True)).to_have_count(len(GROUPS))
        expect(page.get_by_text(asset, exact=True).first).to_be_visible()
    expect(page.get_by_text("Accuracy, weighted precision/recall/F1", exact=False)).to_be_visible()


def _launch_pipeline_for(page: Page, day: str) -> None:
    """Jobs → demo_training → Materialize all… → partition `day` → Launch 1 run."""
    _nav(page, "Jobs").click()
    page.get_by_role("link", name=re.compile(r"\bdemo_training$")).click()
    expect(page.get_by_role("heading", name="demo_training")).to_be_visible()
    page.get_by_role("button", name=re.compile("Materialize all")).click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize 7 assets")
    # The dialog shows the last 90 days by default; `day` is a fixed date, maybe older.
    dialog.get_by_role("button", name=re.compile(r"^(Last \d+ days|All time|This month|Last month)")).click()
    page.get_by_role("menuitem", name=re.compile("All time$")).click()
    expect(dialog.get_by_role("button", name=re.compile("^All time"))).to_be_visible()
    partitions = dialog.get_by_role("textbox")
    partitions.fill(day)
    partitions.press("Enter")
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    dialog.get_by_role("button", name="Launch 1 run").click()
    expect(dialog).to_be_hidden(timeout=60_000)


def _ui_run(url: str, day: str, timeout: float = 30) -> dict:
    """The run the UI launched for `day`, once it is in the instance."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = graphql(url, UI_RUNS, {"partition": day})["runsOrError"]["results"]
        if runs:
            assert len(runs) == 1, runs
            return runs[0]
        time.sleep(0.5)
    raise AssertionError(f"no demo_training run for {day} within {timeout} s of the launch")


def _screenshot_model_metrics(page: Page) -> None:
    """Catalog → model_metrics: description, metadata table with the report, then the plots."""
    _nav(page, "Catalog").click()
    page.get_by_role("link", name=re.compile(r"model_metrics$")).first.click()
    expect(page).to_have_url(re.compile(r"/assets/(demo|diabetes)/model_metrics"))
    page.goto("/assets/demo/model_metrics")  # the demo pipeline's, the one the test ran
    # Tall enough for the metadata table and the markdown report (the page scrolls inside).
    page.set_viewport_size({"width": 1920, "height": 2000})
    expect(page.get_by_text("Accuracy, weighted precision/recall/F1, confusion matrix")).to_be_visible()
    # Keys of the metadata table (the report's own tables have "Accuracy", "Test rows" too).
    for key in ("Precision", "Confusion matrix", "Report"):
        expect(page.get_by_role("cell", name=key, exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Evaluation")).to_be_visible()  # the markdown report
    expect(page.get_by_text("Scikit Learn")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "model_metrics.png")

    page.get_by_role("button", name=re.compile("Plots$")).click()
    # By partition, the plots cover the latest partitions of the definition, which a fixed
    # END_DAY may be older than; by event they show every materialization.
    page.get_by_role("button", name=re.compile("Events$")).click()
    for metric in ("Accuracy", "F1", "Precision", "Recall"):
        expect(page.get_by_text(metric, exact=True)).to_be_visible()
    expect(page.locator("canvas").first).to_be_visible()
    page.wait_for_timeout(1_000)  # the charts animate in
    page.screenshot(path=ARTIFACTS / "model_metrics_plots.png")


def _screenshot_signature(page: Page) -> None:
    """deployed_model: the signature of the version it deployed, as a table in its metadata."""
    page.goto("/assets/demo/deployed_model")
    page.set_viewport_size({"width": 1920, "height": 2000})
    expect(page.get_by_role("cell", name="Signature", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="Signature digest", exact=True)).to_be_visible()
    expect(page.get_by_text("30 columns (30 numeric), target 'target', classes 0, 1", exact=False)).to_be_visible()
    expect(page.get_by_text("mean radius", exact=True).first).to_be_visible()  # a row of the table
    page.screenshot(path=ARTIFACTS / "deployed_model_signature.png")


def test_ui_finds_the_graph_and_materializes_the_pipeline(chromium, dagster_dev):
    url, port, tmp_path, _, _ = dagster_dev
    # The earlier days of the training window first: raw_data for them as one single-run range.
    ingest_earlier_days(url, port, DAYS)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    context = chromium.new_context(base_url=url, viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    # Nothing but the webserver under test (the UI's external links are never followed).
    context.route(lambda u: urlparse(u).hostname != "127.0.0.1", lambda route: route.abort())
    page = context.new_page()
    try:
        page.goto("/")
        expect(_nav(page, "Lineage")).to_be_visible()
        _dismiss_community_dialog(page)

        _show_asset_graph(page)
        _launch_pipeline_for(page, END_DAY)

        run = _ui_run(url, END_DAY)
        assert wait_for_run(url, run["runId"], timeout=120) == "SUCCESS"
        (run,) = graphql(url, UI_RUNS, {"partition": END_DAY})["runsOrError"]["results"]
        assert run["status"] == "SUCCESS"
        assert {"key": "dagster/from_ui", "value": "true"} in run["tags"]
        assert (tmp_path / "model_store" / MODEL_NAME / "production.json").is_file()

        # The graph again, now with the run's results: every node materialized, the gate passed.
        _show_asset_graph(page)
        expect(page.get_by_text("2 / 2 Passed")).to_be_visible()  # model_metrics' gate and signature check
        _settled(page.get_by_text("deployed_model", exact=True).first)
        page.screenshot(path=ARTIFACTS / "asset_graph.png")

        _screenshot_model_metrics(page)
        _screenshot_signature(page)
    except Exception:
        with contextlib.suppress(PlaywrightError):
            page.screenshot(path=ARTIFACTS / "failure.png")
        raise
    finally:
        context.close()
