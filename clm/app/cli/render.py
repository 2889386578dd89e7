"""Rich tables of what the commands found. Rendering only: no queries, no side effects.

Every value that came from landed data goes in as a plain string or ``Text``,
never as markup (``clm.core.console`` makes the console inert).
"""

from __future__ import annotations

import json
import math
from datetime import date
from typing import Any

import pandas as pd
from rich.table import Table
from rich.text import Text

from clm.core.console import console, styled


def ingest_summary(
    landed: dict[str, int],
    valid: dict[str, int],
    quarantined: dict[str, int],
    reasons: dict[str, dict[str, int]],
) -> None:
    """The validation gate's counts per table over a run, and its quarantine reasons."""
    table = Table(title="Validation (Great Expectations)")
    for col in ("table", "landed", "validated", "quarantined"):
        table.add_column(col, justify="right" if col != "table" else "left")
    for name, n in landed.items():
        table.add_row(name, f"{n:,}", f"{valid[name]:,}", f"{quarantined[name]:,}")
    if landed:
        console.print(table)
    else:
        console.print("Validation: nothing new; every day of the range was already processed.")
    for name, rules in reasons.items():
        listed = ", ".join(f"{rule} ({n:,})" for rule, n in sorted(rules.items()))
        console.print(f"  quarantined {name}: {listed}")
    console.print("  per day: `clm validations --ds D`; GX data docs: make data-docs")


def training_summary(result: Any) -> None:
    """One training run: each task's metrics per family and the promotion decision."""
    for task, families in result.metrics.items():
        names = list(next(iter(families.values())).keys())
        table = Table(title=f"{task} models, training run ds={result.ds} ({result.split} split)")
        table.add_column("metric")
        for family in families:
            table.add_column(family, justify="right")
        for metric in names:
            table.add_row(metric, *[f"{families[f][metric]:.4f}" for f in families])
        decision = result.decisions[task]
        console.print(table)
        console.print(
            styled(
                "  -> {} registered as v{}: [bold]{}[/] ({})",
                decision["family"],
                decision["version"],
                decision["decision"],
                "; ".join(decision["reasons"]),
            )
        )


def segments(ds: date, summary: pd.DataFrame, stages: pd.DataFrame) -> None:
    """A day's segment summary and its lifecycle stage x next best action counts."""
    table = Table(title=f"Segments on {ds}")
    for col in ("segment", "customers", "mean churn p", "total expected spend", "mean P(order)"):
        table.add_column(col, justify="left" if col == "segment" else "right")

    def mean(value: Any) -> str:  # buyers have no P(first order), prospects no churn
        return "-" if value is None or pd.isna(value) else f"{value:.3f}"

    for _, row in summary.iterrows():
        table.add_row(
            row.segment,
            f"{row.customers:,}",
            mean(row.mean_churn_probability),
            f"{row.total_expected_spend:,.0f}",
            mean(row.get("mean_conversion_probability")),
        )
    table.add_row(
        Text("all", style="bold"), Text(f"{summary.customers.sum():,}", style="bold"), "", "", ""
    )
    console.print(table)
    st = Table(title=f"Lifecycle stage x next best action on {ds}")
    st.add_column("lifecycle_stage")
    st.add_column("next_best_action")
    st.add_column("customers", justify="right")
    for _, row in stages.iterrows():
        st.add_row(row.lifecycle_stage, row.next_best_action, f"{row.n:,}")
    console.print(st)


def import_report(report: Any, seconds: float) -> None:
    """What an import read, landed, left out and rejected, and the command to run next."""
    table = Table(title=f"Import of {report.source}", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("lines read", report.lines_read),
        ("  without a customer id (left out)", report.lines_without_customer),
        ("  rejected: unparseable (see rejects file)", report.lines_rejected),
        ("  malformed CSV lines (see rejects file)", report.malformed_lines),
        ("  cancellation lines", report.cancellation_lines),
        ("  sale lines", report.sale_lines),
        ("orders landed", report.orders),
        ("  completed", report.completed_orders),
        ("  cancelled", report.cancelled_orders),
        ("customers landed", report.customers),
        ("  already landed earlier (skipped)", report.customers_already_landed),
        ("days", report.days),
    ]
    for label, value in rows:
        table.add_row(label, f"{value:,}")
    console.print(table)
    for note in report.notes:
        console.print(styled("[yellow]note:[/] {}", note))
    if report.rejected_path:
        console.print(f"Rejected lines: {report.rejected_path}")
    if report.first_day:
        console.print(
            styled(
                "[green]Landed[/] {}..{} in {}s. Next: [bold]clm run --start {} --end {}[/] "
                "(or trigger clm_ingest in the Airflow UI)",
                report.first_day,
                report.last_day,
                f"{seconds:.1f}",
                report.first_day,
                report.last_day,
            )
        )


def validations(day: date, runs: pd.DataFrame) -> None:
    """A day's validation runs: counts per table, failed rules, warnings, errors."""
    table = Table(title=f"Validation on {day}")
    for col in ("table", "status", "landed", "validated", "quarantined", "failures", "warnings"):
        table.add_column(
            col, justify="right" if col in {"landed", "validated", "quarantined"} else "left"
        )
    for _, row in runs.iterrows():
        colour = {"passed": "green", "quarantined": "yellow"}.get(row.status, "red")
        table.add_row(
            row.table_name,
            Text(row.status, style=colour),
            f"{row.landed:,}",
            f"{row.validated:,}",
            f"{row.quarantined:,}",
            ", ".join(f"{k}: {v}" for k, v in json.loads(row.failures).items()) or "-",
            ", ".join(f"{k}" for k in json.loads(row.warnings)) or "-",
        )
    console.print(table)
    for _, row in runs[runs.status == "failed"].iterrows():
        console.print(styled("[red]{}:[/] {}", row.table_name, row.error))


def customer(view: Any) -> None:
    """A customer's online features (with the lookup's latency) and latest segment row."""
    table = Table(
        title=f"Online features of {view.customer_id}",
        caption=f"Feast online lookup of {view.service} {view.lookup_ms:.1f} ms "
        f"(store opened in {view.opened_ms:.0f} ms)",
    )
    table.add_column("feature")
    table.add_column("value", justify="right")
    for key in sorted(view.features):
        value = view.features[key]
        table.add_row(key, "" if value is None else f"{value:.4g}")
    console.print(table)
    if view.segment is not None:
        row = dict(view.segment)
        recommended = row.get("recommended_categories")
        if isinstance(recommended, str):  # a JSON array in the table: shown as one
            row["recommended_categories"] = json.loads(recommended)
        console.print_json(json.dumps(row, default=str), ensure_ascii=True)
        if isinstance(recommended, str):
            cats = row["recommended_categories"]
            shown = ", ".join(cats) or "none (every category bought in the last 30 days)"
            if row.get("next_best_action") == "cross_sell" and cats:
                shown += f"; the cross-sell offers {cats[0]}"
            console.print(styled("[bold]Recommended categories:[/] {}", shown))
        chance = row.get("conversion_probability")
        if row.get("lifecycle_stage") == "prospect":
            console.print(
                styled(
                    "[bold]Prospect:[/] {}",
                    "no order yet, not scored (no clm-conversion model)"
                    if chance is None or math.isnan(chance)
                    else f"{chance:.0%} chance of a first order within the horizon "
                    f"(clm-conversion v{row.get('conversion_model_version')})",
                )
            )
        if row.get("behaviour_cluster"):
            console.print(styled("[bold]Behaviour cluster:[/] {}", row["behaviour_cluster"]))
    mean = view.features.get("review_sentiment_90d")
    if mean is not None and not math.isnan(mean):  # the customer wrote reviews lately
        share = view.features.get("negative_review_share_90d") or 0.0
        console.print(
            styled(
                "[bold]Review sentiment (90 days):[/] {}",
                f"mean {mean:+.2f} on -1..+1 (VADER), {share:.0%} of the reviews negative",
            )
        )


def promotions(history: pd.DataFrame, champions: dict[str, str | None]) -> None:
    """The promotion history, then where each ``@champion`` points."""
    table = Table(title="Promotion history")
    for col in (
        "ds",
        "model",
        "version",
        "family",
        "metric",
        "score",
        "champion",
        "decision",
        "reasons",
    ):
        table.add_column(col)
    for _, r in history.iterrows():
        champion = "-" if r.champion_version is None else f"v{r.champion_version}"
        table.add_row(
            str(r.ds.date()),
            r.model_name,
            f"v{r.challenger_version}",
            r.challenger_family,
            r.metric,
            f"{r.challenger_score:.4f}",
            champion,
            r.decision,
            r.reasons,
        )
    console.print(table)
    for name, version in champions.items():
        console.print(f"{name}@champion = " + (f"v{version}" if version else "none"))


def print_wide(renderable: Any, width: int) -> None:
    """Print at least ``width`` columns wide into a file or pipe, where Rich would
    otherwise wrap at 80 columns; a terminal keeps its own width."""
    if console.is_terminal or console.width >= width:
        console.print(renderable)
        return
    narrow = console.width
    console.width = width
    try:
        console.print(renderable)
    finally:
        console.width = narrow


def _candidate_table(title: str, metrics: list[str]) -> Table:
    """A table with a row per candidate: its name, its kind, and a column per metric
    with the direction that is better."""
    from clm.ml.metrics import LOWER_IS_BETTER

    table = Table(title=title, title_justify="left")
    table.add_column("candidate")
    table.add_column("kind")
    for m in metrics:
        table.add_column(f"{m} {'↓' if m in LOWER_IS_BETTER else '↑'}", justify="right")
    return table


def evaluation(report: dict[str, Any]) -> None:
    """``clm evaluate``'s comparison: each candidate's metrics and intervals, verdicts, targets."""
    from clm.ml.evaluate import best_value

    rows = report["rows"]
    console.print(
        styled("[bold]{}[/]: ", report["dataset"]),
        f"{report['split']} split, cutoffs "
        f"{', '.join(report['cutoffs'])} (test {report['test_cutoff']}), "
        f"H={report['horizon_days']} days; rows train {rows.get('train', 0):,}, "
        f"val {rows.get('val', 0):,}, "
        f"test {rows.get('test', 0):,}; test churn rate {report['churn_rate_test']:.1%}",
    )
    for task, body in report["tasks"].items():
        entries = body["candidates"]
        metrics = list(entries[0]["metrics"])
        population = ""
        if body.get("test_rows"):
            population = f"{body['test_rows']:,} test rows"
            if body.get("positive_rate_test") is not None:
                population += f", {body['positive_rate_test']:.1%} {body['label']}"
            population += "; "
        table = _candidate_table(
            f"{task}: {body['label']} ({population}primary {body['primary']}; "
            f"95% bootstrap intervals, {report['bootstrap_resamples']} resamples)",
            metrics,
        )
        best = {m: best_value(entries, m, ("model", "baseline")) for m in metrics}
        for e in entries:
            cells = []
            for m in metrics:
                v = e["metrics"][m]
                winner = e["kind"] != "ceiling" and v["value"] == best[m]
                cells.append(
                    Text(
                        f"{v['value']:.3f} [{v['low']:.3f}, {v['high']:.3f}]",
                        style="bold green" if winner else "",
                    )
                )
            style = "dim" if e["kind"] == "ceiling" else None
            table.add_row(e["name"], e["kind"], *cells, style=style)
        print_wide(table, 190)  # intervals need room
        if body.get("versus_best_baseline"):
            _versus(task, body["versus_best_baseline"])
        for name, verdict in body["verdicts"].items():
            if verdict["beats_every_baseline"]:
                console.print(f"  {name} beats every baseline on every metric")
            else:
                console.print(
                    styled(
                        "  [yellow]{} does not beat every baseline:[/] {}",
                        name,
                        "; ".join(verdict["not_beaten"]),
                    )
                )
        if "targets" in body:
            _targets(task, body["targets"])
        if "sentiment_gain" in body:
            _feature_gain(task, "review sentiment", body["sentiment_gain"])
        if "rolling_origin" in report:
            _rolling(task, report["rolling_origin"])
    console.print(f"done in {report['seconds']:.0f} s; workspace {report['workspace']}")


def _rolling(task: str, rolling: dict[str, Any]) -> None:
    """Each candidate's metrics averaged over the rolling origins, the best in green."""
    from clm.ml.evaluate import best_value

    body = rolling["tasks"][task]
    cutoffs = rolling["test_cutoffs"]
    entries = [
        {
            "name": n,
            "kind": c["kind"],
            "metrics": {m: {"value": v["mean"]} for m, v in c["metrics"].items()},
        }
        for n, c in body["candidates"].items()
    ]
    metrics = list(entries[0]["metrics"])
    t = _candidate_table(
        f"{task}: mean over {len(cutoffs)} rolling origins (test cutoffs {', '.join(cutoffs)})",
        metrics,
    )
    best = {m: best_value(entries, m, ("model", "baseline")) for m in metrics}
    for e in entries:
        t.add_row(
            e["name"],
            e["kind"],
            *(
                Text(
                    f"{e['metrics'][m]['value']:.3f}",
                    style="bold green" if e["metrics"][m]["value"] == best[m] else "",
                )
                for m in metrics
            ),
        )
    t.add_row(
        "best model − best baseline",
        "origins won",
        *(
            f"{v['mean_gain']:+.3g} ({v['origins_won']}/{len(cutoffs)})"
            for v in (body["versus_best_baseline"][m] for m in metrics)
        ),
        style="italic",
    )
    print_wide(t, 150)


def _feature_gain(task: str, what: str, found: dict[str, Any]) -> None:
    """The best family with and without a group of features, and the paired gain."""
    t = Table(
        title=f"{task}: what {what} adds to {found['family']} ({', '.join(found['features'])}; "
        f"{found['test_rows_with_them']:.0%} of the test rows have them; gain > 0 is better; "
        "paired 95% interval)",
        title_justify="left",
    )
    for col in ("metric", "with", "without", "gain", "95% interval"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    for metric, v in found["metrics"].items():
        t.add_row(
            metric,
            f"{v['with']:.4f}",
            f"{v['without']:.4f}",
            Text(f"{v['gain']:+.4f}", style="bold green" if v["decided"] else ""),
            f"[{v['low']:+.4f}, {v['high']:+.4f}]",
        )
    print_wide(t, 120)


def _versus(task: str, rows: dict[str, Any]) -> None:
    """The best model against the best baseline per metric: the paired gain and its interval."""
    t = Table(
        title=f"{task}: best model against best baseline (gain > 0 is better; paired 95% interval)",
        title_justify="left",
    )
    for column in ("metric", "model", "baseline", "gain", "interval", "verdict"):
        t.add_column(column, justify="left" if column in ("metric", "verdict") else "right")
    for metric, row in rows.items():
        if row["decided"]:
            verdict = Text("model better", style="green")
        elif row["high"] < 0:
            verdict = Text("baseline better", style="red")
        else:
            verdict = Text("not decided", style="yellow")
        t.add_row(
            metric,
            row["model"],
            row["baseline"],
            f"{row['gain']:+.3g}",
            f"[{row['low']:+.3g}, {row['high']:+.3g}]",
            verdict,
        )
    print_wide(t, 120)


def _targets(task: str, targets: dict[str, Any]) -> None:
    t = Table(title=f"{task}: DESIGN section 10 targets", title_justify="left")
    t.add_column("metric")
    t.add_column("target", justify="right")
    models = [k for k in next(iter(targets.values())) if k not in ("target", "lower_is_better")]
    for name in models:
        t.add_column(name, justify="right")
    for metric, row in targets.items():
        cells = []
        for name in models:
            ok = row[name]["met"]
            cells.append(
                Text(
                    f"{row[name]['value']:.3f} {'met' if ok else 'NOT met'}",
                    style="green" if ok else "red",
                )
            )
        sign = "<" if row["lower_is_better"] else ">"
        t.add_row(metric, f"{sign} {row['target']}", *cells)
    console.print(t)


def bench(result: Any) -> None:
    """One size of ``clm bench``: each stage's median, peak memory, throughput and naive ratio."""
    table = Table(
        title=f"{result.customers:,} customers (median of the runs; setup "
        f"{result.setup_seconds:.0f} s, untimed)",
        title_justify="left",
    )
    table.add_column("stage", no_wrap=True, min_width=len("materialize_redis"))
    for column in ("s", "peak MiB", "customers/s", "naive s", "naive MiB", "×"):
        table.add_column(column, justify="right")
    for name, stage in result.stages.items():
        naive = stage.naive_seconds
        table.add_row(
            name,
            f"{stage.seconds:.2f}",
            f"{stage.peak_rss_mib:,.0f}",
            f"{result.customers / stage.seconds:,.0f}" if stage.seconds else "",
            "" if naive is None else f"{naive:.2f}",
            "" if naive is None else f"{stage.naive_peak_rss_mib:,.0f}",
            "" if naive is None else f"{naive / stage.seconds:.1f}",
        )
    table.add_row(
        Text("daily cycle", style="bold"),
        f"{result.cycle_seconds:.2f}",
        f"{result.cycle_peak_rss_mib:,.0f}",
        f"{result.customers / result.cycle_seconds:,.0f}" if result.cycle_seconds else "",
        f"{result.cycle_naive_seconds:.2f}",
        "",
        f"{result.cycle_naive_seconds / result.cycle_seconds:.1f}" if result.cycle_seconds else "",
    )
    console.print(table)


def bench_summary(results: list[Any], exponents: dict[str, float]) -> None:
    """The scaling exponents, and the targets checked at the largest size."""
    from clm.app.bench import verdicts

    if exponents:
        sizes = ", ".join(f"{r.customers:,}" for r in results)
        console.print(
            f"scaling exponents (slope of log seconds on log customers over {sizes}): "
            + ", ".join(f"{k} {v:.2f}" for k, v in exponents.items())
        )
    largest = results[-1]
    console.print(f"targets at {largest.customers:,} customers:")
    for text, met, figure in verdicts(largest, exponents):
        mark = Text("met    ", style="green") if met else Text("missed ", style="red")
        console.print(Text("  ") + mark + Text(f"{text}: {figure}"))
