"""The daily BI report (``clm report --ds D``) and the data behind the Airflow UI page.

:func:`day_data` reads one scored day from the warehouse and the champions
from the MLflow registry; :func:`render` turns it into one self-contained HTML
file (charts are embedded PNGs, so the file can be mailed or archived).
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clm.core.console import inert
from clm.core.settings import Settings
from clm.data import queries
from clm.data.segments import STAGES

log = logging.getLogger(__name__)
CHAMPION_METRICS = {
    "clm-churn": ("roc_auc", "pr_auc", "log_loss", "top_decile_lift", "calibration_error"),
    "clm-clv": ("spearman", "normalized_gini", "mae", "rmse"),
    "clm-conversion": ("roc_auc", "pr_auc", "log_loss", "top_decile_lift"),
    "clm-reco": ("hit_at_3", "ndcg_at_3"),
    "clm-clusters": ("silhouette",),
}


@dataclass
class DayData:
    """Everything the report and the UI page show for one ds."""

    ds: date
    segments: pd.DataFrame
    summary: pd.DataFrame
    transitions: pd.DataFrame
    importance: pd.DataFrame
    drift: pd.DataFrame
    validations: pd.DataFrame
    champions: list[dict[str, Any]] = field(default_factory=list)
    previous_ds: date | None = None


def latest_ds(settings: Settings) -> date | None:
    """The latest scored day, or None."""
    return queries.latest_ds(settings.warehouse)


def champions(settings: Settings) -> list[dict[str, Any]]:
    """The version behind each ``@champion``, its run's metrics and a link into the MLflow UI."""
    from mlflow import MlflowClient

    from clm.ml.registry import REGISTERED, current_champion, setup_mlflow

    setup_mlflow(settings)
    client = MlflowClient()
    out = []
    for name in REGISTERED.values():
        version = current_champion(client, name)
        if version is None:
            continue
        run = client.get_run(version.run_id) if version.run_id else None
        metrics = run.data.metrics if run else {}
        experiment = run.info.experiment_id if run else ""
        out.append(
            {
                "name": name,
                "version": str(version.version),
                "family": version.tags.get("family", ""),
                "trained_ds": version.tags.get("ds", ""),
                "reasons": version.tags.get("reasons", ""),
                "run_id": version.run_id or "",
                "metrics": {m: metrics[m] for m in CHAMPION_METRICS[name] if m in metrics},
                # workflowType: MLflow 3 would open the GenAI view otherwise.
                "url": f"{settings.mlflow_ui}/#/experiments/{experiment}/runs/{version.run_id}"
                "?workflowType=machine_learning"
                if run
                else "",
            }
        )
    return out


def day_data(settings: Settings, ds: date | None = None, with_champions: bool = True) -> DayData:
    """Read one scored day (the latest when ``ds`` is None).

    Raises:
        LookupError: if nothing is scored for ``ds``.
    """
    url = settings.warehouse
    ds = ds or latest_ds(settings)
    if ds is None:
        raise LookupError("no scored rows yet: run clm_score (clm run) first")

    segments = queries.segments(url, ds)
    if segments.empty:
        raise LookupError(f"no scored rows for ds={ds}: run clm_score for that day first")
    return DayData(
        ds=ds,
        segments=segments,
        summary=queries.day(url, "segment_summary", ds),
        transitions=queries.day(url, "segment_transitions", ds),
        importance=queries.day(url, "feature_importance", ds),
        drift=queries.day(url, "drift", ds),
        validations=queries.day(url, "validation_runs", ds),
        champions=champions(settings) if with_champions else [],
        previous_ds=queries.latest_ds(url, before=ds),
    )


def transition_matrix(transitions: pd.DataFrame) -> pd.DataFrame:
    """Customers moving from (rows) to (columns) segments."""
    if transitions.empty:
        return pd.DataFrame()
    return transitions.pivot_table(
        index="from_segment", columns="to_segment", values="customers", aggfunc="sum", fill_value=0
    ).astype(int)


# Charts -------------------------------------------------------------------------------------
def recommendation_table(segments: pd.DataFrame) -> pd.DataFrame:
    """Per category: customers it is recommended to (in their top three), those for
    whom it comes first, and the cross-sell customers for whom it comes first (the
    category the cross-sell names). Empty when the day has no recommendations."""
    lists = segments["recommended_categories"].dropna().map(json.loads)
    if lists.empty:
        return pd.DataFrame(columns=["category", "in top 3", "first", "cross-sell first"])
    cross = segments.loc[lists.index, "next_best_action"].eq("cross_sell")
    first = lists.map(lambda cats: cats[0] if cats else None)
    table = pd.DataFrame(
        {
            "in top 3": lists.explode().dropna().value_counts(),
            "first": first.value_counts(),
            "cross-sell first": first[cross].value_counts(),
        }
    )
    table = table.fillna(0).astype(int).sort_values(["first", "in top 3"], ascending=False)
    return table.rename_axis("category").reset_index()


def prospect_table(segments: pd.DataFrame) -> pd.DataFrame:
    """Per prospect segment: customers, mean probability of a first order in H days and
    the next best action. Empty on a day without prospects."""
    rows = segments[segments["lifecycle_stage"] == "prospect"]
    if rows.empty:
        return pd.DataFrame(columns=["segment", "customers", "mean_conversion", "next_best_action"])
    table = rows.groupby("segment").agg(
        customers=("customer_id", "size"),
        mean_conversion=("conversion_probability", "mean"),
        next_best_action=("next_best_action", "first"),
    )
    return table.sort_values("mean_conversion", ascending=False).reset_index()


def chart_prospects(segments: pd.DataFrame) -> str:
    """Histogram of the prospects' probability of a first order, by segment."""
    plt = _plt()
    rows = segments[segments["lifecycle_stage"] == "prospect"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    bins = np.linspace(0, 1, 21)
    for name, colour in (
        ("prospect_likely", "#55a868"),
        ("prospect_possible", "#dd8452"),
        ("prospect_unlikely", "#8c8c8c"),
    ):
        values = rows.loc[rows["segment"] == name, "conversion_probability"]
        if len(values):
            ax.hist(values, bins=bins, color=colour, label=f"{name} ({len(values):,})")
    ax.set_xlabel("probability of a first order within the horizon (clm-conversion)")
    ax.set_ylabel("prospects")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def cluster_table(segments: pd.DataFrame) -> pd.DataFrame:
    """Per behavioural cluster: customers, mean churn probability, total expected spend
    and the most common segment. Empty before the first clustering."""
    rows = segments.dropna(subset=["behaviour_cluster"])
    if rows.empty:
        return pd.DataFrame(
            columns=[
                "behaviour_cluster",
                "customers",
                "mean_churn",
                "expected_spend",
                "top_segment",
            ]
        )
    table = rows.groupby("behaviour_cluster").agg(
        customers=("customer_id", "size"),
        mean_churn=("churn_probability", "mean"),
        expected_spend=("expected_spend", "sum"),
        top_segment=("segment", lambda s: s.value_counts().index[0]),
    )
    return table.sort_values("customers", ascending=False).reset_index()


def chart_clusters(table: pd.DataFrame) -> str:
    """Customers and mean churn probability per behavioural cluster."""
    plt = _plt()
    data = table.iloc[::-1]
    labels = [inert(c) for c in data["behaviour_cluster"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(data) + 1.5), sharey=True)
    left.barh(labels, data["customers"], color="#4c72b0")
    left.set_title("customers")
    left.xaxis.set_major_formatter(_formatter())
    right.barh(labels, data["mean_churn"], color="#c44e52")
    right.set_title("mean churn probability")
    right.set_xlim(0, 1)
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def chart_recommendations(table: pd.DataFrame) -> str:
    """Customers per recommended category: in their top three, and first."""
    plt = _plt()
    data = table.iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(data) + 1.2))
    y = np.arange(len(data))
    ax.barh(y + 0.2, data["in top 3"], 0.4, color="#4c72b0", label="in top 3")
    ax.barh(y - 0.2, data["first"], 0.4, color="#dd8452", label="first")
    ax.set_yticks(y, [inert(c) for c in data["category"]])  # landed names, shown as text
    ax.xaxis.set_major_formatter(_formatter())
    ax.set_xlabel("customers")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _compact_label(value: float, _position: int) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


def _formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(_compact_label)


def chart_segments(summary: pd.DataFrame) -> str:
    """Customers and total expected spend per segment, side by side."""
    plt = _plt()
    data = summary.sort_values("total_expected_spend")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(data) + 1.5), sharey=True)
    left.barh(data["segment"], data["customers"], color="#4c72b0")
    left.set_title("customers")
    right.barh(data["segment"], data["total_expected_spend"], color="#55a868")
    right.set_title("total expected spend")
    right.xaxis.set_major_formatter(_formatter())
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def chart_transitions(matrix: pd.DataFrame, title: str) -> str:
    """Heatmap of customers moving between segments (log colour scale)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.0 * len(matrix.columns) + 3, 0.6 * len(matrix) + 2))
    values = matrix.to_numpy()
    ax.imshow(np.log1p(values), cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=40, ha="right")
    ax.set_yticks(range(len(matrix.index)), matrix.index)
    ax.set_xlabel("to segment")
    ax.set_ylabel("from segment")
    ax.set_title(title)
    top = values.max() if values.size else 0
    for (i, j), v in np.ndenumerate(values):
        if v:
            colour = "white" if np.log1p(v) > 0.6 * np.log1p(top) else "black"
            ax.text(j, i, f"{v:,}", ha="center", va="center", fontsize=8, color=colour)
    return _png(fig)


def chart_churn_by_stage(segments: pd.DataFrame) -> str:
    """Box plots of churn probability for each lifecycle stage, with counts."""
    plt = _plt()
    # prospects have no churn probability: they have not ordered yet
    stages = [s for s in STAGES if s != "prospect" and (segments["lifecycle_stage"] == s).any()]
    groups = [segments.loc[segments.lifecycle_stage == s, "churn_probability"] for s in stages]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.boxplot(groups, showfliers=False)
    ax.set_xticks(
        range(1, len(stages) + 1),
        [f"{s}\n(n={len(g):,})" for s, g in zip(stages, groups, strict=True)],
    )
    ax.set_ylabel("churn probability")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def chart_importance(importance: pd.DataFrame, top: int = 15) -> str:
    """Mean |tree SHAP| of the churn model over the day's customers."""
    plt = _plt()
    data = importance.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(data) + 1.2))
    ax.barh(data["feature"], data["mean_abs_contribution"], color="#8172b2")
    ax.set_xlabel("mean |SHAP| (log-odds)")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def chart_drift(drift: pd.DataFrame, top: int = 15) -> str:
    """PSI per feature and score against the churn champion's training reference."""
    plt = _plt()
    model = (
        drift["model_name"].iloc[0]
        if "clm-churn" not in set(drift["model_name"])
        else ("clm-churn")
    )
    data = drift[drift["model_name"] == model].head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(data) + 1.2))
    colours = ["#c44e52" if d else "#4c72b0" for d in data["drifted"]]
    ax.barh(data["name"], data["psi"], color=colours)
    threshold = float(data["threshold"].max()) if len(data) else 0.25
    ax.axvline(threshold, color="k", ls=":", lw=1)
    ax.set_xlabel(f"PSI vs the training reference ({model}); red: above threshold")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


# HTML -----------------------------------------------------------------------------------------
def _table(frame: pd.DataFrame, floats: str = "{:,.3f}") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, float | np.floating):
                text = floats.format(value)
            elif isinstance(value, int | np.integer):
                text = f"{value:,}"
            else:
                text = str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1f2933;padding:0 1rem}
h1{margin-bottom:.2rem} h2{margin-top:2.2rem;border-bottom:1px solid #d9e2ec;padding-bottom:.3rem}
.kpis{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.kpi{background:#f0f4f8;border-radius:8px;padding:.7rem 1rem;min-width:150px}
.kpi b{display:block;font-size:1.4rem}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}
th,td{border-bottom:1px solid #e4e7eb;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}
img{max-width:100%} .muted{color:#627d98;font-size:.9rem}
"""


def _section(
    title: str,
    table: pd.DataFrame,
    empty: str,
    intro: str,
    chart: Callable[[], str] | None,
) -> list[str]:
    """A report section: its heading, then ``empty`` when the table has no rows, else the
    intro, the chart (when there is one) and the table."""
    parts = [f"<h2>{html.escape(title)}</h2>"]
    if table.empty:
        return [*parts, f"<p>{html.escape(empty)}</p>"]
    parts.append(f"<p class='muted'>{html.escape(intro)}</p>")
    if chart is not None:
        parts.append(f"<img alt='{html.escape(title.lower())}' src='{chart()}'>")
    return [*parts, _table(table)]


def render(data: DayData) -> str:
    """The report as one self-contained HTML page."""
    seg = data.segments
    at_risk = int((seg["lifecycle_stage"] == "at_risk").sum())
    prospects = int((seg["lifecycle_stage"] == "prospect").sum())
    drifted = data.drift.loc[data.drift["drifted"].astype(bool), "name"].unique().tolist()
    kpis = [
        ("customers scored", f"{len(seg):,}"),
        ("expected spend (H days)", f"{seg['expected_spend'].sum():,.0f}"),
        ("mean churn probability", f"{seg['churn_probability'].mean():.3f}"),
        ("at risk", f"{at_risk:,}"),
        ("prospects", f"{prospects:,}"),
        ("features drifted", f"{len(drifted)}"),
    ]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Customer segments {data.ds}"
        f"</title><style>{_CSS}</style></head><body>",
        f"<h1>Customer segments, {data.ds}</h1>",
        "<p class='muted'>Written by <code>clm report</code> from the warehouse tables "
        "customer_segments, segment_summary, segment_transitions, feature_importance, drift "
        "and validation_runs, and the MLflow registry.</p>",
        "<div class='kpis'>"
        + "".join(f"<div class='kpi'>{html.escape(k)}<b>{v}</b></div>" for k, v in kpis)
        + "</div>",
        "<h2>Segment sizes and value</h2>",
        f"<img alt='segments' src='{chart_segments(data.summary)}'>",
        _table(data.summary.drop(columns="ds")),
        "<h2>Next best actions</h2>",
        _table(
            seg.groupby("next_best_action", as_index=False)
            .agg(customers=("customer_id", "size"), expected_spend=("expected_spend", "sum"))
            .sort_values("customers", ascending=False),
            "{:,.0f}",
        ),
    ]
    waiting = prospect_table(seg)
    unscored = seg.loc[seg["lifecycle_stage"] == "prospect", "conversion_probability"].isna()
    parts += _section(
        "Prospects",
        waiting,
        "No prospects on this day: every customer signed up has ordered.",
        "Signed up, no order yet, and not scored: clm-conversion has no champion."
        if unscored.all()
        else "Signed up, no order yet: the probability of a first order within the horizon "
        "from clm-conversion@champion (visits, views, days since the signup, and the "
        "channel's conversion record). A welcome offer goes to the prospects it can tip; "
        "the likely ones are nurtured.",
        None if unscored.all() else lambda: chart_prospects(seg),
    )
    recommended = recommendation_table(seg)
    parts += _section(
        "Recommended categories",
        recommended,
        "No recommendations on this day: clm-reco has no champion yet.",
        "The top three categories each customer has not bought in the last 30 days, from "
        "clm-reco@champion on the purchase histories; a cross-sell offers the first of them.",
        lambda: chart_recommendations(recommended),
    )
    clustered = cluster_table(seg)
    parts += _section(
        "Behavioural clusters",
        clustered,
        "No clusters on this day: clm-clusters has no champion yet.",
        "k-means on standardized behaviour (recency, order rate, spend rate, basket size, "
        "breadth, discounts, returns, visits), k chosen by the best silhouette at training, "
        "each cluster named by the two features furthest from the shop's mean "
        "(clm-clusters@champion).",
        lambda: chart_clusters(clustered),
    )
    matrix = transition_matrix(data.transitions)
    since = f"since {data.previous_ds}" if data.previous_ds else "(first scored day)"
    parts.append(f"<h2>Transitions {since}</h2>")
    if not matrix.empty:
        moved = int(
            data.transitions.loc[
                data.transitions.from_segment != data.transitions.to_segment, "customers"
            ].sum()
        )
        parts.append(f"<p>{moved:,} customers changed segment.</p>")
        parts.append(
            f"<img alt='transitions' src='{chart_transitions(matrix, f'Transitions {since}')}'>"
        )
    parts += [
        "<h2>Churn probability by lifecycle stage</h2>",
        f"<img alt='churn by stage' src='{chart_churn_by_stage(seg)}'>",
        "<h2>Lifecycle stage by value tier</h2>",
        _table(
            pd.crosstab(seg["lifecycle_stage"], seg["value_tier"])
            .reindex(columns=[t for t in ("high", "mid", "low") if t in set(seg["value_tier"])])
            .reindex([s for s in STAGES if s in set(seg["lifecycle_stage"])])
            .reset_index()
        ),
        "<h2>RFM segments</h2>",
        _table(
            seg.groupby("rfm_segment", as_index=False)
            .agg(customers=("customer_id", "size"), mean_churn=("churn_probability", "mean"))
            .sort_values("customers", ascending=False)
        ),
    ]
    if not data.importance.empty:
        parts += [
            "<h2>Global feature importance</h2>",
            "<p class='muted'>Mean absolute tree-SHAP contribution to the churn score over "
            "today's customers (a random 20,000 of them in a larger shop); the same exact "
            "contributions give top_reasons to the customers whose action needs them.</p>",
            f"<img alt='importance' src='{chart_importance(data.importance)}'>",
        ]
    parts.append("<h2>Champions</h2>")
    for c in data.champions:
        link = f"<a href='{html.escape(c['url'])}'>MLflow run</a>" if c["url"] else ""
        parts.append(
            f"<p><b>{html.escape(c['name'])}</b> v{c['version']} ({html.escape(c['family'])}), "
            f"trained {html.escape(c['trained_ds'])}. {link}<br><span class='muted'>"
            f"{html.escape(c['reasons'])}</span></p>"
        )
        if c["metrics"]:
            parts.append(_table(pd.DataFrame([c["metrics"]])))
    if not data.drift.empty:
        parts += [
            "<h2>Drift</h2>",
            f"<p>Above threshold: {html.escape(', '.join(drifted) or 'none')}.</p>",
            f"<img alt='drift' src='{chart_drift(data.drift)}'>",
        ]
    if not data.validations.empty:
        parts += [
            "<h2>Validation</h2>",
            _table(
                data.validations[["table_name", "landed", "validated", "quarantined", "status"]]
            ),
        ]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(settings: Settings, ds: date | None, out: Path | None = None) -> Path:
    """Render the report for ``ds`` (latest if None) to ``out`` or ``CLM_HOME/reports/``.

    Raises:
        LookupError: if nothing is scored for ``ds``.
    """
    data = day_data(settings, ds)
    out = out or settings.home / "reports" / f"segments_{data.ds}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data), encoding="utf-8")
    log.info("report for ds=%s -> %s", data.ds, out)
    return out
