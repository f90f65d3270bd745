"""Stored runs side by side: one metric over generations, its final values and their differences.

:func:`compare` loads run directories of any family (mixed regimes, curation operators,
families) and lines up one per-generation metric. Each run's final value is the mean over
all its chains with its Monte Carlo standard error; each run after the first is compared
with the first (the reference) by the difference of final means and its z-score:

* ``paired``: both runs drew their chains from the same seed (chain ``i`` of one shares its
  random stream with chain ``i`` of the other, so the two are correlated) and both stored
  every chain's final value. The difference is the mean of the per-chain differences,
  its standard error their standard deviation over sqrt(C), which counts the correlation
  the shared draws bring: smaller than the independent error wherever the two runs'
  chains move together.
* ``independent``: different seeds give independent chains; the error of the difference
  is sqrt(se_a^2 + se_b^2).
* same seed without every chain stored: the chains are correlated by an unknown amount
  and no honest error exists; the difference is given without one, and says why.

A run of one chain (the neural families) has no Monte Carlo error: its differences have
none either, with that reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CompareError", "Comparison", "Difference", "Entry", "compare", "default_metric"]


class CompareError(ValueError):
    """Runs that cannot be compared (no runs, or a metric one of them lacks)."""


@dataclass(frozen=True)
class Entry:
    """One run of a comparison.

    Attributes:
        directory: the run directory.
        family: its family's name.
        label: what sets it apart from the other runs (settings that differ), for legends.
        settings: its configuration, as stored.
        chains: how many chains its final statistics cover.
        generations: int64 ``(R,)``, the recorded generations.
        stats: the metric's statistics across chains over ``generations`` (mean, stderr,
            q05, q50, q95, ...: :data:`collapsesim.metrics.STATS`).
        final_mean, final_stderr, final_median: the metric at the last generation (the
            error is None for a single chain).
        start: the metric at generation 0 (the original), None where it is not recorded.
    """

    directory: Path
    family: str
    label: str
    settings: dict[str, Any]
    chains: int
    generations: np.ndarray
    stats: dict[str, np.ndarray]
    final_mean: float | None
    final_stderr: float | None
    final_median: float | None
    start: float | None
    final_values: np.ndarray | None = field(default=None, repr=False)
    seed: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The run's row of ``--json``: no arrays but the mean over generations."""
        return {
            "directory": str(self.directory),
            "family": self.family,
            "label": self.label,
            "chains": self.chains,
            "seed": self.seed,
            "generations": self.generations.tolist(),
            "mean": [_number(v) for v in self.stats["mean"]],
            "final_mean": self.final_mean,
            "final_stderr": self.final_stderr,
            "final_median": self.final_median,
            "start": self.start,
        }


@dataclass(frozen=True)
class Difference:
    """A run's final mean minus the reference's, with its standard error and z-score.

    ``method``: ``paired``, ``independent`` or None (no error); ``why``: the reason there
    is no error or z-score, None where there is one.
    """

    run: int
    reference: int
    value: float | None
    stderr: float | None
    z: float | None
    method: str | None
    why: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "reference": self.reference,
            "difference": self.value,
            "stderr": self.stderr,
            "z": self.z,
            "method": self.method,
            "why": self.why,
        }


@dataclass(frozen=True)
class Comparison:
    """Runs lined up on one metric: :attr:`entries` in the order given, :attr:`differences`
    of each later run from the first; :attr:`common` the settings all runs share."""

    metric: str
    entries: list[Entry]
    differences: list[Difference]
    common: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The comparison as ``--json`` prints it."""
        return {
            "metric": self.metric,
            "common": {k: _plain(v) for k, v in self.common.items()},
            "runs": [e.to_dict() for e in self.entries],
            "differences": [d.to_dict() for d in self.differences],
        }


def _number(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def default_metric(results: Sequence[Any]) -> str:
    """The metric a comparison shows when none is asked for: the first family's headline
    (:attr:`Family.headline`) if every run has it, else the first metric they all have.

    Raises:
        CompareError: the runs share no metric.
    """
    from .families import get

    common = _common_metrics(results)
    head = get(results[0].family).headline
    if head in common:
        return head
    if not common:
        raise CompareError("the runs share no metric: " + _metrics_text(results))
    return common[0]


def _common_metrics(results: Sequence[Any]) -> list[str]:
    first = list(results[0].metric_names)
    return [m for m in first if all(m in r.metric_names for r in results[1:])]


def _metrics_text(results: Sequence[Any]) -> str:
    return "; ".join(f"{r.family}: {', '.join(r.metric_names)}" for r in results)


def compare(directories: Sequence[str | Path], metric: str | None = None) -> Comparison:
    """Load the runs stored in ``directories`` and line them up on ``metric``.

    Args:
        directories: run directories (``--out`` of any family), the first the reference.
        metric: a per-generation metric every run records; by default the first run's
            family's headline metric (:func:`default_metric`).

    Raises:
        CompareError: no directories, or a metric not every run has.
        store.RunDirError: a directory holds no complete run.
    """
    from . import results as results_mod

    if not directories:
        raise CompareError("give at least one run directory")
    paths = [Path(d) for d in directories]
    loaded = [results_mod.load(p) for p in paths]
    if metric is None:
        metric = default_metric(loaded)
    missing = [str(p) for p, r in zip(paths, loaded, strict=True) if metric not in r.metric_names]
    if missing:
        have = ", ".join(_common_metrics(loaded)) or "none"
        raise CompareError(
            f"no metric {metric!r} in {', '.join(missing)}; the runs all have: {have}"
        )
    settings = [_settings(r) for r in loaded]
    common, labels = _labels(paths, loaded, settings)
    entries = [
        _entry(p, r, metric, s, label)
        for p, r, s, label in zip(paths, loaded, settings, labels, strict=True)
    ]
    diffs = [_difference(entries, i, 0) for i in range(1, len(entries))]
    return Comparison(metric=metric, entries=entries, differences=diffs, common=common)


def _settings(result: Any) -> dict[str, Any]:
    """The run's configuration, less the settings its others make moot (a fresh fraction
    under replace): those would name runs by values that played no part."""
    import dataclasses

    cfg = result.config
    out = {"family": result.family}
    values = cfg.to_dict()
    moot = set()
    if dataclasses.is_dataclass(cfg):
        for f in dataclasses.fields(cfg):
            when = f.metadata.get("when")
            if when is not None and getattr(cfg, when[0]) not in when[1]:
                moot.add(f.name)
    out.update({k: v for k, v in values.items() if k not in moot})
    return out


def _short(v: Any) -> str:
    if isinstance(v, list | tuple):
        return "custom" if len(v) > 4 else ",".join(_short(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


# Settings that name the same thing across families, shown without the "num_" prefix.
_SHORT_NAMES = {"num_samples": "n", "num_generations": "T", "num_chains": "chains"}
# Settings that never set runs apart in a legend: where they are stored, how they ran.
_QUIET = {"threads", "record_every", "keep_chains", "final_chains", "precision"}


def _part(key: str, value: Any) -> str:
    """One setting in a label: ``n 20``, ``seed 2``; a regime or family by its value alone."""
    if key in ("regime", "family"):
        return _short(value)
    return f"{_SHORT_NAMES.get(key, key)} {_short(value)}"


def _labels(
    paths: list[Path], results: list[Any], settings: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[str]]:
    """The settings every run shares, and each run's label: the settings that differ."""
    keys: list[str] = []
    for s in settings:
        keys += [k for k in s if k not in keys]
    common = {}
    differ = []
    for k in keys:
        values = [s.get(k, None) for s in settings]
        if all(v == values[0] for v in values):
            common[k] = values[0]
        elif k not in _QUIET:
            differ.append(k)
    labels = []
    for p, s in zip(paths, settings, strict=True):
        parts = [_part(k, s[k]) for k in differ if k in s]
        labels.append(", ".join(parts) if parts else p.name)
    # Runs whose shown settings agree (they differ only in how they stored or ran) are
    # told apart by their directories.
    shown = list(labels)
    for i, label in enumerate(shown):
        if shown.count(label) > 1 and label != paths[i].name:
            labels[i] = f"{paths[i].name}: {label}"
    return common, labels


def _entry(path: Path, result: Any, metric: str, settings: dict[str, Any], label: str) -> Entry:
    stats = {k: np.asarray(v, np.float64) for k, v in result.aggregates[metric].items()}
    gens = np.asarray(result.generations, np.int64)
    chains = int(result.summary.get("chains", result.trajectories[metric].shape[0]))
    final = np.asarray(result.final[metric], np.float64) if metric in result.final else None
    err = _number(stats["stderr"][-1]) if chains > 1 else None
    return Entry(
        directory=path,
        family=result.family,
        label=label,
        settings=settings,
        chains=chains,
        generations=gens,
        stats=stats,
        final_mean=_number(stats["mean"][-1]),
        final_stderr=err,
        final_median=_number(stats["q50"][-1]),
        start=_number(stats["mean"][0]) if len(gens) and gens[0] == 0 else None,
        final_values=final,
        seed=settings.get("seed"),
    )


def _difference(entries: list[Entry], i: int, ref: int) -> Difference:
    a, b = entries[i], entries[ref]
    if a.final_mean is None or b.final_mean is None:
        return Difference(i, ref, None, None, None, None, "a final mean is undefined (NaN)")
    value = a.final_mean - b.final_mean
    if a.chains < 2 or b.chains < 2:
        return Difference(i, ref, value, None, None, None,
                          "a run of one chain has no Monte Carlo error")  # fmt: skip
    same_draws = a.seed == b.seed and a.seed is not None
    if same_draws:
        x, y = a.final_values, b.final_values
        if (
            x is None
            or y is None
            or len(x) != a.chains
            or len(y) != b.chains
            or a.chains != b.chains
        ):
            return Difference(i, ref, value, None, None, None,
                              "same seed: the chains share draws, and not every chain's final "
                              "value is stored (final_chains), so the error of the difference "
                              "is unknown")  # fmt: skip
        d = x - y
        if not np.all(np.isfinite(d)):
            return Difference(i, ref, value, None, None, "paired",
                              "a chain's final value is not finite")  # fmt: skip
        se = float(d.std(ddof=1) / math.sqrt(len(d)))
        value = float(d.mean())
        method = "paired"
    else:
        if a.final_stderr is None or b.final_stderr is None:
            return Difference(i, ref, value, None, None, None,
                              "a standard error is undefined")  # fmt: skip
        se = math.hypot(a.final_stderr, b.final_stderr)
        method = "independent"
    if not se > 1e-12 * max(abs(a.final_mean), abs(b.final_mean), 1e-300):
        return Difference(i, ref, value, se, None, method,
                          "the difference has no spread: every chain agrees")  # fmt: skip
    return Difference(i, ref, value, se, value / se, method, None)
