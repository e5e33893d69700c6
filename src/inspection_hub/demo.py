"""The demo district: agencies with checklists, certified inspectors and 2,000 enterprises."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.agencies.models import Agency, Inspector, Matter
from inspection_hub.audit.service import record
from inspection_hub.enterprises.service import import_rows
from inspection_hub.kit.synth import enterprises

AGENCIES: list[tuple[str, str, list[tuple[str, str, str]]]] = [
    (
        "SCJG",
        "区市场监督管理局",
        [
            ("SCJG-001", "食品经营许可及食品安全检查", "food_safety"),
            ("SCJG-002", "产品质量监督抽查", "product_quality"),
            ("SCJG-003", "特种设备安全检查", "special_equipment"),
            ("SCJG-004", "价格行为检查", "pricing"),
        ],
    ),
    (
        "YJGL",
        "区应急管理局",
        [
            ("YJGL-001", "安全生产条件检查", "work_safety"),
            ("YJGL-002", "危险化学品经营检查", "hazardous_chemicals"),
        ],
    ),
    (
        "STHJ",
        "市生态环境局钟楼分局",
        [
            ("STHJ-001", "排污许可执行检查", "pollution_permit"),
            ("STHJ-002", "危险废物规范化管理检查", "hazardous_waste"),
        ],
    ),
    (
        "WSJK",
        "区卫生健康委员会",
        [
            ("WSJK-001", "公共场所卫生检查", "public_hygiene"),
            ("WSJK-002", "职业病防治检查", "occupational_health"),
        ],
    ),
    (
        "ZJJ",
        "区住房和城乡建设局",
        [
            ("ZJJ-001", "建筑施工安全检查", "construction_safety"),
            ("ZJJ-002", "燃气经营安全检查", "gas_safety"),
        ],
    ),
    (
        "XFJY",
        "区消防救援大队",
        [
            ("XFJY-001", "消防安全检查", "fire_safety"),
            ("XFJY-002", "人员密集场所消防检查", "fire_safety"),
        ],
    ),
]
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
_GIVEN = ("伟", "芳", "娜", "敏", "静", "磊", "强", "洋", "勇", "军", "杰", "涛", "明", "霞", "平")


async def load_demo(session: AsyncSession) -> dict[str, Any]:
    """Load the demo district (idempotent: does nothing when SCJG already exists)."""
    if await session.get(Agency, "SCJG") is not None:
        return {"skipped": "demo data already present"}
    inspectors = 0
    for index, (code, name, matters) in enumerate(AGENCIES):
        session.add(Agency(code=code, name=name))
        await session.flush()
        for m_code, m_name, category in matters:
            session.add(Matter(code=m_code, agency_code=code, name=m_name, category=category))
        for k in range(5):
            serial = index * 5 + k
            session.add(
                Inspector(
                    agency_code=code,
                    name=_SURNAMES[serial % len(_SURNAMES)] + _GIVEN[serial % len(_GIVEN)],
                    certificate_no=f"JS-{code}-{2024000 + serial:07d}",
                    # one lapsed certificate per agency, so rosters show the difference
                    certificate_valid_until=date(2025, 6, 30) if k == 4 else date(2029, 12, 31),
                )
            )
            inspectors += 1
    await session.flush()
    rows = list(enterprises(2000, seed=2026))
    created, _ = await import_rows(session, None, rows, "demo-district-2026")
    await record(session, None, "demo.load", "demo", "district", after={"enterprises": created})
    return {"agencies": len(AGENCIES), "inspectors": inspectors, "enterprises": created}
