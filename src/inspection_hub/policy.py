"""Dated policy: caps, windows, ratios and exemptions loaded from ``config/policy.toml``.

The rules are configuration, not code. A policy file holds one or more versions; each version is
in force from ``effective_from`` to ``effective_to`` (both inclusive calendar dates; no
``effective_to`` means open-ended). Versions must not overlap. ``PolicyBook.at(day)`` picks the
version in force on a day; every decision records ``Policy.version``.

Importable without a database or any other part of the application.
"""

from __future__ import annotations

import calendar
import itertools
import os
import re
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "KNOWN_BASES",
    "RISK_CLASSES",
    "CheckRequestRules",
    "CombinableCategories",
    "Exemptions",
    "InspectorRules",
    "MergeRules",
    "NoDisturbEntry",
    "Policy",
    "PolicyBook",
    "PolicyError",
    "PolicyNotInForceError",
    "RepeatRules",
    "RiskClass",
    "SurveyRules",
    "TraceCheckRules",
    "add_months",
    "default_policy_path",
    "load_policy",
    "validate_policy_file",
]

RiskClass = Literal["A", "B", "C", "D"]
RISK_CLASSES: tuple[RiskClass, ...] = get_args(RiskClass)

#: Legal bases of unplanned checks (design section 4).
KNOWN_BASES: frozenset[str] = frozenset(
    {"complaint", "referral", "tip_off", "assigned_by_superior", "incident", "other"}
)

POLICY_PATH_ENV = "INSPECTION_HUB_POLICY_FILE"

_USCC_SHAPE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$")


class PolicyError(ValueError):
    """A policy file is missing, unreadable or invalid; ``problems`` lists every problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("invalid policy: " + "; ".join(self.problems))


class PolicyNotInForceError(LookupError):
    """No policy version is in force on the requested day."""

    def __init__(self, day: date) -> None:
        self.day = day
        super().__init__(f"no policy version is in force on {day.isoformat()}")


def add_months(day: date, months: int) -> date:
    """Return ``day`` shifted by whole calendar months, clamped to the end of shorter months."""
    index = day.year * 12 + (day.month - 1) + months
    year, month0 = divmod(index, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_bases(value: frozenset[str]) -> frozenset[str]:
    unknown = sorted(value - KNOWN_BASES)
    if unknown:
        raise ValueError(
            f"unknown legal basis {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_BASES))}"
        )
    return value


def _check_all_classes(value: Mapping[RiskClass, object]) -> None:
    missing = [rc for rc in RISK_CLASSES if rc not in value]
    if missing:
        raise ValueError(f"missing risk class {', '.join(missing)}")


class RepeatRules(_Strict):
    """Repeat window: same enterprise and matter category within ``window_days``."""

    window_days: int = Field(default=180, ge=0)
    category_window_days: dict[str, int] = Field(default_factory=dict)

    @field_validator("category_window_days")
    @classmethod
    def _non_negative(cls, value: dict[str, int]) -> dict[str, int]:
        bad = sorted(k for k, v in value.items() if v < 0)
        if bad:
            raise ValueError(f"window days must be >= 0 for {', '.join(bad)}")
        return value


class MergeRules(_Strict):
    """Merge window: different agencies' checks at most ``window_days`` apart."""

    window_days: int = Field(default=30, ge=0)


class CombinableCategories(_Strict):
    """Which matter categories may be combined into one joint visit."""

    any_different: bool = True
    groups: tuple[frozenset[str], ...] = ()

    def combinable(self, first: Iterable[str], second: Iterable[str]) -> bool:
        """Whether inspections with these category sets may be combined into one visit."""
        if self.any_different:
            return True
        union = frozenset(first) | frozenset(second)
        if len(union) <= 1:
            return True
        return any(union <= group for group in self.groups)


class NoDisturbEntry(_Strict):
    """One no-disturb period (inclusive dates) of one enterprise."""

    uscc: str
    from_date: date
    to_date: date
    reason: str = ""

    @field_validator("uscc")
    @classmethod
    def _uscc_shape(cls, value: str) -> str:
        if not _USCC_SHAPE.match(value):
            raise ValueError(f"not an 18-character unified social credit code: {value!r}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> NoDisturbEntry:
        if self.to_date < self.from_date:
            raise ValueError(f"to_date {self.to_date} is before from_date {self.from_date}")
        return self


class Exemptions(_Strict):
    """Who is left alone: new businesses, the no-disturb list, already-inspected enterprises."""

    new_business_grace_months: int = Field(default=6, ge=0)
    no_disturb: tuple[NoDisturbEntry, ...] = ()
    exclude_inspected_same_category_same_agency_this_year: bool = True
    override_bases: frozenset[str] = frozenset({"complaint", "incident"})

    @field_validator("override_bases")
    @classmethod
    def _known_bases(cls, value: frozenset[str]) -> frozenset[str]:
        return _check_bases(value)


class InspectorRules(_Strict):
    """Inspector selection: recusal, workload and team size."""

    recusal_days: int = Field(default=730, ge=0)
    workload_cap_per_draw: int = Field(default=20, ge=1)
    min_per_inspection: int = Field(default=2, ge=1)


class CheckRequestRules(_Strict):
    """Unplanned check requests: window length, decision deadlines, emergency approval."""

    max_unplanned_window_days: int = Field(default=30, ge=1)
    decision_working_days: int = Field(default=3, ge=1)
    escalation_to_expiry_working_days: int = Field(default=2, ge=0)
    emergency_approval_hours: int = Field(default=24, ge=1)


class SurveyRules(_Strict):
    """Follow-up surveys: sampling by inspection kind and timing."""

    planned_sample_ratio: float = Field(default=0.30, ge=0.0, le=1.0)
    unplanned_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    joint_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    delay_days: int = Field(default=1, ge=0)
    reminder_days: int = Field(default=3, ge=0)
    expiry_days: int = Field(default=14, ge=1)

    def sample_ratio(self, kind: str) -> float:
        """Sampling ratio for an inspection kind (planned, unplanned or joint)."""
        ratios = {
            "planned": self.planned_sample_ratio,
            "unplanned": self.unplanned_sample_ratio,
            "joint": self.joint_sample_ratio,
        }
        if kind not in ratios:
            raise ValueError(f"unknown inspection kind {kind!r}")
        return ratios[kind]


class TraceCheckRules(_Strict):
    """Trace checks of the platform's own records."""

    outcome_deadline_days: int = Field(default=7, ge=0)


def _default_caps() -> dict[RiskClass, int]:
    return {"A": 1, "B": 2, "C": 3, "D": 6}


def _default_ratios() -> dict[RiskClass, float]:
    return {"A": 0.01, "B": 0.02, "C": 0.10, "D": 0.30}


class Policy(_Strict):
    """One version of the rules, in force from ``effective_from`` to ``effective_to`` inclusive."""

    version: str = Field(min_length=1)
    effective_from: date
    effective_to: date | None = None
    caps: dict[RiskClass, int] = Field(default_factory=_default_caps)
    cap_exempt_bases: frozenset[str] = frozenset({"complaint", "incident", "assigned_by_superior"})
    repeat: RepeatRules = Field(default_factory=RepeatRules)
    merge: MergeRules = Field(default_factory=MergeRules)
    combinable_categories: CombinableCategories = Field(default_factory=CombinableCategories)
    sampling_ratios: dict[RiskClass, float] = Field(default_factory=_default_ratios)
    exemptions: Exemptions = Field(default_factory=Exemptions)
    inspectors: InspectorRules = Field(default_factory=InspectorRules)
    check_requests: CheckRequestRules = Field(default_factory=CheckRequestRules)
    surveys: SurveyRules = Field(default_factory=SurveyRules)
    trace_checks: TraceCheckRules = Field(default_factory=TraceCheckRules)

    @field_validator("cap_exempt_bases")
    @classmethod
    def _known_bases(cls, value: frozenset[str]) -> frozenset[str]:
        return _check_bases(value)

    @field_validator("caps")
    @classmethod
    def _caps_complete(cls, value: dict[RiskClass, int]) -> dict[RiskClass, int]:
        _check_all_classes(value)
        bad = sorted(k for k, v in value.items() if v < 0)
        if bad:
            raise ValueError(f"caps must be >= 0 (class {', '.join(bad)})")
        return value

    @field_validator("sampling_ratios")
    @classmethod
    def _ratios_complete(cls, value: dict[RiskClass, float]) -> dict[RiskClass, float]:
        _check_all_classes(value)
        bad = sorted(k for k, v in value.items() if not 0.0 <= v <= 1.0)
        if bad:
            raise ValueError(f"sampling ratios must be between 0 and 1 (class {', '.join(bad)})")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Policy:
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError(
                f"effective_to {self.effective_to} is before effective_from {self.effective_from}"
            )
        return self

    def in_force_on(self, day: date) -> bool:
        """Whether this version is in force on ``day``."""
        return self.effective_from <= day and (
            self.effective_to is None or day <= self.effective_to
        )

    def cap_for(self, risk_class: RiskClass) -> int:
        """Yearly inspection cap for a risk class."""
        return self.caps[risk_class]

    def is_cap_exempt(self, basis: str | None) -> bool:
        """Whether a check on this legal basis is counted but never blocked by the cap."""
        return basis is not None and basis in self.cap_exempt_bases

    def overrides_no_disturb(self, basis: str | None) -> bool:
        """Whether a check on this legal basis may proceed in a no-disturb period."""
        return basis is not None and basis in self.exemptions.override_bases

    def repeat_window_days(self, category: str) -> int:
        """Repeat window in days for a matter category (override or default)."""
        return self.repeat.category_window_days.get(category, self.repeat.window_days)

    def categories_combinable(self, first: Iterable[str], second: Iterable[str]) -> bool:
        """Whether two inspections' matter categories may be combined into one joint visit."""
        return self.combinable_categories.combinable(first, second)

    def sampling_ratio(self, risk_class: RiskClass) -> float:
        """Draw sampling ratio for a risk class."""
        return self.sampling_ratios[risk_class]

    def new_business_grace_end(self, established_on: date) -> date:
        """First day after the new-business grace period (exclusive end)."""
        return add_months(established_on, self.exemptions.new_business_grace_months)

    def no_disturb_periods(self, uscc: str) -> list[tuple[date, date]]:
        """The enterprise's no-disturb periods from the policy list (inclusive dates, sorted)."""
        return sorted(
            (e.from_date, e.to_date) for e in self.exemptions.no_disturb if e.uscc == uscc
        )


class _PolicyFile(_Strict):
    versions: list[Policy] = Field(min_length=1)


def _overlap_problems(versions: Sequence[Policy]) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for policy in versions:
        if policy.version in seen:
            problems.append(f"version {policy.version!r} is defined more than once")
        seen.add(policy.version)
    ordered = sorted(versions, key=lambda p: (p.effective_from, p.version))
    for earlier, later in itertools.pairwise(ordered):
        if earlier.effective_to is None or earlier.effective_to >= later.effective_from:
            end = "open-ended" if earlier.effective_to is None else f"to {earlier.effective_to}"
            problems.append(
                f"versions {earlier.version!r} (from {earlier.effective_from}, {end}) and "
                f"{later.version!r} (from {later.effective_from}) overlap"
            )
    return problems


class PolicyBook:
    """All versions of the policy; ``at(day)`` gives the version in force on a day."""

    __slots__ = ("source", "versions")

    def __init__(self, versions: Iterable[Policy], source: Path | None = None) -> None:
        ordered = tuple(sorted(versions, key=lambda p: (p.effective_from, p.version)))
        if not ordered:
            raise PolicyError(["the policy has no versions"])
        problems = _overlap_problems(ordered)
        if problems:
            raise PolicyError(problems)
        self.versions: tuple[Policy, ...] = ordered
        self.source = source

    def at(self, day: date) -> Policy:
        """The version in force on ``day``; raises ``PolicyNotInForceError`` if there is none."""
        for policy in self.versions:
            if policy.in_force_on(day):
                return policy
        raise PolicyNotInForceError(day)

    def get(self, version: str) -> Policy:
        """The version with this name (for re-reading a recorded decision); ``KeyError`` if none."""
        for policy in self.versions:
            if policy.version == version:
                return policy
        raise KeyError(version)

    def __repr__(self) -> str:
        names = ", ".join(p.version for p in self.versions)
        return f"PolicyBook([{names}], source={self.source})"


def default_policy_path() -> Path:
    """``$INSPECTION_HUB_POLICY_FILE`` if set, else the repository's ``config/policy.toml``."""
    env = os.environ.get(POLICY_PATH_ENV)
    if env:
        return Path(env)
    from inspection_hub.paths import config_dir

    return config_dir() / "policy.toml"


def _format_loc(loc: tuple[int | str, ...], raw: Any) -> str:
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if item == "[key]":
            continue
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and 0 <= item < len(node):
                node = node[item]
                if parts == ["versions"] and isinstance(node, dict) and "version" in node:
                    label += f" ({node['version']})"
            else:
                node = None
            parts.append(label)
        else:
            node = node.get(item) if isinstance(node, dict) else None
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(file)"


def _read(path: Path) -> tuple[PolicyBook | None, list[str]]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, [f"{path}: file not found"]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}: cannot read: {exc}"]
    except tomllib.TOMLDecodeError as exc:
        return None, [f"{path}: not valid TOML: {exc}"]
    try:
        parsed = _PolicyFile.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{_format_loc(tuple(err['loc']), raw)}: {err['msg'].removeprefix('Value error, ')}"
            + (f" (got {err['input']!r})" if err["type"] == "literal_error" else "")
            for err in exc.errors()
        ]
        return None, problems
    problems = _overlap_problems(parsed.versions)
    if problems:
        return None, problems
    return PolicyBook(parsed.versions, source=path), []


def load_policy(path: str | os.PathLike[str] | None = None) -> PolicyBook:
    """Load and validate a policy file (default: ``default_policy_path()``)."""
    resolved = Path(path) if path is not None else default_policy_path()
    book, problems = _read(resolved)
    if book is None:
        raise PolicyError(problems)
    return book


@lru_cache(maxsize=8)
def _cached_book(path: Path, mtime_ns: int) -> PolicyBook:
    return load_policy(path)


#: How long a looked-up book is used before the file's modification time is checked again.
POLICY_RECHECK_SECONDS = 1.0
_recent: dict[str, tuple[float, PolicyBook]] = {}


def policy_in_force(path: str | os.PathLike[str] | None = None) -> PolicyBook:
    """The policy book of a file (default: the configured one), re-read when the file changes.

    The file's modification time is checked at most once a second per path (resolving and
    stat-ing it on every request cost 6 % of a read's CPU), so an edited file takes effect
    within a second; a book is only ever replaced by a complete, validated one.
    """
    key = os.fspath(path) if path else "\0default:" + os.environ.get(POLICY_PATH_ENV, "")
    now = time.monotonic()
    hit = _recent.get(key)
    if hit is not None and now - hit[0] < POLICY_RECHECK_SECONDS:
        return hit[1]
    resolved = Path(path or default_policy_path()).resolve()
    book = _cached_book(resolved, resolved.stat().st_mtime_ns)
    _recent[key] = (now, book)
    return book


def validate_policy_file(path: str | os.PathLike[str]) -> list[str]:
    """Human-readable problems of a policy file; empty when the file is valid."""
    return _read(Path(path))[1]
