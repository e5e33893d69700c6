"""Locales of the pages: Simplified Chinese by default, English on request.

Catalogues live in `translations/<locale>/LC_MESSAGES/messages.po` and are compiled to `.mo`
(committed; `python -m inspection_hub.web.i18n compile` rebuilds them, `extract` refreshes the
`.po` files from the templates).
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from functools import lru_cache, partial
from pathlib import Path

from babel.dates import format_date
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

from inspection_hub.kit.timeutil import LOCAL_TZ

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
TRANSLATIONS_DIR = WEB_DIR / "translations"
DOMAIN = "messages"

DEFAULT_LOCALE = "zh_Hans"
LOCALES = ("zh_Hans", "en")
# what `?lang=` accepts, and the HTML lang attribute of each locale
LANG_PARAM = {"zh": "zh_Hans", "zh-cn": "zh_Hans", "zh_hans": "zh_Hans", "en": "en"}
HTML_LANG = {"zh_Hans": "zh-Hans", "en": "en"}


def pick_locale(query_value: str | None, cookie_value: str | None) -> str:
    """The locale of a request: `?lang=` first, then the remembered choice, else Chinese."""
    for value in (query_value, cookie_value):
        if value and value.lower() in LANG_PARAM:
            return LANG_PARAM[value.lower()]
    return DEFAULT_LOCALE


@lru_cache
def translations(locale: str) -> Translations:
    """The compiled catalogue of a locale (a missing .mo is an installation error)."""
    loaded = Translations.load(str(TRANSLATIONS_DIR), [locale], DOMAIN)
    if not isinstance(loaded, Translations):
        raise RuntimeError(f"the compiled catalogue of {locale} is missing in {TRANSLATIONS_DIR}")
    return loaded


@lru_cache
def environment(locale: str) -> Environment:
    """One Jinja environment per locale (translations installed once, shared safely)."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(["html", "xml"], default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["local_time"] = local_time
    env.filters["csv"] = csv_cell
    env.filters["month_name"] = partial(month_name, locale=locale)
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    return env


def local_time(value: datetime | None) -> str:
    """An instant as the district's local time, to the minute."""
    if value is None:
        return ""
    return value.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")


def month_name(month: int | str, locale: str) -> str:
    """A month (1..12) by its locale's stand-alone short name: 3月, Mar."""
    return format_date(date(2000, int(month), 1), "LLL", locale=locale)


def csv_cell(value: object) -> str:
    """A value as one CSV cell (quoted when it holds a comma, quote or line break)."""
    text = "" if value is None else str(value).strip()
    if any(c in text for c in ',"\r\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text


def extract() -> None:
    """Refresh the .po catalogues from the templates (keeps existing translations)."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po, write_po

    template = Catalog(project="inspection-hub", domain=DOMAIN)
    method_map = [("**.html", "jinja2.ext:babel_extract"), ("**.csv", "jinja2.ext:babel_extract")]
    opts = {"extensions": "jinja2.ext.i18n", "trim_blocks": "1"}
    options = {"**.html": opts, "**.csv": opts}
    for filename, lineno, message, comments, context in extract_from_dir(
        str(TEMPLATES_DIR), method_map=method_map, options_map=options
    ):
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    for locale in LOCALES:
        path = TRANSLATIONS_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with path.open("rb") as fh:
                catalog = read_po(fh, locale=locale, domain=DOMAIN)
        else:
            catalog = Catalog(locale=locale, domain=DOMAIN, project="inspection-hub")
        catalog.update(template, no_fuzzy_matching=True)
        with path.open("wb") as fh:
            write_po(fh, catalog, width=100, omit_header=False, ignore_obsolete=True)


def compile_catalogues() -> None:
    """Compile every .po catalogue to its .mo."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for locale in LOCALES:
        po = TRANSLATIONS_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=locale, domain=DOMAIN)
        with po.with_suffix(".mo").open("wb") as fh:
            write_mo(fh, catalog, use_fuzzy=False)


if __name__ == "__main__":  # pragma: no cover
    {"extract": extract, "compile": compile_catalogues}[sys.argv[1]]()
