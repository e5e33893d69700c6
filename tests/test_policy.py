"""Tests of the dated policy loader."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inspection_hub.policy import (
    Policy,
    PolicyBook,
    PolicyError,
    PolicyNotInForceError,
    add_months,
    default_policy_path,
    load_policy,
    validate_policy_file,
)

REPO_POLICY = Path(__file__).resolve().parents[1] / "config" / "policy.toml"

TWO_VERSIONS = """
[[versions]]
version = "2025.1"
effective_from = 2025-01-01
effective_to = 2025-12-31

[versions.caps]
A = 1
B = 2
C = 3
D = 6

[[versions]]
version = "2026.1"
effective_from = 2026-01-01

[versions.caps]
A = 0
B = 1
C = 2
D = 4
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_repo_policy_is_valid_and_has_documented_defaults() -> None:
    assert validate_policy_file(REPO_POLICY) == []
    book = load_policy(REPO_POLICY)
    policy = book.at(date(2026, 6, 1))
    assert policy.version == "2026.1"
    assert policy.caps == {"A": 1, "B": 2, "C": 3, "D": 6}
    assert policy.cap_exempt_bases == {"complaint", "incident", "assigned_by_superior"}
    assert policy.repeat.window_days == 180
    assert policy.merge.window_days == 30
    assert policy.combinable_categories.any_different is True
    assert policy.sampling_ratios == {"A": 0.01, "B": 0.02, "C": 0.10, "D": 0.30}
    assert policy.exemptions.new_business_grace_months == 6
    assert policy.exemptions.no_disturb == ()
    assert policy.exemptions.exclude_inspected_same_category_same_agency_this_year is True
    assert policy.exemptions.override_bases == {"complaint", "incident"}
    assert policy.inspectors.recusal_days == 730
    assert policy.inspectors.workload_cap_per_draw == 20
    assert policy.inspectors.min_per_inspection == 2
    assert policy.check_requests.max_unplanned_window_days == 30
    assert policy.check_requests.decision_working_days == 3
    assert policy.check_requests.escalation_to_expiry_working_days == 2
    assert policy.check_requests.emergency_approval_hours == 24
    assert policy.surveys.planned_sample_ratio == 0.30
    assert policy.surveys.unplanned_sample_ratio == 1.0
    assert policy.surveys.delay_days == 1
    assert policy.surveys.reminder_days == 3
    assert policy.surveys.expiry_days == 14
    assert policy.trace_checks.outcome_deadline_days == 7


def test_repo_file_equals_builtin_defaults() -> None:
    policy = load_policy(REPO_POLICY).versions[0]
    builtin = Policy(version=policy.version, effective_from=policy.effective_from)
    assert policy == builtin


def test_default_path_is_repo_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INSPECTION_HUB_POLICY_FILE", raising=False)
    assert default_policy_path().resolve() == REPO_POLICY.resolve()
    assert load_policy().at(date(2026, 1, 1)).version == "2026.1"


def test_default_path_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, TWO_VERSIONS)
    monkeypatch.setenv("INSPECTION_HUB_POLICY_FILE", str(path))
    assert default_policy_path() == path
    assert load_policy().at(date(2025, 5, 1)).version == "2025.1"


def test_at_picks_version_at_boundaries(tmp_path: Path) -> None:
    book = load_policy(write(tmp_path, TWO_VERSIONS))
    assert book.at(date(2025, 1, 1)).version == "2025.1"
    assert book.at(date(2025, 12, 31)).version == "2025.1"
    assert book.at(date(2026, 1, 1)).version == "2026.1"
    assert book.at(date(2099, 1, 1)).version == "2026.1"
    assert book.at(date(2026, 1, 1)).cap_for("A") == 0
    with pytest.raises(PolicyNotInForceError):
        book.at(date(2024, 12, 31))
    assert book.get("2025.1").effective_to == date(2025, 12, 31)
    with pytest.raises(KeyError):
        book.get("1999.1")
    assert [p.version for p in book.versions] == ["2025.1", "2026.1"]
    assert book.source == tmp_path / "policy.toml"


def test_gap_between_versions_is_not_in_force(tmp_path: Path) -> None:
    text = TWO_VERSIONS.replace("effective_from = 2026-01-01", "effective_from = 2026-02-01")
    book = load_policy(write(tmp_path, text))
    with pytest.raises(PolicyNotInForceError) as info:
        book.at(date(2026, 1, 15))
    assert info.value.day == date(2026, 1, 15)
    assert book.at(date(2026, 2, 1)).version == "2026.1"


def test_versions_in_any_file_order(tmp_path: Path) -> None:
    first, second = TWO_VERSIONS.split("[[versions]]")[1:]
    book = load_policy(write(tmp_path, "[[versions]]" + second + "\n[[versions]]" + first))
    assert [p.version for p in book.versions] == ["2025.1", "2026.1"]


@pytest.mark.parametrize(
    ("old_to", "expect_overlap"),
    [("2026-01-01", True), ("2025-12-31", False), ("2026-06-30", True)],
)
def test_overlap_rejected(tmp_path: Path, old_to: str, expect_overlap: bool) -> None:
    text = TWO_VERSIONS.replace("effective_to = 2025-12-31", f"effective_to = {old_to}")
    path = write(tmp_path, text)
    problems = validate_policy_file(path)
    if expect_overlap:
        assert len(problems) == 1
        assert "overlap" in problems[0]
        assert "2025.1" in problems[0]
        assert "2026.1" in problems[0]
        with pytest.raises(PolicyError) as info:
            load_policy(path)
        assert info.value.problems == problems
    else:
        assert problems == []


def test_open_ended_version_followed_by_another_overlaps(tmp_path: Path) -> None:
    text = TWO_VERSIONS.replace("effective_to = 2025-12-31\n", "")
    problems = validate_policy_file(write(tmp_path, text))
    assert len(problems) == 1
    assert "open-ended" in problems[0]


def test_duplicate_version_names_rejected(tmp_path: Path) -> None:
    text = TWO_VERSIONS.replace('version = "2026.1"', 'version = "2025.1"')
    problems = validate_policy_file(write(tmp_path, text))
    assert any("more than once" in p for p in problems)


def test_policy_book_rejects_overlap_directly() -> None:
    a = Policy(version="a", effective_from=date(2026, 1, 1))
    b = Policy(version="b", effective_from=date(2026, 6, 1))
    with pytest.raises(PolicyError):
        PolicyBook([a, b])
    with pytest.raises(PolicyError):
        PolicyBook([])
    a_closed = Policy(version="a", effective_from=date(2026, 1, 1), effective_to=date(2026, 5, 31))
    assert PolicyBook([b, a_closed]).at(date(2026, 5, 31)).version == "a"


@pytest.mark.parametrize(
    ("snippet", "where"),
    [
        ("[versions.caps]\nA = 1\nB = 2\nC = 3\nD = 6\nE = 9\n", "caps.E"),
        ("[versions.repeat]\nwindow_dayz = 10\n", "repeat.window_dayz"),
        ("[versions.surveys]\nplanned_sample_ratio = 1.5\n", "surveys.planned_sample_ratio"),
        ("[versions.merge]\nwindow_days = -1\n", "merge.window_days"),
        ("[versions.caps]\nA = 1\nB = 2\nC = 3\n", "caps"),
        ("[versions.caps]\nA = 1\nB = 2\nC = 3\nD = -1\n", "caps"),
        ("[versions.sampling_ratios]\nA = 0.1\nB = 0.1\nC = 0.1\nD = 2.0\n", "sampling_ratios"),
        ("[versions.exemptions]\noverride_bases = ['complaint', 'whim']\n", "override_bases"),
        (
            "[[versions.exemptions.no_disturb]]\nuscc = 'short'\n"
            "from_date = 2026-01-01\nto_date = 2026-02-01\n",
            "no_disturb[0].uscc",
        ),
        (
            "[[versions.exemptions.no_disturb]]\nuscc = '91350100M000100Y43'\n"
            "from_date = 2026-03-01\nto_date = 2026-02-01\n",
            "no_disturb[0]",
        ),
        ("[versions.inspectors]\nworkload_cap_per_draw = 0\n", "workload_cap_per_draw"),
    ],
)
def test_invalid_tables_reported(tmp_path: Path, snippet: str, where: str) -> None:
    text = '[[versions]]\nversion = "x.1"\neffective_from = 2026-01-01\n' + snippet
    problems = validate_policy_file(write(tmp_path, text))
    assert problems, snippet
    assert any(where in p for p in problems), problems
    assert all(p.startswith("versions[0] (x.1)") for p in problems), problems


def test_problem_messages_are_readable(tmp_path: Path) -> None:
    text = (
        '[[versions]]\nversion = "x"\neffective_from = 2026-01-01\n'
        "[versions.caps]\nA = 1\nB = 2\nC = 3\nE = 4\n"
        "[[versions.exemptions.no_disturb]]\nuscc = 'abc'\n"
        "from_date = 2026-01-01\nto_date = 2026-02-01\n"
    )
    problems = validate_policy_file(write(tmp_path, text))
    assert problems == [
        "versions[0] (x).caps.E: Input should be 'A', 'B', 'C' or 'D' (got 'E')",
        "versions[0] (x).exemptions.no_disturb[0].uscc: "
        "not an 18-character unified social credit code: 'abc'",
    ]


def test_importable_without_database() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import inspection_hub.policy, inspection_hub.conflicts.rules, "
        "inspection_hub.kit.workdays\n"
        "inspection_hub.policy.load_policy()\n"
        "bad = [m for m in ('sqlalchemy', 'asyncpg', 'fastapi') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_unknown_top_level_and_version_keys_rejected(tmp_path: Path) -> None:
    text = 'colour = "red"\n[[versions]]\nversion = "x"\neffective_from = 2026-01-01\nfoo = 1\n'
    problems = validate_policy_file(write(tmp_path, text))
    assert len(problems) == 2
    assert any(p.startswith("colour:") for p in problems)
    assert any(p.startswith("versions[0] (x).foo:") for p in problems)


def test_unknown_cap_exempt_basis_rejected(tmp_path: Path) -> None:
    text = (
        '[[versions]]\nversion = "x"\neffective_from = 2026-01-01\n'
        'cap_exempt_bases = ["complaint", "gut_feeling"]\n'
    )
    problems = validate_policy_file(write(tmp_path, text))
    assert len(problems) == 1
    assert "gut_feeling" in problems[0]


def test_effective_to_before_from_rejected(tmp_path: Path) -> None:
    text = '[[versions]]\nversion = "x"\neffective_from = 2026-01-01\neffective_to = 2025-12-31\n'
    problems = validate_policy_file(write(tmp_path, text))
    assert len(problems) == 1
    assert "before effective_from" in problems[0]


def test_missing_required_and_bad_types(tmp_path: Path) -> None:
    text = '[[versions]]\nversion = "x"\n[[versions]]\neffective_from = "soon"\n'
    problems = validate_policy_file(write(tmp_path, text))
    assert any("versions[0] (x).effective_from" in p for p in problems)
    assert any("versions[1].version" in p for p in problems)
    assert any("versions[1].effective_from" in p for p in problems)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "versions: Field required"),
        ("versions = []", "versions"),
        ("this is = not toml [", "not valid TOML"),
    ],
)
def test_empty_or_broken_files(tmp_path: Path, text: str, fragment: str) -> None:
    problems = validate_policy_file(write(tmp_path, text))
    assert len(problems) == 1
    assert fragment in problems[0]
    with pytest.raises(PolicyError):
        load_policy(tmp_path / "policy.toml")


def test_missing_file(tmp_path: Path) -> None:
    problems = validate_policy_file(tmp_path / "nope.toml")
    assert problems == [f"{tmp_path / 'nope.toml'}: file not found"]
    with pytest.raises(PolicyError, match="file not found"):
        load_policy(tmp_path / "nope.toml")


def test_minimal_version_uses_defaults(tmp_path: Path) -> None:
    text = '[[versions]]\nversion = "min"\neffective_from = 2026-01-01\n'
    policy = load_policy(str(write(tmp_path, text))).at(date(2026, 1, 1))
    assert policy.caps["D"] == 6
    assert policy.repeat_window_days("anything") == 180


def test_helpers(tmp_path: Path) -> None:
    text = """
[[versions]]
version = "h"
effective_from = 2026-01-01

[versions.repeat]
window_days = 180

[versions.repeat.category_window_days]
food_safety = 90

[versions.combinable_categories]
any_different = false
groups = [["fire", "production"], ["food_safety", "hygiene", "labels"]]

[[versions.exemptions.no_disturb]]
uscc = "91350100M000100Y43"
from_date = 2026-06-01
to_date = 2026-06-30

[[versions.exemptions.no_disturb]]
uscc = "91350100M000100Y43"
from_date = 2026-03-01
to_date = 2026-03-31
reason = "project"
"""
    policy = load_policy(write(tmp_path, text)).at(date(2026, 5, 5))
    assert policy.repeat_window_days("food_safety") == 90
    assert policy.repeat_window_days("fire") == 180
    assert policy.categories_combinable({"fire"}, {"production"})
    assert policy.categories_combinable({"fire"}, {"fire"})
    assert policy.categories_combinable({"food_safety", "labels"}, {"hygiene"})
    assert not policy.categories_combinable({"fire"}, {"hygiene"})
    assert not policy.categories_combinable({"fire", "hygiene"}, {"fire"})
    assert policy.no_disturb_periods("91350100M000100Y43") == [
        (date(2026, 3, 1), date(2026, 3, 31)),
        (date(2026, 6, 1), date(2026, 6, 30)),
    ]
    assert policy.no_disturb_periods("91350100M000100Y44") == []
    assert policy.is_cap_exempt("complaint")
    assert not policy.is_cap_exempt("tip_off")
    assert not policy.is_cap_exempt(None)
    assert policy.overrides_no_disturb("incident")
    assert not policy.overrides_no_disturb("assigned_by_superior")
    assert not policy.overrides_no_disturb(None)
    assert policy.sampling_ratio("C") == 0.10
    assert policy.surveys.sample_ratio("unplanned") == 1.0
    # all joint inspections are surveyed (issue 7)
    assert policy.surveys.sample_ratio("joint") == 1.0
    with pytest.raises(ValueError, match="unknown inspection kind"):
        policy.surveys.sample_ratio("surprise")
    assert policy.new_business_grace_end(date(2025, 8, 31)) == date(2026, 2, 28)
    assert policy.in_force_on(date(2026, 1, 1))
    assert not policy.in_force_on(date(2025, 12, 31))


def test_policy_is_frozen() -> None:
    policy = Policy(version="x", effective_from=date(2026, 1, 1))
    with pytest.raises(ValueError, match="frozen"):
        policy.version = "y"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2025, 8, 15), 6, date(2026, 2, 15)),
        (date(2025, 12, 31), 0, date(2025, 12, 31)),
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2026, 7, 1), 18, date(2028, 1, 1)),
    ],
)
def test_add_months(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)),
    st.integers(min_value=0, max_value=120),
)
def test_add_months_properties(start: date, months: int) -> None:
    result = add_months(start, months)
    assert (result.year * 12 + result.month) - (start.year * 12 + start.month) == months
    assert result.day <= start.day
    assert result >= start


@given(
    st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=6),
    st.integers(min_value=-5, max_value=2500),
)
def test_contiguous_versions_cover_every_day_exactly_once(lengths: list[int], offset: int) -> None:
    from datetime import timedelta

    start = date(2020, 1, 1)
    policies = []
    for i, length in enumerate(lengths):
        end = start + timedelta(days=length - 1)
        last = i == len(lengths) - 1
        policies.append(
            Policy(version=f"v{i}", effective_from=start, effective_to=None if last else end)
        )
        start = end + timedelta(days=1)
    book = PolicyBook(reversed(policies))
    day = date(2020, 1, 1) + timedelta(days=offset)
    if offset < 0:
        with pytest.raises(PolicyNotInForceError):
            book.at(day)
    else:
        found = book.at(day)
        assert [p for p in policies if p.in_force_on(day)] == [found]


def test_undecodable_file_and_repr(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(b"\xff\xfe\x00bad")
    problems = validate_policy_file(path)
    assert len(problems) == 1
    assert "cannot read" in problems[0]
    book = load_policy(REPO_POLICY)
    assert "2026.1" in repr(book)
