"""Names a module re-exports from the family modules, imported on first use."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["family_attribute"]


def family_attribute(module: str, names: dict[str, str], name: str) -> Any:
    """``name`` from ``collapsesim.families.<names[name]>``, for a module's ``__getattr__``.

    Raises:
        AttributeError: ``name`` is not one of ``names`` (as a missing attribute would).
    """
    if name not in names:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"collapsesim.families.{names[name]}"), name)
