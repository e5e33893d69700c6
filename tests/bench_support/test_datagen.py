"""Tests of the synthetic enterprise generator used by the benchmarks."""

from __future__ import annotations

import csv
import itertools
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from bench.datagen import (
    DISTRICTS,
    generate_candidates,
    generate_enterprises,
    make_uscc,
    organisation_check_char,
    write_csv,
)
from stdnum.cn import uscc

KEYS = {
    "uscc",
    "name",
    "district_code",
    "industry_code",
    "risk_class",
    "established_on",
    "address",
    "callback_url",
}


def test_organisation_check_char_gb11714() -> None:
    # 12345678 -> weights 3,7,9,10,5,8,4,2 give 201; 11 - 201 % 11 = 8
    assert organisation_check_char("12345678") == "8"
    assert organisation_check_char("00000000") == "0"  # 11 -> '0'


def test_make_uscc_matches_stdnum() -> None:
    code = make_uscc("1", "320404", "60003734")
    assert uscc.is_valid(code)
    assert code[:8] == "91320404"


def test_enterprises_are_valid_unique_and_well_formed() -> None:
    rows = list(generate_enterprises(50_000, seed=42))
    codes = [r["uscc"] for r in rows]
    assert len(set(codes)) == len(codes)
    assert all(uscc.is_valid(c) for c in codes)
    districts = {d for d, _ in DISTRICTS}
    for row in rows[:2000]:
        assert set(row) == KEYS
        assert row["district_code"] in districts
        assert row["uscc"][2:8] == row["district_code"]
        assert row["uscc"][0] == "9"
        assert row["uscc"][1] in "123"
        assert len(row["industry_code"]) == 5
        assert row["industry_code"][0].isalpha()
        assert row["industry_code"][1:].isdigit()
        assert row["name"].startswith("常州")
        assert row["name"].endswith("有限公司")
        assert row["callback_url"] is None
        date.fromisoformat(row["established_on"])
    shares = Counter(r["risk_class"] for r in rows)
    for risk_class, expected in {"A": 0.30, "B": 0.45, "C": 0.20, "D": 0.05}.items():
        assert shares[risk_class] / len(rows) == pytest.approx(expected, abs=0.01)


def test_same_seed_same_data_other_seed_other_data() -> None:
    first = list(generate_enterprises(500, seed=7))
    assert first == list(generate_enterprises(500, seed=7))
    assert first != list(generate_enterprises(500, seed=8))
    assert list(generate_candidates(500, seed=7)) == list(generate_candidates(500, seed=7))


def test_candidates_are_valid_and_unique() -> None:
    pairs = list(generate_candidates(50_000, seed=3))
    assert len({u for u, _ in pairs}) == len(pairs)
    assert all(uscc.is_valid(u) and rc in "ABCD" for u, rc in pairs)


def test_generator_streams() -> None:
    head = list(itertools.islice(generate_enterprises(10_000_000, seed=1), 3))
    assert len(head) == 3


def test_write_csv(tmp_path: Path) -> None:
    path = tmp_path / "enterprises.csv"
    assert write_csv(path, 100, seed=5) == 100
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 100
    assert rows[0]["uscc"] == next(generate_enterprises(1, seed=5))["uscc"]
