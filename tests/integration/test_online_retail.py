"""The whole UCI Online Retail file through `clm import online-retail` and the GX gate.

The expected counts are the ones in ../shared/data/online_retail/README.md.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import duckdb
import pytest

from clm.core.settings import PROJECT_ROOT, Settings
from clm.data.importers import import_online_retail
from clm.data.ingest import ingest
from clm.data.warehouse import query
from tests.conftest import require_service

SOURCE = Path(
    os.environ.get(
        "CLM_ONLINE_RETAIL",
        PROJECT_ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz",
    )
)

pytestmark = pytest.mark.slow


def test_import_and_ingest_match_the_readme(settings: Settings) -> None:
    require_service("the UCI Online Retail file", SOURCE.exists(), f"{SOURCE} is not there")
    report = import_online_retail(SOURCE, settings.landing_dir)
    # README: 541,909 rows; 135,080 without a customer id; 9,288 cancellation rows
    # (383 of them without a customer id); after cleaning 397,924 lines, 18,536 invoices.
    assert report.lines_read == 541_909
    assert report.lines_without_customer == 135_080
    assert report.cancellation_lines == 9_288 - 383
    assert report.sale_lines == 397_924
    assert report.lines_without_customer + report.cancellation_lines + report.sale_lines == (
        report.lines_read
    )
    assert report.completed_orders == 18_536
    assert report.customers == 4_372  # README: 4,372 customer ids
    assert report.notes == []  # the sha256 matches the README's

    result = ingest(settings, date(2011, 12, 9))
    assert len(result.days) == report.days == 305
    runs = query(
        settings.warehouse,
        "SELECT table_name, sum(landed) AS landed, sum(validated) AS validated, "
        "sum(quarantined) AS quarantined FROM validation_runs GROUP BY 1",
    ).set_index("table_name")
    assert (runs.landed == runs.validated + runs.quarantined).all()
    assert runs.loc["orders", "landed"] == report.orders == 22_190
    assert runs.loc["customers", "validated"] == 4_372

    orders = duckdb.sql(
        f"SELECT * FROM read_parquet('{settings.validated_dir}/orders/*/*.parquet')"
    ).df()
    bad = duckdb.sql(
        f"SELECT * FROM read_parquet('{settings.quarantine_dir}/orders/*/*.parquet')"
    ).df()
    completed = orders[orders.status == "completed"]
    # The 4 invoices made only of zero-price lines break `amount > 0`: quarantined, not lost.
    assert len(bad) == 4 and bad.reason.eq("amount is not in (0, 1000000]").all()
    assert len(completed) + len(bad) == 18_536
    customers = set(completed.customer_id) | set(bad.customer_id)
    assert len(customers) == 4_339  # README: 4,339 customers after cleaning

    again = import_online_retail(SOURCE, settings.landing_dir)  # re-import: same bytes
    assert again.as_dict() == report.as_dict()
    assert ingest(settings, date(2011, 12, 9)).days == []


def test_evaluate_reproduces_the_published_baselines(settings: Settings, tmp_path: Path) -> None:
    """DESIGN section 10's reference split: 3,370 test customers, 43% churn, and the
    published baseline figures, through `clm evaluate` (untuned models, for time)."""
    import json

    from typer.testing import CliRunner

    from clm.app.cli import app

    require_service("the UCI Online Retail file", SOURCE.exists(), f"{SOURCE} is not there")
    out = tmp_path / "out.json"
    args = ["evaluate", "--dataset", "online-retail", "--data", str(SOURCE), "--trials", "0"]
    args += ["--bootstrap", "50", "--origins", "1", "--no-track", "--json", str(out)]
    # The published split: two training cutoffs (the default trains on weekly ones).
    args += [arg for c in ("2011-03-11", "2011-06-09", "2011-09-09") for arg in ("--cutoff", c)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["cutoffs"] == ["2011-03-11", "2011-06-09", "2011-09-09"]
    assert report["horizon_days"] == 91 and report["rows"]["test"] == 3_370
    assert report["churn_rate_test"] == pytest.approx(0.43, abs=0.005)
    got = {
        (task, e["name"], m): v["value"]
        for task, body in report["tasks"].items()
        for e in body["candidates"]
        for m, v in e["metrics"].items()
    }
    published = {
        ("churn", "recency", "roc_auc"): 0.683,
        ("churn", "rfm_logreg", "roc_auc"): 0.737,
        ("churn", "rfm_logreg", "pr_auc"): 0.622,
        ("churn", "rfm_logreg", "log_loss"): 0.613,
        ("churn", "bgnbd", "roc_auc"): 0.729,
        ("clv", "bgnbd_gg", "spearman"): 0.511,
        ("clv", "bgnbd_gg", "normalized_gini"): 0.688,
    }
    # Our run rate (last year's spend pro-rated) is stronger than the published one
    # (Spearman 0.52 against 0.457), a harder bar for the models; it is not checked here.
    off = {k: (round(got[k], 3), v) for k, v in published.items() if abs(got[k] - v) > 0.025}
    assert not off, f"baselines moved away from the published figures: {off}"
    assert "DESIGN section 10 targets" in result.output
