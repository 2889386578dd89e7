"""The "Customer segments" page in the Airflow 3 UI.

A FastAPI app mounted in the Airflow API server under ``/clm`` and an external
view that shows it in the navigation bar (embedded, at ``/plugin/customer-segments``):

- the latest segment summary and transitions;
- the current champions, linked to their MLflow runs;
- the latest validation results, linked to the Great Expectations data docs,
  which the app serves under ``/clm/data-docs/``.

The routes need a signed-in Airflow user. Heavy imports happen per request,
so the API server starts as fast as without the plugin.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from airflow.api_fastapi.core_api.security import requires_authenticated
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

app = FastAPI(
    title="Customer segments",
    description="The CLM pipeline's daily segment tables, champions and validations.",
    dependencies=[Depends(requires_authenticated())],
    # FastAPI serves its generated docs outside the app's dependencies: anonymous.
    # The routes are two pages, not an API for clients: serve no docs at all.
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.2rem;color:#1f2933}
h1{font-size:1.5rem;margin:0 0 .3rem} h2{font-size:1.15rem;margin:1.6rem 0 .4rem}
.muted{color:#627d98;font-size:.85rem}
table{border-collapse:collapse;font-size:.85rem}
th,td{border-bottom:1px solid #e4e7eb;padding:.25rem .55rem;text-align:right}
th:first-child,td:first-child{text-align:left}
.ok{color:#2f855a;font-weight:600} .bad{color:#c53030;font-weight:600}
.grid{display:flex;gap:2rem;flex-wrap:wrap}
th.to{white-space:normal;max-width:5.5rem;font-weight:600;text-align:center}
"""


# Defence in depth for pages built from landed data, on the Airflow origin: no
# script runs and nothing loads from elsewhere, whatever a value slips through.
# The data docs are also sandboxed (a unique origin: no Airflow cookies or API).
_PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)
_DOCS_POLICY = "sandbox allow-popups allow-popups-to-escape-sandbox; " + _PAGE_POLICY
_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _settings() -> Any:
    from clm.core.settings import get_settings

    return get_settings()


def _docs_root() -> Path:
    from clm.data.validation import docs_index

    return docs_index(_settings().gx_dir).parent


def _docs_link(docs_url: str | None) -> str:
    """A file:// data-docs URL as a link served by this app."""
    if not docs_url:
        return ""
    root = _docs_root()
    path = Path(unquote(docs_url.removeprefix("file://")))
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        return ""
    return f"<a href='data-docs/{quote(str(relative))}' target='_blank'>data docs</a>"


def _heat(value: int, top: int) -> str:
    if not value or not top:
        return ""
    alpha = 0.12 + 0.6 * value / top
    return f" style='background:rgba(66,133,244,{alpha:.2f})'"


def render_page() -> str:
    """The page's HTML, from the warehouse and the MLflow registry."""
    import pandas as pd

    from clm.app.report import (
        champions,
        cluster_table,
        day_data,
        prospect_table,
        recommendation_table,
        transition_matrix,
    )
    from clm.data import queries

    settings = _settings()
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><style>{_CSS}</style></head><body>"]
    parts.append("<h1>Customer segments</h1>")
    try:
        data = day_data(settings, with_champions=False)
    except LookupError as exc:
        parts.append(f"<p>{html.escape(str(exc))}</p>")
        data = None
    if data is not None:
        parts.append(
            f"<p class='muted'>Latest scored day <b>{data.ds}</b>: {len(data.segments):,} "
            f"customers. <code>clm report --ds {data.ds}</code> writes the full report.</p>"
        )
        parts.append(
            "<div class='grid'><div><h2>Segment summary</h2><table><tr><th>segment</th>"
            "<th>customers</th><th>mean churn</th><th>expected spend</th><th>action</th></tr>"
        )
        actions = data.segments.groupby("segment")["next_best_action"].first()
        for r in data.summary.itertuples():
            churn = (  # a prospect segment has no churn probability
                "-" if pd.isna(r.mean_churn_probability) else f"{r.mean_churn_probability:.3f}"
            )
            parts.append(
                f"<tr><td>{html.escape(r.segment)}</td><td>{r.customers:,}</td>"
                f"<td>{churn}</td><td>{r.total_expected_spend:,.0f}</td>"
                f"<td>{html.escape(str(actions.get(r.segment, '')))}</td></tr>"
            )
        parts.append("</table></div>")
        matrix = transition_matrix(data.transitions)
        since = f"since {data.previous_ds}" if data.previous_ds else "(first scored day)"
        parts.append(f"<div><h2>Transitions {since}</h2>")
        if matrix.empty:
            parts.append("<p>none</p>")
        else:
            top = int(matrix.to_numpy().max())
            head = "".join(
                f"<th class='to'>{html.escape(c).replace('_', '_<wbr>')}</th>"
                for c in matrix.columns
            )
            parts.append(f"<table><tr><th>from \\ to</th>{head}</tr>")
            for from_segment, row in matrix.iterrows():
                cells = "".join(
                    f"<td{_heat(int(v), top)}>{int(v) or ''}</td>" for v in row.to_numpy()
                )
                parts.append(f"<tr><td>{html.escape(str(from_segment))}</td>{cells}</tr>")
            parts.append("</table>")
        parts.append("</div></div>")
        recommended = recommendation_table(data.segments)
        parts.append("<h2>Recommended categories</h2>")
        if recommended.empty:
            parts.append("<p>none yet: clm-reco has no champion</p>")
        else:
            parts.append(
                "<table><tr><th>category</th><th>in top 3</th><th>first</th>"
                "<th>cross-sell first</th></tr>"
            )
            for r in recommended.head(12).itertuples(index=False):
                parts.append(
                    f"<tr><td>{html.escape(str(r[0]))}</td><td>{r[1]:,}</td><td>{r[2]:,}</td>"
                    f"<td>{r[3]:,}</td></tr>"
                )
            parts.append("</table>")
        waiting = prospect_table(data.segments)
        parts.append("<h2>Prospects</h2>")
        if waiting.empty:
            parts.append("<p>none on this day</p>")
        else:
            parts.append(
                "<table><tr><th>segment</th><th>customers</th><th>mean P(first order)</th>"
                "<th>next best action</th></tr>"
            )
            for r in waiting.itertuples(index=False):
                chance = "-" if pd.isna(r[2]) else f"{r[2]:.3f}"
                parts.append(
                    f"<tr><td>{html.escape(str(r[0]))}</td><td>{r[1]:,}</td><td>{chance}</td>"
                    f"<td>{html.escape(str(r[3]))}</td></tr>"
                )
            parts.append("</table>")
        clustered = cluster_table(data.segments)
        parts.append("<h2>Behavioural clusters</h2>")
        if clustered.empty:
            parts.append("<p>none yet: clm-clusters has no champion</p>")
        else:
            parts.append(
                "<table><tr><th>cluster</th><th>customers</th><th>mean churn</th>"
                "<th>expected spend</th><th>top segment</th></tr>"
            )
            for r in clustered.itertuples(index=False):
                parts.append(
                    f"<tr><td>{html.escape(str(r[0]))}</td><td>{r[1]:,}</td><td>{r[2]:.3f}</td>"
                    f"<td>{r[3]:,.0f}</td><td>{html.escape(str(r[4]))}</td></tr>"
                )
            parts.append("</table>")
        drifted = data.drift.loc[data.drift["drifted"].astype(bool), "name"].unique().tolist()
        shown = ", ".join(drifted[:8]) + (
            f" and {len(drifted) - 8} more" if len(drifted) > 8 else ""
        )
        parts.append(
            f"<p class='muted'>Drift above threshold (PSI vs the training reference): "
            f"{html.escape(shown or 'none')}</p>"
        )

    parts.append(
        "<h2>Champions</h2><table><tr><th>model</th><th>version</th><th>family</th>"
        "<th>trained</th><th>metrics</th><th>MLflow</th></tr>"
    )
    try:
        found = champions(settings)
    except Exception as exc:  # the registry may be unreachable; the page still shows the rest
        found = []
        parts.append(f"<tr><td colspan=6>registry unavailable: {html.escape(str(exc))}</td></tr>")
    for c in found:
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in c["metrics"].items())
        link = f"<a href='{html.escape(c['url'])}' target='_blank'>run {c['run_id'][:8]}</a>"
        parts.append(
            f"<tr><td>{html.escape(c['name'])}</td><td>v{c['version']}</td>"
            f"<td>{html.escape(c['family'])}</td><td>{html.escape(c['trained_ds'])}</td>"
            f"<td>{html.escape(metrics)}</td><td>{link}</td></tr>"
        )
    if not found:
        parts.append("<tr><td colspan=6>no champion yet</td></tr>")
    parts.append("</table>")

    runs = queries.latest_validations(settings.warehouse)
    parts.append(
        "<h2>Latest validation results</h2><table><tr><th>table</th><th>ds</th>"
        "<th>landed</th><th>validated</th><th>quarantined</th><th>status</th>"
        "<th>report</th></tr>"
    )
    for r in runs.itertuples():
        status = "ok" if r.success else "bad"
        parts.append(
            f"<tr><td>{html.escape(r.table_name)}</td><td>{pd.Timestamp(r.ds).date()}</td>"
            f"<td>{r.landed:,}</td><td>{r.validated:,}</td><td>{r.quarantined:,}</td>"
            f"<td class='{status}'>{html.escape(r.status)}</td>"
            f"<td>{_docs_link(r.docs_url)}</td></tr>"
        )
    if runs.empty:
        parts.append("<tr><td colspan=7>no validation runs yet</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


@app.get("/segments", response_class=HTMLResponse)
def segments_page() -> HTMLResponse:
    """The Customer segments page."""
    from clm.data.warehouse import WarehouseBusy, waiting_at_most

    try:
        with waiting_at_most(5):
            page = render_page()
        return HTMLResponse(page, headers={**_HEADERS, "Content-Security-Policy": _PAGE_POLICY})
    except WarehouseBusy:
        # DuckDB lets one process write at a time: while clm_score writes, ask for a reload.
        return HTMLResponse(
            "<p>The warehouse is being written by a scoring run. Reload in a few seconds.</p>",
            status_code=503,
            headers={"Retry-After": "5"},
        )


@app.get("/data-docs/{path:path}")
def data_docs(path: str) -> FileResponse:
    """The Great Expectations data docs (static HTML under CLM_HOME)."""
    root = _docs_root().resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(status_code=404, detail="not found")
    return FileResponse(target, headers={**_HEADERS, "Content-Security-Policy": _DOCS_POLICY})


class ClmSegmentsPlugin(AirflowPlugin):
    """Adds "Customer segments" to the Airflow UI's navigation."""

    name = "clm_segments"
    fastapi_apps = [{"app": app, "url_prefix": "/clm", "name": "Customer segments"}]
    external_views = [
        {
            "name": "Customer segments",
            "href": "clm/segments",
            "destination": "nav",
            "url_route": "customer-segments",
        }
    ]
