"""The translation catalogues: complete in Chinese, and the committed .mo files are current."""

from __future__ import annotations

import io

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from inspection_hub.web.i18n import LOCALES, TEMPLATES_DIR, TRANSLATIONS_DIR


def _template_ids() -> set[str]:
    found = extract_from_dir(
        str(TEMPLATES_DIR),
        method_map=[
            ("**.html", "jinja2.ext:babel_extract"),
            ("**.csv", "jinja2.ext:babel_extract"),
        ],
        options_map={
            "**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "1"},
            "**.csv": {"extensions": "jinja2.ext.i18n", "trim_blocks": "1"},
        },
    )
    return {m[2] for m in found if isinstance(m[2], str)}


def _po(locale: str) -> Catalog:
    with (TRANSLATIONS_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=locale)


def test_every_template_string_has_a_chinese_translation() -> None:
    catalog = _po("zh_Hans")
    translated = {m.id: m.string for m in catalog if m.id}
    missing = sorted(i for i in _template_ids() if not translated.get(i))
    assert missing == []


def test_compiled_catalogues_match_their_sources() -> None:
    for locale in LOCALES:
        source = {m.id: m.string for m in _po(locale) if m.id and m.string}
        with (TRANSLATIONS_DIR / locale / "LC_MESSAGES" / "messages.mo").open("rb") as fh:
            compiled = {m.id: m.string for m in read_mo(io.BytesIO(fh.read())) if m.id}
        assert compiled == source, f"run `python -m inspection_hub.web.i18n compile` ({locale})"
