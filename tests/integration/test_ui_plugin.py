"""The "Customer segments" page: a real Airflow API server with the plugin, loaded in
headless Debian Chromium. Checks the visible text and links, and saves a screenshot to
``build/screenshots/customer_segments.png``."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import browser, chromium_path
from tests.conftest import free_port, require_service
from tests.integration.conftest import LAST, ScoredShop

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scored_shop")]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "build" / "screenshots" / "customer_segments.png"
IFRAME_TEXT = """(() => {
  const f = document.querySelector('iframe');
  const body = f && f.contentDocument && f.contentDocument.body;
  return body && body.innerText.includes('Latest validation results') ? body.innerText : null;
})()"""


@pytest.fixture(scope="module")
def api_server(scored_shop: ScoredShop) -> Iterator[str]:
    """``airflow api-server`` on the scored shop's Airflow home, plugins loaded at start."""
    from clm.settings import get_settings

    settings = get_settings(home=scored_shop.home)
    airflow = settings.airflow_home
    port = free_port()
    env = scored_shop.env | {
        "AIRFLOW_HOME": str(airflow),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow / 'airflow.db'}",
        "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
    }
    log = open(scored_shop.home.parent / "api-server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow"), "api-server", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    tail = (scored_shop.home.parent / "api-server.log").read_text()[-3000:]
                    pytest.fail(f"airflow api-server did not start:\n{tail}")
                time.sleep(1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_the_plugin_is_registered(api_server: str) -> None:
    import json

    with urllib.request.urlopen(f"{api_server}/api/v2/plugins") as response:
        plugins = {p["name"]: p for p in json.load(response)["plugins"]}
    views = plugins["clm_segments"]["external_views"]
    assert views[0]["name"] == "Customer segments"
    assert views[0]["url_route"] == "customer-segments"


def test_customer_segments_page_in_chromium(api_server: str, scored_shop: ScoredShop) -> None:
    require_service("Chromium", chromium_path() is not None, "apt-get install chromium")
    from clm import warehouse
    from clm.report import champions
    from clm.settings import get_settings

    settings = get_settings(home=scored_shop.home)
    latest = warehouse.query(settings.warehouse, "SELECT MAX(ds) AS ds FROM segment_summary")
    day = latest["ds"].iloc[0].date()
    assert day >= LAST
    summary = warehouse.query(
        settings.warehouse, "SELECT * FROM segment_summary WHERE ds = ?", [day]
    )
    champs = champions(settings)
    with browser(height=1500) as page:
        page.goto(f"{api_server}/plugin/customer-segments")
        text = page.wait_for(IFRAME_TEXT)
        nav = page.evaluate("document.body.innerText")
        assert "Customer segments" in nav and "Dags" in nav  # inside the Airflow UI
        for heading in (
            "Segment summary",
            f"Latest scored day {day}",
            "Transitions since",
            "Champions",
            "Latest validation results",
        ):
            assert heading in text, heading
        for row in summary.itertuples():
            assert f"{row.segment}\t{row.customers:,}" in text
        for c in champs:
            assert f"{c['name']}\tv{c['version']}" in text
        links = page.evaluate(
            "Array.from(document.querySelector('iframe').contentDocument.links).map(a => a.href)"
        )
        assert {c["run_id"] for c in champs} <= {
            link.rsplit("/runs/", 1)[-1].split("?")[0] for link in links if "/runs/" in link
        }
        docs = [link for link in links if "/clm/data-docs/" in link]
        assert docs, links
        status = page.evaluate(f"fetch({docs[0]!r}).then(r => r.status)")
        assert status == 200
        time.sleep(1)  # let fonts and the nav settle before the picture
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(SCREENSHOT)
    assert SCREENSHOT.stat().st_size > 20_000
