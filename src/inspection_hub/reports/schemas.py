"""Report bodies, for the OpenAPI description (the routes also answer CSV and Excel)."""

from __future__ import annotations

from pydantic import Field

from inspection_hub.kit.schema import ResponseModel


class MonthFigures(ResponseModel):
    """One local month (Asia/Shanghai) of the year: findings by kind, inspections completed."""

    month: int = Field(ge=1, le=12)
    inspections_completed: int = Field(ge=0)
    findings_total: int = Field(ge=0)
    findings: dict[str, int] = Field(
        description="Findings by kind; every kind found in the year, zeros included."
    )
    findings_recorded_outside_year: int = Field(
        ge=0,
        description="Of this month's findings, those recorded before the year (January) or "
        "after it (December): findings about the year's inspections stay in the year.",
    )
    inspections_completed_outside_year: int = Field(
        ge=0, description="Of this month's completions, those recorded outside the year."
    )


class FindingsByMonth(ResponseModel):
    """Findings by month (每月发现问题): twelve months adding up to the execution report."""

    year: int
    agency: str | None = Field(description="The agency asked for (or yours); null for all.")
    kinds: list[str] = Field(description="The finding kinds of the year, sorted.")
    items: list[MonthFigures] = Field(min_length=12, max_length=12)
