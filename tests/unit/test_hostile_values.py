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
