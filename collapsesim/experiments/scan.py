"""Scans: how fast collapse happens across a grid of one or two parameters of a family.

Per grid point the family's experiment runs in full and two numbers are measured:

* the **collapse rate** per generation, with a 95% confidence interval:
  Gaussian, ``-d E[log sigma]/dt``, estimated as ``(log sigma_0 - mean log sigma_T) / T``
  (exact in expectation, since log sigma is a random walk under ``replace``), its
  standard error from the spread across chains; tokens, ``-d log E[H]/dt`` with
  ``H = 1 - sum p^2`` the heterozygosity, estimated as ``-log(mean H_T / H_0) / T``, its
  standard error by the delta method;
* the **level** the chains reach after T generations, the stationary level once real
  data stop the collapse: the mean std (Gaussian) or mean heterozygosity (tokens) at
  the last generation, with its standard error.

Across the sample sizes n of a scan, a weighted least-squares line through
``log rate`` against ``log n`` gives the power-law exponent and its 95% interval
(theory for the Gaussian MLE chain: rate about 1/n, exponent -1; the exact rate
``0.5 (digamma((n-1)/2) + log(2/(n-ddof)))`` is reported beside each point; for tokens
under ``replace`` the exact rate is ``-log(1 - 1/n)``).

A scan directory holds ``point_NNN.parquet`` (the point's aggregates, one row per
recorded generation and metric, with the point's parameters), ``point_NNN.json`` (its
measures, written last: a point with it is finished and ``--resume`` skips it),
``summary.parquet`` (one row per point) and ``scan.json`` (the grid and the fits).
"""

from __future__ import annotations

import itertools
import json
import math
import typing
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .. import store
from ..config import ConfigError
from ..results import Result
from . import _common as common
from . import _driver as driver

__all__ = ["ScanError", "ScanProgress", "ScanResult", "iterate", "parse_grid", "run"]

_Z95 = 1.959963984540054


class ScanError(ValueError):
    """A grid that cannot run; the message is one line."""


class ScanProgress(NamedTuple):
    """Where a scan stands: the point in progress and that point's own progress."""

    point: int
    points: int
    done: int
    total: int


@dataclass
class ScanResult:
    """A finished scan."""

    family: str
    grid: list[tuple[str, list[float]]]
    rows: list[dict[str, Any]]  # one per point: parameters and measures
    fits: list[dict[str, Any]]  # power laws of rate against n (one per other-parameter value)
    summary: dict[str, Any] = field(default_factory=dict)


def parse_grid(family: str, specs: dict[str, str]) -> list[tuple[str, list[float]]]:
    """Parse ``{"samples": "10,20,40", ...}`` into ``[(name, values), ...]`` (one or two).

    Raises:
        ScanError: an unknown family or parameter, an empty or malformed list, a
            negative or repeated value, or other than one or two parameters.
    """
    known = _family(family).scan
    grid = []
    for name, text in specs.items():
        if name not in known:
            raise ScanError(f"cannot scan {name!r} for {family}; choose from {', '.join(known)}")
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise ScanError(f"--{name} needs a comma-separated list of values, got {text!r}")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ScanError(f"--{name}: {text!r} is not a list of numbers") from None
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ScanError(f"--{name}: values must be finite and non-negative, got {text!r}")
        if _is_int(family, known[name]) and any(v != int(v) for v in values):
            raise ScanError(f"--{name}: values must be integers, got {text!r}")
        if len(set(values)) != len(values):
            raise ScanError(f"--{name}: values repeat in {text!r}")
        grid.append((name, values))
    if not 1 <= len(grid) <= 2:
        raise ScanError(f"a scan needs one or two parameters with lists, got {len(grid)}")
    return grid


def _family(name: str) -> Any:
    """The scannable family called ``name``; ScanError otherwise."""
    from ..families import FAMILIES

    scannable = [f.name for f in FAMILIES.values() if f.measure is not None]
    if name not in scannable:
        raise ScanError(f"unknown family {name!r}; choose {', '.join(scannable)}")
    return FAMILIES[name]


def _is_int(family: str, field_: str) -> bool:
    return bool(typing.get_type_hints(_family(family).config)[field_] is int)


def _configs(
    family: str, base: dict[str, Any], grid: list[tuple[str, list[float]]]
) -> list[tuple[dict[str, float], Any]]:
    """Every grid point's parameters and configuration (validated up front)."""
    fam = _family(family)
    names = [name for name, _ in grid]
    out = []
    for combo in itertools.product(*(values for _, values in grid)):
        params = dict(zip(names, combo, strict=True))
        fields = {
            fam.scan[k]: int(v) if _is_int(family, fam.scan[k]) else v for k, v in params.items()
        }
        try:
            cfg = fam.config(**{**base, **fields})
        except ConfigError as err:
            point = ", ".join(f"{k}={v:g}" for k, v in params.items())
            raise ScanError(f"grid point {point}: {err}") from None
        out.append((params, cfg))
    return out


def measure(family: str, cfg: Any, result: Any) -> dict[str, Any]:
    """The point's collapse rate with its 95% interval, level and exact rate (the family's)."""
    m = _family(family).measure(cfg, result)
    rate, se = m["rate"], m["rate_se"]
    return {
        "rate": rate,
        "rate_se": se,
        "rate_lo": rate - _Z95 * se,
        "rate_hi": rate + _Z95 * se,
        "level": m["level"],
        "level_se": m["level_se"],
        "theory_level": m.get("theory_level"),
        "why_theory_level": None if m.get("theory_level") is not None else (
            m.get("why_theory_level") or f"no closed form for the {family} chain's level"),
        "start_level": m.get("start_level"),
        "theory_rate": m["theory_rate"],
        # Why a value is missing, or how the rate was taken where that is not plain.
        "why_rate": m.get("why_rate") or (None if math.isfinite(rate) else
                                          "the rate is undefined at these settings"),
        "rate_note": m.get("rate_note"),
        "why_theory_rate": None if m["theory_rate"] is not None else (
            m.get("why_theory_rate") or f"no closed form for the {family} chain's rate"),
        "seconds": result.timings.get("seconds"),
    }  # fmt: skip


def fit_power_law(n: np.ndarray, rate: np.ndarray, se: np.ndarray) -> dict[str, Any]:
    """Weighted least squares of log rate on log n: exponent, prefactor, 95% intervals.

    The weights are the inverse variances of log rate (``(se / rate)^2``, delta method).
    The exponent's standard error is the model-based one, scaled up by the square root
    of the reduced chi-square when that exceeds 1 (scatter beyond the standard errors).
    """
    ok = np.isfinite(rate) & (rate > 0) & np.isfinite(se) & (se > 0)
    if ok.sum() < 2 or len(np.unique(n[ok])) < 2:
        return {"points": int(ok.sum()), "exponent": None}
    x = np.log(n[ok])
    y = np.log(rate[ok])
    w = (rate[ok] / se[ok]) ** 2
    design = np.stack([np.ones_like(x), x], axis=1)
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    beta = cov @ design.T @ (w * y)
    resid = y - design @ beta
    dof = len(x) - 2
    chi2 = float(np.sum(w * resid**2))
    scale = max(1.0, chi2 / dof) if dof > 0 else 1.0
    se_b = math.sqrt(cov[1, 1] * scale)
    return {
        "points": int(ok.sum()),
        "exponent": float(beta[1]),
        "exponent_se": se_b,
        "exponent_lo": float(beta[1] - _Z95 * se_b),
        "exponent_hi": float(beta[1] + _Z95 * se_b),
        "prefactor": float(math.exp(beta[0])),
        "reduced_chi2": chi2 / dof if dof > 0 else None,
    }


def _fits(grid: list[tuple[str, list[float]]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = [name for name, _ in grid]
    if "samples" not in names:
        return []
    other = [name for name in names if name != "samples"]
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[o] for o in other), []).append(row)
    fits = []
    for key, members in groups.items():
        n = np.array([m["samples"] for m in members], float)
        fit = fit_power_law(
            n,
            np.array([m["rate"] for m in members], float),
            np.array([m["rate_se"] for m in members], float),
        )
        exact = np.array(
            [np.nan if m["theory_rate"] is None else m["theory_rate"] for m in members]
        )
        if np.all(np.isfinite(exact) & (exact > 0)) and len(np.unique(n)) >= 2:
            slope = np.polyfit(np.log(n), np.log(exact), 1)[0]
            fit["theory_exponent"] = float(slope)
        else:
            fit["theory_exponent"] = None
        fits.append({**dict(zip(other, key, strict=True)), **fit})
    return fits


def iterate(
    family: str,
    base: dict[str, Any],
    grid: list[tuple[str, list[float]]],
    *,
    out: Path | None = None,
    resume: bool = False,
    threads: int | None = None,
    cluster: Any = None,
) -> Generator[ScanProgress, None, ScanResult]:
    """Run every grid point (skipping finished ones with ``resume``); yield progress.

    ``cluster``: run each point's chains on a Dask cluster (an address, started or joined
    once for the whole scan, or a connected :class:`..cluster.Cluster`); the points run
    one after another.

    Raises:
        ScanError: a grid point whose configuration is invalid (checked before any run).
        store.RunDirError: ``out`` cannot take this scan.
    """
    points = _configs(family, base, grid)
    ident = {"family": family, "base": base, "grid": [[n, v] for n, v in grid]}
    with driver.locked(out), driver.connected(cluster, threads) as handle:
        return (yield from _points(family, grid, points, ident, out, resume, threads, handle))


def run(
    family: str,
    base: dict[str, Any],
    grid: list[tuple[str, list[float]]] | dict[str, str],
    **options: Any,
) -> ScanResult:
    """Run a scan to the end; return its result (:func:`iterate`'s, without progress).

    ``grid``: ``[(name, values), ...]`` as :func:`parse_grid` returns it, or the command
    line's form, ``{"samples": "20,40,80"}``.
    """
    if isinstance(grid, dict):
        grid = parse_grid(family, grid)
    steps = iterate(family, base, grid, **options)
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            result: ScanResult = stop.value
            return result


def _points(
    family: str,
    grid: list[tuple[str, list[float]]],
    points: list[tuple[dict[str, float], Any]],
    ident: dict[str, Any],
    out: Path | None,
    resume: bool,
    threads: int | None,
    cluster: Any = None,
) -> Generator[ScanProgress, None, ScanResult]:
    """Run the grid points into ``out`` (which the caller holds locked)."""
    run_iter = _family(family).iterate
    if out is not None:
        out = Path(out)
        store.prepare_run_dir(out, ident, resume=resume)
        store.write_json(out / store.RUN_FILE, {"config": ident, "status": "running"})
    rows = []
    for i, (params, cfg) in enumerate(points):
        done_file = out / f"point_{i:03d}.json" if out is not None else None
        if done_file is not None and resume and done_file.exists():
            try:
                rows.append(store.read_json(done_file))
            except store.RunDirError as err:
                raise store.RunDirError(f"{err}; delete it and rerun with --resume to run that "
                                        "grid point again") from None  # fmt: skip
            continue
        steps = run_iter(cfg, threads=threads, **({} if cluster is None else {"cluster": cluster}))
        while True:
            try:
                p = next(steps)
            except StopIteration as stop:
                result = stop.value
                break
            yield ScanProgress(i, len(points), p.done, p.total)
        row = {**params, **measure(family, cfg, result)}
        row = {k: common.finite_or_none(v) for k, v in row.items()}
        if out is not None and done_file is not None:
            _save_point(out / f"point_{i:03d}.parquet", params, result)
            store.write_json(done_file, row)
        rows.append(row)
    fits = _fits(grid, rows)
    res = ScanResult(family=family, grid=grid, rows=rows, fits=fits)
    res.summary = {
        "family": family,
        "base": ident["base"],
        "grid": [[n, v] for n, v in grid],
        "points": rows,
        "fits": fits,
    }
    if out is not None:
        cols = {}
        for k in rows[0]:
            values = [r.get(k) for r in rows]
            if any(isinstance(v, str) for v in values):  # reasons and notes
                cols[k] = np.array(["" if v is None else v for v in values], object)
            else:
                cols[k] = np.array([np.nan if v is None else v for v in values], float)
        store.write_parquet(out / "summary.parquet", cols)
        store.write_json(out / "scan.json", res.summary)
        store.write_json(out / store.RUN_FILE, {"config": ident, "status": "complete"})
    return res


def _save_point(path: Path, params: dict[str, float], result: Result) -> None:
    """Write a point's aggregates, its parameters as leading constant columns."""
    agg = result.columns("aggregates")
    rows = len(agg["generation"])
    store.write_parquet(path, {**{k: np.full(rows, v, float) for k, v in params.items()}, **agg})


def to_json(res: ScanResult) -> str:
    """The scan's summary as one JSON line."""
    return json.dumps(res.summary, allow_nan=False)
