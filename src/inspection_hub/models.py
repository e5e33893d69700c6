"""Imports every mapped table so that metadata is complete (Alembic, tests)."""

from __future__ import annotations

import importlib
import pkgutil

import inspection_hub
from inspection_hub.db.base import Base

for _mod in pkgutil.iter_modules(inspection_hub.__path__):
    if _mod.ispkg:
        try:
            importlib.import_module(f"inspection_hub.{_mod.name}.models")
        except ModuleNotFoundError as exc:  # a domain without tables
            if exc.name != f"inspection_hub.{_mod.name}.models":
                raise

metadata = Base.metadata
