"""Dashboards `/dashboard?year=`: the execution report as charts, each with its table and CSV.

Findings by month (每月发现问题) come from the report's monthly split, scoped the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response

from inspection_hub.errors import NotFound
from inspection_hub.kit.timeutil import local_today
from inspection_hub.reports import service as reports
from inspection_hub.web.i18n import environment
from inspection_hub.web.pages import AVAILABLE_PAGES, Page, PageRoute, signed_in

router = APIRouter(route_class=PageRoute, include_in_schema=False)
AVAILABLE_PAGES.add("dashboard")

Official = Annotated[Page, Depends(signed_in())]
Year = Annotated[int | None, Query(ge=2000, le=2100)]
BUCKETS = ("1", "2", "3", "4+")


@dataclass
class Series:
    """One data series: an agency (label is its name), a measure (key) or a finding kind."""

    data: list[float | int | None]
    label: str | None = None
    key: str | None = None
    finding: str | None = None  # a finding kind, translated by the templates
    line: bool = False  # drawn as a line on its own axis beside the (stacked) bars


@dataclass
class Chart:
    """A chart's numbers: category labels (or label keys) and series; rendered by templates."""

    id: str
    type: str
    labels: list[str]
    series: list[Series] = field(default_factory=list)
    percent: bool = False
    stacked: bool = False
    label_kind: str = "text"  # "text", "finding" (kinds to translate) or "month" (1..12)
    wide: bool = False  # full width, the table under the chart rather than beside it


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def monthly_chart(monthly: dict[str, Any]) -> Chart:
    """Findings by month: one stacked bar per finding kind, inspections completed as a line."""
    items = monthly["items"]
    return Chart(
        "findings-by-month",
        "bar",
        [str(i["month"]) for i in items],
        [Series([i["findings"][k] for i in items], finding=k) for k in monthly["kinds"]]
        + [
            Series(
                [i["inspections_completed"] for i in items],
                key="inspections_completed",
                line=True,
            )
        ],
        stacked=True,
        label_kind="month",
        wide=True,
    )


def charts_of(rows: list[dict[str, Any]], monthly: dict[str, Any] | None = None) -> list[Chart]:
    """The dashboard's charts from execution report rows (one row per agency) and months."""
    names = [r["agency_name"] for r in rows]
    kinds = sorted({k for r in rows for k in (r.get("findings") or {})})
    return [
        Chart(
            "execution-rate",
            "bar",
            names,
            [Series([_pct(r["execution_rate"]) for r in rows], key="execution_rate")],
            percent=True,
        ),
        Chart(
            "unplanned-share",
            "bar",
            names,
            [Series([_pct(r["unplanned_share"]) for r in rows], key="unplanned_share")],
            percent=True,
        ),
        Chart(
            "inspections-per-enterprise",
            "bar",
            list(BUCKETS),
            [
                Series(
                    [r["inspections_per_enterprise"].get(b, 0) for b in BUCKETS], r["agency_name"]
                )
                for r in rows
            ],
            stacked=True,
        ),
        Chart(
            "findings-by-kind",
            "bar",
            kinds,
            [
                Series(
                    [(r.get("findings") or {}).get(k, {}).get("total", 0) for k in kinds],
                    r["agency_name"],
                )
                for r in rows
            ],
            stacked=True,
            label_kind="finding",
        ),
        *([monthly_chart(monthly)] if monthly is not None else []),
        Chart(
            "surveys",
            "bar",
            names,
            [
                Series([_pct(r["survey_response_rate"]) for r in rows], key="response_rate"),
                Series([_pct(r["survey_discrepancy_rate"]) for r in rows], key="discrepancy_rate"),
            ],
            percent=True,
        ),
    ]


def _agency(p: Page) -> str | None:
    # the same scoping as GET /v1/reports/execution: an agency's officials see their own row
    return None if p.user.sees_everything else p.user.agency_code


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(p: Official, year: Year = None) -> Response:
    """Charts of the execution report, each with its numbers as a table and a CSV link."""
    year = year or local_today().year
    rows = await reports.execution_report(p.session, year, _agency(p))
    monthly = await reports.findings_by_month(p.session, year, _agency(p))
    return p.render("dashboard.html", year=year, charts=charts_of(rows, monthly), rows=rows)


@router.get("/dashboard/{chart_id}.csv")
async def chart_csv(chart_id: str, p: Official, year: Year = None) -> Response:
    """One chart's numbers as CSV (UTF-8 with BOM, so spreadsheet programs read Chinese)."""
    year = year or local_today().year
    chart: Chart | None
    if chart_id == "findings-by-month":
        chart = monthly_chart(await reports.findings_by_month(p.session, year, _agency(p)))
    else:
        rows = await reports.execution_report(p.session, year, _agency(p))
        chart = next((c for c in charts_of(rows) if c.id == chart_id), None)
    if chart is None:
        raise NotFound(f"There is no chart {chart_id}.")
    body = environment(p.locale).get_template("chart.csv").render(chart=chart)
    response = Response(
        "\ufeff" + body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{chart_id}-{year}.csv"'},
    )
    p.apply_cookies(response)
    return response
