"""The Customer segments page renders on an empty home and answers 503 while DuckDB is locked.

The page inside the Airflow UI, with data, is tested in tests/integration/test_scoring.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clm.core.settings import PROJECT_ROOT, Settings


@pytest.fixture
def page(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "plugins"))
    import clm_segments

    return clm_segments


def test_an_empty_home_says_what_to_run(page) -> None:
    response = page.segments_page()
    body = response.body.decode()
    assert response.status_code == 200
    assert "no scored rows yet: run clm_score" in body
    assert "no champion yet" in body and "no validation runs yet" in body


def test_a_locked_warehouse_gives_503_not_a_traceback(page, settings: Settings) -> None:
    path = Path(settings.warehouse.removeprefix("duckdb:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        response = page.segments_page()
        assert response.status_code == 503
        assert "Reload" in response.body.decode()
    finally:
        holder.kill()
        holder.wait()
    assert page.segments_page().status_code == 200


def test_data_docs_refuse_paths_outside_the_docs(page) -> None:
    from fastapi import HTTPException

    with pytest.raises(HTTPException):
        page.data_docs("../../../../etc/passwd")
