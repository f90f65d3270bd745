"""Pieces the families' terminal tables share: number formatting and the table frame."""

from __future__ import annotations

from typing import Any

__all__ = ["fmt", "frame", "ztext"]


def fmt(v: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; a dash for a missing value."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v + 0.0:.{digits}g}"  # + 0.0: no "-0" for a negative zero
    return str(v)


def ztext(z: Any) -> str:
    """A z-score to two decimals; a dash where there is none."""
    return f"{z:.2f}" if isinstance(z, float) else "—"


def frame(title: str, columns: tuple[str, ...], **kwargs: Any) -> Any:
    """A Rich table with a left-aligned title, its first column left and the rest right."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", **kwargs)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    return table


def curation_title(s: dict[str, Any]) -> str:
    """``; curation: ...`` for a summary that ran with curation, else nothing."""
    if "curation" not in s:
        return ""
    from ..curation import Curation

    return f"; curation: {Curation(**s['curation']).describe()}"


def cost_row(s: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The table row of the candidates per kept sample (label, value key, s.e. key), if any."""
    if "mean_final_candidates" not in s:
        return []
    return [("candidates per kept sample", "mean_final_candidates", "stderr_final_candidates")]
