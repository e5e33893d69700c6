"""Seeded synthetic enterprises with valid USCCs (demo district, tests, benchmarks)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from stdnum.cn import uscc as stdnum_uscc

# 常州市 districts: 钟楼区, 天宁区, 新北区, 武进区, 金坛区, 溧阳市
DISTRICTS = ("320404", "320402", "320411", "320412", "320413", "320481")
# GB/T 4754-2017 classes seen in a district: retail, catering, food manufacturing, construction...
INDUSTRIES = (
    "F5211",
    "F5212",
    "F5223",
    "F5261",
    "H6210",
    "H6220",
    "H6110",
    "C1391",
    "C1431",
    "C3311",
    "E4710",
    "E4790",
    "G5421",
    "K7010",
    "L7212",
    "O8010",
    "Q8411",
    "C2621",
)
RISK_WEIGHTS = (("A", 30), ("B", 45), ("C", 20), ("D", 5))
_ORG_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_NAME_PARTS = ("华", "兴", "宏", "盛", "达", "龙", "运", "晨", "博", "新", "恒", "瑞", "和", "信")
_NAME_KIND = ("贸易", "餐饮", "食品", "建材", "物流", "科技", "五金", "服饰", "药房", "超市")
_NAME_FORM = ("有限公司", "有限责任公司", "商行", "经营部")


def make_uscc(district: str, serial: int) -> str:
    """A valid 18-character USCC for a district and a serial number (GB 32100-2015)."""
    org = ""
    n = serial
    for _ in range(9):
        n, r = divmod(n, 31)
        org = _ORG_ALPHABET[r] + org
    body = "91" + district + org
    return body + stdnum_uscc.calc_check_digit(body)


def _pick_risk(rng: random.Random) -> str:
    x = rng.random() * 100
    acc = 0
    for cls, weight in RISK_WEIGHTS:
        acc += weight
        if x < acc:
            return cls
    return "D"


def enterprises(n: int, seed: int = 2026, start_serial: int = 0) -> Iterator[dict[str, Any]]:
    """Stream n enterprise rows (import columns), deterministic for a seed."""
    rng = random.Random(seed)
    multiplier = 48271  # coprime with 31**9: a permutation of serials that looks random
    modulus = 31**9
    for i in range(n):
        district = DISTRICTS[rng.randrange(len(DISTRICTS))]
        serial = ((start_serial + i + 1) * multiplier + seed) % modulus
        name = (
            "常州"
            + rng.choice(_NAME_PARTS)
            + rng.choice(_NAME_PARTS)
            + rng.choice(_NAME_KIND)
            + rng.choice(_NAME_FORM)
        )
        yield {
            "uscc": make_uscc(district, serial),
            "name": name,
            "district_code": district,
            "industry_code": INDUSTRIES[rng.randrange(len(INDUSTRIES))],
            "risk_class": _pick_risk(rng),
            "established_on": date(2005, 1, 1) + timedelta(days=rng.randrange(7600)),
            "address": f"常州市某路{rng.randrange(1, 999)}号",
            "callback_url": None,
        }
