"""Seeded generator of synthetic enterprises (Changzhou) for benchmarks and demos.

USCCs follow GB 32100-2015: registration-management code '9' (market regulation), entity type
'1'/'2'/'3', a 6-digit administrative division code, a 9-character organisation code (8 digits
plus its GB 11714 check character) and the USCC check character from `stdnum.cn.uscc`. The 8-digit
organisation body is an affine permutation of a counter keyed by the seed, so codes are unique for
up to 100,000,000 enterprises per seed.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from stdnum.cn import uscc as stdnum_uscc

# Changzhou (常州市) districts and county-level city.
DISTRICTS: tuple[tuple[str, str], ...] = (
    ("320402", "天宁区"),
    ("320404", "钟楼区"),
    ("320411", "新北区"),
    ("320412", "武进区"),
    ("320413", "金坛区"),
    ("320481", "溧阳市"),
)
# GB/T 4754-2017 industry classes with a word for the enterprise name.
INDUSTRIES: tuple[tuple[str, str], ...] = (
    ("F5212", "超市"),
    ("F5191", "贸易"),
    ("F5274", "电子商务"),
    ("H6210", "餐饮"),
    ("C3311", "金属结构"),
    ("C3484", "机械"),
    ("C3891", "电器"),
    ("C2927", "塑料制品"),
    ("E4790", "建筑工程"),
    ("G5430", "物流"),
    ("I6513", "软件"),
    ("M7320", "科技"),
    ("O8020", "洗涤服务"),
    ("K7020", "物业管理"),
)
RISK_WEIGHTS: tuple[tuple[str, int], ...] = (("A", 30), ("B", 45), ("C", 20), ("D", 5))
ENTITY_TYPES = ("1", "2", "3")
_NAME_CHARS = "华盛鑫源恒达瑞丰宏泰嘉诚新宇天和金龙永安博远正德兴隆百川汇通明辉中信"
_STREETS = (
    "延陵西路",
    "和平北路",
    "劳动中路",
    "通江中路",
    "龙城大道",
    "常澄路",
    "人民路",
    "长江路",
)
_ORG_SPACE = 100_000_000  # 8-digit organisation code body
_GB11714_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
CSV_FIELDS = (
    "uscc",
    "name",
    "district_code",
    "industry_code",
    "risk_class",
    "established_on",
    "address",
    "callback_url",
)


def organisation_check_char(body: str) -> str:
    """Return the GB 11714 check character of an 8-character organisation code body."""
    total = sum(int(ch, 36) * w for ch, w in zip(body, _GB11714_WEIGHTS, strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def make_uscc(entity_type: str, district_code: str, org_body: str) -> str:
    """Return a USCC with valid organisation-code and USCC check characters."""
    partial = "9" + entity_type + district_code + org_body + organisation_check_char(org_body)
    return partial + stdnum_uscc.calc_check_digit(partial)


def _permutation(seed: int) -> tuple[int, int]:
    rng = random.Random(f"org-permutation:{seed}")
    while True:
        a = rng.randrange(1, _ORG_SPACE)
        if a % 2 and a % 5:  # coprime to 10**8, so i -> a*i+b mod 10**8 is a bijection
            return a, rng.randrange(_ORG_SPACE)


def generate_enterprises(n: int, seed: int) -> Iterator[dict[str, Any]]:
    """Yield n synthetic enterprises, deterministic for a seed, without building a list."""
    if not 0 <= n <= _ORG_SPACE:
        raise ValueError(f"n must be between 0 and {_ORG_SPACE}")
    rng = random.Random(seed)
    a, b = _permutation(seed)
    risk_classes = [rc for rc, _ in RISK_WEIGHTS]
    risk_weights = [w for _, w in RISK_WEIGHTS]
    first_day = date(1995, 1, 1).toordinal()
    span = date(2024, 12, 31).toordinal() - first_day
    for i in range(n):
        district_code, district_name = rng.choice(DISTRICTS)
        industry_code, industry_word = rng.choice(INDUSTRIES)
        org_body = f"{(a * i + b) % _ORG_SPACE:08d}"
        brand = "".join(rng.choices(_NAME_CHARS, k=2))
        number = rng.randrange(1, 999)
        yield {
            "uscc": make_uscc(rng.choice(ENTITY_TYPES), district_code, org_body),
            "name": f"常州{brand}{industry_word}有限公司",
            "district_code": district_code,
            "industry_code": industry_code,
            "risk_class": rng.choices(risk_classes, risk_weights)[0],
            "established_on": date.fromordinal(first_day + rng.randrange(span)).isoformat(),
            "address": f"江苏省常州市{district_name}{rng.choice(_STREETS)}{number}号",
            "callback_url": None,
        }


def write_csv(path: str | Path, n: int, seed: int) -> int:
    """Stream n generated enterprises to a UTF-8 CSV file with a header; return the row count."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in generate_enterprises(n, seed):
            writer.writerow({**row, "callback_url": row["callback_url"] or ""})
            count += 1
    return count


def generate_candidates(n: int, seed: int) -> Iterator[tuple[str, str]]:
    """Yield n (uscc, risk_class) pairs quickly: same USCC scheme, lighter randomness."""
    if not 0 <= n <= _ORG_SPACE:
        raise ValueError(f"n must be between 0 and {_ORG_SPACE}")
    rng = random.Random(f"candidates:{seed}")
    a, b = _permutation(seed)
    prefixes = [f"9{t}{d}" for t in ENTITY_TYPES for d, _ in DISTRICTS]
    bounds: list[tuple[float, str]] = []
    acc = 0.0
    total = sum(w for _, w in RISK_WEIGHTS)
    for rc, w in RISK_WEIGHTS:
        acc += w / total
        bounds.append((acc, rc))
    check = stdnum_uscc.calc_check_digit
    for i in range(n):
        body = f"{(a * i + b) % _ORG_SPACE:08d}"
        partial = prefixes[rng.randrange(len(prefixes))] + body + organisation_check_char(body)
        draw = rng.random()
        risk = next((rc for bound, rc in bounds if draw < bound), "D")
        yield partial + check(partial), risk
