"""Dashboards `/dashboard?year=`: the execution report as charts, each with its table and CSV."""

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
    """One data series: an agency (label is its name) or a measure (key names it)."""

    data: list[float | int | None]
    label: str | None = None
    key: str | None = None


@dataclass
class Chart:
    """A chart's numbers: category labels (or label keys) and series; rendered by templates."""

    id: str
    type: str
    labels: list[str]
    series: list[Series] = field(default_factory=list)
    percent: bool = False
    stacked: bool = False
    label_kind: str = "text"  # "text" or "finding" (labels are finding kinds to translate)


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def charts_of(rows: list[dict[str, Any]]) -> list[Chart]:
    """The dashboard's charts from execution report rows (one row per agency)."""
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


async def _report(p: Page, year: int) -> list[dict[str, Any]]:
    # the same scoping as GET /v1/reports/execution: an agency's officials see their own row
    agency = None if p.user.sees_everything else p.user.agency_code
    return await reports.execution_report(p.session, year, agency)


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(p: Official, year: Year = None) -> Response:
    """Charts of the execution report, each with its numbers as a table and a CSV link."""
    year = year or local_today().year
    rows = await _report(p, year)
    return p.render("dashboard.html", year=year, charts=charts_of(rows), rows=rows)


@router.get("/dashboard/{chart_id}.csv")
async def chart_csv(chart_id: str, p: Official, year: Year = None) -> Response:
    """One chart's numbers as CSV (UTF-8 with BOM, so spreadsheet programs read Chinese)."""
    year = year or local_today().year
    chart = next((c for c in charts_of(await _report(p, year)) if c.id == chart_id), None)
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
