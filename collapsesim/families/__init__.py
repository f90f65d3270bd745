"""The registry of families: every kind of model collapsesim trains on its own output.

Adding a family is one module that builds a :class:`Family` and one line here.
"""

from __future__ import annotations

from typing import Any

from ._family import Family
from .gaussian import FAMILY as GAUSSIAN
from .kde import FAMILY as KDE
from .lm import FAMILY as LM
from .mixture import FAMILY as MIXTURE
from .mvgaussian import FAMILY as MVGAUSSIAN
from .regression import FAMILY as REGRESSION
from .tokens import FAMILY as TOKENS
from .vae import FAMILY as VAE

__all__ = ["FAMILIES", "Family", "get", "of_config"]

FAMILIES: dict[str, Family] = {
    f.name: f for f in (GAUSSIAN, MIXTURE, MVGAUSSIAN, REGRESSION, KDE, TOKENS, VAE, LM)
}
"""Every family by name, in the order the command line lists them."""


def get(name: str) -> Family:
    """The family called ``name``; ``KeyError`` with the known names otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown family {name!r}; choose one of {', '.join(FAMILIES)}") from None


def of_config(cfg: Any) -> Family:
    """The family whose configuration ``cfg`` is; ``TypeError`` for anything else."""
    for family in FAMILIES.values():
        if isinstance(cfg, family.config):
            return family
    known = ", ".join(f.config.__name__ for f in FAMILIES.values())
    raise TypeError(f"no family runs a {type(cfg).__name__}; give one of {known}")
