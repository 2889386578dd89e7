"""`clm evaluate` end to end on a small simulated shop, through the real gate, Feast and MLflow."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from clm.app.cli import app
from clm.core.settings import Settings
from clm.ml.registry import setup_mlflow

pytestmark = pytest.mark.slow


def test_evaluate_prints_and_writes_the_comparison_with_the_oracle_ceiling(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fewer, wider-spaced cutoffs than the weekly default keep make test quick; the
    # default's arithmetic is tested in tests/unit/test_features.py.
    monkeypatch.setenv("CLM_TRAIN_CUTOFFS", "6")
    monkeypatch.setenv("CLM_CUTOFF_SPACING_DAYS", "14")
    out = tmp_path / "out.json"
    args = ["evaluate", "--dataset", "simulated", "--customers", "1000", "--days", "300"]
    args += ["--trials", "0", "--bootstrap", "60"]  # tuning: test_models, the bench test
    result = CliRunner().invoke(app, [*args, "--origins", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["split"] == "time" and len(report["cutoffs"]) == 7  # 6 training cutoffs
    assert report["rows"]["test"] > 200 and report["rows"]["val"] > 0
    for task, metrics in (
        ("churn", {"roc_auc", "pr_auc", "log_loss", "brier", "top_decile_lift"}),
        ("clv", {"mae", "rmse", "spearman", "normalized_gini", "total_pred_vs_actual_pct"}),
    ):
        entries = {e["name"]: e for e in report["tasks"][task]["candidates"]}
        baselines = {"churn": {"recency", "rfm_logreg", "bgnbd"}, "clv": {"run_rate", "bgnbd_gg"}}
        assert {"xgboost", "lightgbm", "oracle"} | baselines[task] == set(entries)
        for e in entries.values():
            assert metrics <= set(e["metrics"])
            for name, m in e["metrics"].items():
                if name == "calibration_error":
                    # Resampling adds binning noise, so bootstrap ECEs sit above the
                    # sample's: its percentile interval need not hold the estimate.
                    assert 0 <= m["low"] <= m["high"]
                    continue
                assert m["low"] <= m["value"] <= m["high"] or m["low"] == m["high"]
        primary = report["tasks"][task]["primary"]
        oracle = entries["oracle"]["metrics"][primary]["value"]
        best_model = max(entries[f]["metrics"][primary]["value"] for f in ("xgboost", "lightgbm"))
        # the oracle is the ceiling: no model may pass it (beyond bootstrap noise)
        assert best_model <= entries["oracle"]["metrics"][primary]["high"]
        assert oracle > 0.6
        versus = report["tasks"][task]["versus_best_baseline"]
        assert set(versus) == set(entries["xgboost"]["metrics"])
        for row in versus.values():
            assert row["model"] in {"xgboost", "lightgbm"} and row["baseline"] in baselines[task]
            assert row["low"] <= row["gain"] <= row["high"] or row["low"] == row["high"]
            assert row["decided"] == (row["low"] > 0)
        # on the simulated shop the boosted models clearly beat the baselines
        assert versus[primary]["decided"]
    # category recommendation: the same table, customers who buy a category new to them
    reco = report["tasks"]["reco"]
    entries = {e["name"]: e for e in reco["candidates"]}
    assert set(entries) == {"als", "item_item", "popularity", "own_top", "oracle"}
    for e in entries.values():
        for m in e["metrics"].values():
            assert 0 <= m["low"] <= m["value"] <= m["high"] <= 1
    assert set(reco["versus_best_baseline"]) == {"hit_at_3", "ndcg_at_3"}
    ndcg = {n: e["metrics"]["ndcg_at_3"]["value"] for n, e in entries.items()}
    assert max(ndcg["als"], ndcg["item_item"]) > ndcg["popularity"]
    assert ndcg["oracle"] >= max(ndcg["als"], ndcg["item_item"], ndcg["own_top"])
    # acquisition: the prospects at the same cutoffs, a first order within H days
    conversion = report["tasks"]["conversion"]
    entries = {e["name"]: e for e in conversion["candidates"]}
    assert set(entries) == {"xgboost", "lightgbm", "channel_rate", "recent_visits", "oracle"}
    assert conversion["label"] == "converted" and conversion["test_rows"] > 50
    assert 0 < conversion["positive_rate_test"] < 1
    for e in entries.values():
        m = e["metrics"]["roc_auc"]
        assert 0 <= m["low"] <= m["value"] <= m["high"] <= 1
    auc = {n: e["metrics"]["roc_auc"]["value"] for n, e in entries.items()}
    assert max(auc["xgboost"], auc["lightgbm"]) > 0.6
    assert max(auc["xgboost"], auc["lightgbm"]) <= entries["oracle"]["metrics"]["roc_auc"]["high"]
    assert set(conversion["versus_best_baseline"]) >= {"roc_auc", "log_loss"}
    assert "conversion: converted" in result.output and "channel_rate" in result.output
    # what review sentiment adds to the churn model: same family, same rows, paired
    gained = report["tasks"]["churn"]["sentiment_gain"]
    assert gained["family"] in {"xgboost", "lightgbm"}
    assert gained["features"] == ["review_sentiment_90d", "negative_review_share_90d"]
    assert 0 < gained["test_rows_with_them"] < 1  # not every customer writes reviews
    entries = {e["name"]: e for e in report["tasks"]["churn"]["candidates"]}
    for metric, v in gained["metrics"].items():
        assert v["with"] == entries[gained["family"]]["metrics"][metric]["value"]
        assert v["low"] <= v["high"] and v["decided"] == (v["low"] > 0)
    assert "what review sentiment adds to" in result.output
    assert "item_item" in result.output and "ndcg_at_3" in result.output
    assert "oracle" in result.output and "rfm_logreg" in result.output
    assert "best model against best baseline" in result.output
    assert "mean over 2 rolling origins" in result.output

    # the second origin: every cutoff four weeks earlier, trained and tested again
    rolling = report["rolling_origin"]
    first_test = date.fromisoformat(report["test_cutoff"])
    assert rolling["test_cutoffs"] == [str(first_test), str(first_test - timedelta(days=28))]
    for task, body in rolling["tasks"].items():
        entries = {e["name"]: e for e in report["tasks"][task]["candidates"]}
        assert set(body["candidates"]) == set(entries) - {"oracle"}
        for name, cand in body["candidates"].items():
            for metric, v in cand["metrics"].items():
                assert v["values"][0] == entries[name]["metrics"][metric]["value"]
                assert v["mean"] == pytest.approx(sum(v["values"]) / 2)
        if task in ("churn", "clv"):  # reco's and conversion's are too thin at 1,000
            primary = report["tasks"][task]["primary"]
            assert body["versus_best_baseline"][primary]["origins_won"] == 2

    # the runs are in MLflow, one parent per task, one child per candidate
    setup_mlflow(settings)
    runs = mlflow.search_runs(experiment_names=["clm-churn-evaluate"])
    children = runs[runs["tags.mlflow.parentRunId"].notna()]
    assert set(children["tags.candidate"]) == {
        "xgboost",
        "lightgbm",
        "recency",
        "rfm_logreg",
        "bgnbd",
    }
    assert children["metrics.roc_auc"].notna().all()

    # a second run reuses the landed workspace and gives the same figures
    again = tmp_path / "again.json"
    result = CliRunner().invoke(app, [*args, "--origins", "1", "--json", str(again), "--no-track"])
    assert result.exit_code == 0, result.output
    second = json.loads(again.read_text())
    for task, body in report["tasks"].items():
        for first, repeat in zip(
            body["candidates"], second["tasks"][task]["candidates"], strict=True
        ):
            # Bit-identical for the models (the recommenders included: seeded, one
            # thread); the baselines' floating-point sums may differ in the last bits.
            for metric, value in first["metrics"].items():
                assert repeat["metrics"][metric] == pytest.approx(value, rel=1e-9), (
                    f"{task} {first['name']} {metric} differs on a re-run"
                )
                if first["kind"] == "model":
                    assert repeat["metrics"][metric] == value


def test_evaluate_refuses_a_bad_dataset_and_split(settings: Settings, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", "--dataset", str(tmp_path / "nowhere")])
    assert result.exit_code != 0 and "existing path" in result.output
    result = CliRunner().invoke(app, ["evaluate", "--split", "random"])
    assert result.exit_code != 0 and "time or customers" in result.output
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["evaluate", "--dataset", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "clm import transactions" in result.output
