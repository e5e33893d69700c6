"""Request and response bodies for plans and draws."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from inspection_hub.kit.schema import RequestModel, ResponseModel

RiskClass = Literal["A", "B", "C", "D"]


class PopulationFilter(RequestModel):
    """Which enterprises an item draws from; an empty list means no restriction."""

    districts: list[str] = Field(default_factory=list, max_length=200)
    industry_prefixes: list[str] = Field(default_factory=list, max_length=200)
    risk_classes: list[RiskClass] = Field(default_factory=list, max_length=4)


class SamplingIn(RequestModel):
    """Either `ratios` per risk class (0..1), or `fixed_count`, or `counts` per class."""

    ratios: dict[str, Decimal] | None = None
    fixed_count: int | None = Field(default=None, ge=0)
    counts: dict[str, int] | None = None


class WindowIn(RequestModel):
    """The item's window (inclusive dates)."""

    start: date
    end: date


class PlanItemCreate(RequestModel):
    """One item of a plan."""

    matters: list[str] = Field(min_length=1, max_length=100)
    filter: PopulationFilter = Field(default_factory=PopulationFilter)
    sampling: SamplingIn = Field(default_factory=SamplingIn)
    window: WindowIn
    inspectors_per_check: int = 2
    offsite: bool = False


class PlanCreate(RequestModel):
    """A new annual plan (draft); `agencies` lists every agency of a joint plan."""

    year: int = Field(ge=2000, le=2100)
    title: str = Field(min_length=1, max_length=300)
    agencies: list[str] | None = Field(default=None, max_length=20)
    items: list[PlanItemCreate] = Field(min_length=1, max_length=200)


class PlanItemRead(ResponseModel):
    """A plan item; `seed` appears only once the plan is drawn."""

    id: int
    position: int
    matters: list[str]
    filter: dict[str, list[str]]
    sampling: dict[str, Any]
    window: dict[str, date]
    inspectors_per_check: int
    offsite: bool
    seed_commitment: str | None
    seed: str | None = None
    draw_id: int | None = None


class PlanRead(ResponseModel):
    """A plan with its items."""

    id: int
    year: int
    title: str
    agency_code: str
    agencies: list[str]
    joint: bool
    status: str
    version: int
    submitted_at: datetime | None
    drawn_at: datetime | None
    published_at: datetime | None
    withdrawn_at: datetime | None
    created_at: datetime
    items: list[PlanItemRead]


class DrawRead(ResponseModel):
    """A draw record: inputs in summary, the seed, digest and the result."""

    id: int
    plan_id: int
    plan_item_id: int
    algorithm: str
    seed: str
    seed_commitment: str
    population_digest: str
    population_size: dict[str, int]
    sample_size: dict[str, int]
    sampling: dict[str, Any]
    window: dict[str, date]
    inspectors_per_check: int
    workload_cap: int | None
    agencies: list[str]
    policy_version: str
    exemptions: dict[str, Any]
    selected_count: int
    drawn_at: datetime
    result: dict[str, Any] | None = None


class VerifyRead(ResponseModel):
    """Outcome of re-running a draw from its stored inputs."""

    match: bool
    differences: list[str] = Field(default_factory=list)
