"""Pieces the families' terminal tables share: number formatting and the table frame."""

from __future__ import annotations

from typing import Any

__all__ = [
    "EXACT_SE",
    "NO_SE",
    "NO_Z",
    "Notes",
    "cost_row",
    "curation_title",
    "fmt",
    "frame",
    "regime_text",
    "ztext",
]


def fmt(v: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; a dash for a missing value."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v + 0.0:.{digits}g}"  # + 0.0: no "-0" for a negative zero
    return str(v)


def ztext(z: Any) -> str:
    """A z-score to two decimals; a dash where there is none."""
    if not isinstance(z, float):
        return "—"
    text = f"{z:.2f}"
    return "0.00" if text == "-0.00" else text  # no "-0" from rounding


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


def regime_label(regime: Any, num_real: Any, num_samples: Any) -> str:
    """A regime with its share of real data where it has one: ``fresh (200 of 1000 real)``;
    ``replace`` alone."""
    if num_real and num_samples:
        return f"{regime} ({num_real} of {num_samples} real)"
    return str(regime)


def regime_text(s: dict[str, Any]) -> str:
    """The regime of a summary, with its share of real data (:func:`regime_label`)."""
    return regime_label(s.get("regime", "?"), s.get("num_real"), s.get("samples"))


EXACT_SE = (
    "* the exact standard error (theory's), which z divides by; elsewhere z divides by the "
    "Monte Carlo one shown"
)
NO_Z = "no z-score: the standard error is 0 or undefined (every chain holds the same value)"
NO_SE = "no standard error: one chain, or values past the range of doubles"
UNDERSAMPLED = (
    "the exact standard error exceeds the exact mean: the mean is carried by chains too rare "
    "for this many to see, so a small z says little (read the median and quantiles)"
)

_MARKS = "¹²³⁴⁵⁶⁷⁸⁹"


class Notes:
    """The reasons behind a table's dashes: each distinct reason gets a mark, and the
    marks with their reasons go under the table (its caption)."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.lines: list[str] = []

    def mark(self, why: str | None) -> str:
        """The mark of reason ``why`` (a new one for a reason not seen yet); "" for None."""
        if not why:
            return ""
        if why not in self.reasons:
            self.reasons.append(why)
        k = self.reasons.index(why)
        return _MARKS[k] if k < len(_MARKS) else f"[{k + 1}]"

    def cell(self, value: Any, why: str | None, digits: int = 4) -> str:
        """``value`` formatted; a dash with the mark of ``why`` where it is missing."""
        if value is None:
            return "—" + self.mark(why)
        return fmt(value, digits)

    def note(self, line: str) -> None:
        """A line for under the table that no dash refers to (a legend of a marker)."""
        if line not in self.lines:
            self.lines.append(line)

    def attach(self, table: Any) -> Any:
        """Put the notes under ``table``; return it."""
        marks = [f"{self.mark(why)} {why}" for why in self.reasons]
        text = "\n".join([*self.lines, *marks])
        if text:
            table.caption = text
            table.caption_justify = "left"
        return table
