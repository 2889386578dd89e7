"""Hostile landed values are inert wherever they are shown.

A landed value is data, never markup: not in the Great Expectations data docs,
not on the pages the plugin serves on the Airflow origin, not in the terminal.
"""

from __future__ import annotations

import html
import io
from pathlib import Path

import pytest
from rich.table import Table

from clm.core.console import InertConsole, inert, styled
from clm.core.io import read_partition
from clm.core.settings import PROJECT_ROOT, Settings
from clm.data.ingest import ingest
from tests.unit.test_bad_inputs import D1, N_ORDERS, _orders, _set, land, land_two_days


@pytest.fixture
def shop(settings: Settings) -> Settings:
    return land_two_days(settings)


SCRIPT = "<script>alert('landed')</script>"
IMAGE = "<img src=x onerror=alert(1)>"


def _hostile_orders(settings: Settings) -> None:
    frame = _set("status", 5, IMAGE)(_set("status", 2, SCRIPT)(_orders(D1, 100, N_ORDERS)))
    land(settings, "orders", D1, frame, "part.parquet")


def test_landed_markup_is_escaped_in_the_data_docs(shop: Settings) -> None:
    _hostile_orders(shop)
    ingest(shop, D1)
    bad = read_partition(shop.quarantine_dir, "orders", D1)
    assert set(bad.status) == {SCRIPT, IMAGE}  # quarantined, with the value kept as landed
    pages = [p.read_text() for p in shop.gx_dir.rglob("*.html")]
    assert pages
    for page in pages:
        assert SCRIPT not in page and IMAGE not in page
    shown = "\n".join(pages)
    assert html.escape(SCRIPT) in shown  # shown as text, not dropped
    assert html.escape(IMAGE) in shown


@pytest.fixture
def plugin(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "plugins"))
    import clm_segments

    return clm_segments


def test_pages_on_the_airflow_origin_run_no_script(shop: Settings, plugin) -> None:
    ingest(shop, D1)
    page = plugin.segments_page()
    assert "default-src 'none'" in page.headers["content-security-policy"]
    docs_root = plugin._docs_root()
    some_page = next(docs_root.rglob("validations/**/*.html"))
    served = plugin.data_docs(str(some_page.relative_to(docs_root)))
    policy = served.headers["content-security-policy"]
    assert policy.startswith("sandbox ") and "allow-scripts" not in policy
    assert "allow-same-origin" not in policy
    assert served.headers["x-content-type-options"] == "nosniff"


HOSTILE = [
    "[bold red]not bold[/]",
    "[link=https://evil.example]click[/link]",
    "\x1b[2J\x1b[31mred",
    "abc\u202egnp.exe",
    "back\\",
    "[/]",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_the_terminal_shows_values_verbatim_and_inert(value: str) -> None:
    out = io.StringIO()
    console = InertConsole(file=out, force_terminal=False, width=200)
    table = Table(title=f"Online features of {value}", min_width=120)
    table.add_column("value")
    table.add_row(value)
    console.print(styled("[red]error:[/] {}", value))
    console.print(value)
    console.print(table)
    text = out.getvalue()
    assert text.count(inert(value)) == 4, text  # every place shows the value itself
    assert "\x1b" not in text and "\u202e" not in text
    assert Path(inert(value)).name  # nothing stripped to empty


def test_inert_escapes_controls_and_keeps_plain_text() -> None:
    assert inert("a\tb\nc") == "a\tb\nc"
    assert inert("\x1b[31m") == "\\x1b[31m"
    assert inert("x\u202ey") == "x\\u202ey"
    assert inert("Café ☕") == "Café ☕"


def test_recommended_categories_are_inert_in_the_report_the_page_and_the_terminal(
    settings: Settings, plugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Category names are landed text; recommended, they reach every surface."""
    import json
    from datetime import date

    import pandas as pd

    from clm.app import report
    from clm.app.cli import render
    from clm.data import warehouse
    from clm.data.customers import CustomerView

    ds = date(2024, 5, 1)
    lists = [[SCRIPT, IMAGE, "\x1b[2Jtoys"], [IMAGE], []]
    rows = pd.DataFrame(
        {
            "ds": ds,
            "customer_id": ["c1", "c2", "c3"],
            "lifecycle_stage": "active",
            "churn_probability": [0.1, 0.2, 0.3],
            "expected_spend": [1.0, 2.0, 3.0],
            "value_tier": "mid",
            "rfm_segment": "Loyal",
            "segment": "mid_value_healthy",
            "next_best_action": "cross_sell",
            "top_reasons": None,
            "churn_model_version": "1",
            "clv_model_version": "1",
            "recommended_categories": [json.dumps(x, ensure_ascii=False) for x in lists],
            "reco_model_version": "1",
            "behaviour_cluster": None,
            "cluster_model_version": None,
            "conversion_probability": None,
            "conversion_model_version": None,
        }
    )
    warehouse.replace_partition(settings.warehouse, "customer_segments", rows, ds=ds)
    table = report.recommendation_table(rows)
    assert dict(zip(table["category"], table["in top 3"], strict=True))[IMAGE] == 2
    monkeypatch.setattr(report, "champions", lambda _settings: [])
    page = report.render(report.day_data(settings, ds))
    served = plugin.segments_page().body.decode()
    for shown in (page, served):
        assert SCRIPT not in shown and IMAGE not in shown
        assert html.escape(SCRIPT) in shown and html.escape(IMAGE) in shown
    out = io.StringIO()
    monkeypatch.setattr(render, "console", InertConsole(file=out, width=200))
    render.customer(CustomerView("c1", {}, rows.iloc[0].to_dict(), 1.0, 1.0))
    text = out.getvalue()
    assert "\x1b" not in text and inert("\x1b[2Jtoys") in text
    assert f"the cross-sell offers {SCRIPT}" in text  # verbatim, as text
