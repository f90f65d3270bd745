"""One result type for every family: :func:`run`, :func:`load`, ``to_pandas()``, ``to_xarray()``.

Every runner returns a :class:`Result`: the chain families (gaussian, mixture, tokens)
and the neural ones (vae, lm) alike. Its tables are built by one function per table,
:meth:`Result.columns`, which the runners also use to write the run directory's Parquet
files; so ``result.to_pandas("final")`` and ``pandas.read_parquet(out / "final.parquet")``
are the same frame, whether the result was just run or loaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, overload

import numpy as np

from . import store

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from .experiments.gaussian import GaussianResult
    from .experiments.lm import LmConfig, LmResult
    from .experiments.mixture import MixtureResult
    from .experiments.tokens import TokenResult
    from .experiments.vae import VaeConfig, VaeResult
    from .families.gaussian import GaussianConfig
    from .families.mixture import MixtureConfig
    from .families.tokens import TokenConfig

__all__ = [
    "NeuralResult",
    "Result",
    "UnknownTableError",
    "aggregate_columns",
    "final_columns",
    "load",
    "run",
    "trajectory_columns",
]

Columns = dict[str, np.ndarray]


class UnknownTableError(ValueError):
    """Raised for a table name a result does not have; the message names those it has."""


def aggregate_columns(
    generations: np.ndarray, names: tuple[str, ...], aggregates: dict[str, dict[str, np.ndarray]]
) -> Columns:
    """Columns of ``aggregates.parquet``: ``generation``, ``metric``, one column per stat.

    One row per metric (of ``names``) and recorded generation (int64 ``(R,)``);
    ``aggregates`` maps metric -> stat -> float64 ``(R,)`` over :data:`metrics.STATS`.
    """
    from .metrics import STATS

    r = len(generations)
    cols: Columns = {
        "generation": np.tile(generations, len(names)),
        "metric": np.repeat(np.array(names, dtype=object), r),
    }
    for stat in STATS:
        cols[stat] = np.concatenate([aggregates[m][stat] for m in names])
    return cols


def trajectory_columns(
    generations: np.ndarray, names: tuple[str, ...], trajectories: dict[str, np.ndarray]
) -> Columns:
    """Columns of ``trajectories.parquet``: ``chain``, ``generation``, one column per metric.

    ``trajectories`` maps each of ``names`` to float64 ``(K, R)``; rows go chain by chain.
    """
    k = trajectories[names[0]].shape[0]
    cols: Columns = {
        "chain": np.repeat(np.arange(k, dtype=np.int64), len(generations)),
        "generation": np.tile(generations, k),
    }
    cols.update({m: trajectories[m].reshape(-1) for m in names})
    return cols


def final_columns(final: dict[str, np.ndarray], generation: int) -> Columns:
    """Columns of ``final.parquet``: ``chain``, ``generation``, then each ``(C,)`` of ``final``."""
    c = len(next(iter(final.values())))
    cols: Columns = {
        "chain": np.arange(c, dtype=np.int64),
        "generation": np.full(c, generation, np.int64),
    }
    cols.update(final)
    return cols


class Result:
    """What a run produced, whatever its family.

    Attributes shared by every family (``R`` recorded generations, ``K`` kept chains,
    ``C`` chains):

    * ``config``: the run's frozen configuration;
    * ``generations``: int64 ``(R,)``, the recorded generations;
    * ``aggregates``: metric -> stat -> float64 ``(R,)``, statistics across all chains;
    * ``final``: name -> float64 ``(F,)``, the last generation (the metrics and the
      family's per-chain totals) of every chain, or of the first F = ``final_chains``
      when the run has more (the summary and aggregates always cover every chain);
    * ``trajectories``: metric -> float64 ``(K, R)``, whole trajectories of kept chains;
    * ``summary``: the run's summary (what ``--json`` prints); ``timings``: seconds.

    Each family's result is a dataclass subclass with its own fields beside these (the
    base is not a dataclass so that each keeps its field order and construction).
    """

    family: ClassVar[str]
    config: Any
    generations: np.ndarray
    aggregates: dict[str, dict[str, np.ndarray]]
    final: dict[str, np.ndarray]
    trajectories: dict[str, np.ndarray]
    summary: dict[str, Any]
    timings: dict[str, float]

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The per-generation metrics, in storage order."""
        return tuple(self.aggregates)

    def _stored(self) -> dict[str, Callable[[], Columns]]:
        """Builders of the tables the runner stores as ``<name>.parquet``, in writing order."""
        names, gens = self.metric_names, self.generations
        return {
            "aggregates": lambda: aggregate_columns(gens, names, self.aggregates),
            "trajectories": lambda: trajectory_columns(gens, names, self.trajectories),
            # The last recorded generation is always the run's last.
            "final": lambda: final_columns(self.final, int(gens[-1])),
        }

    def _tables(self) -> dict[str, Callable[[], Columns]]:
        return self._stored()  # and any derived tables, in a subclass

    @property
    def tables(self) -> tuple[str, ...]:
        """Names of the tables :meth:`to_pandas` builds."""
        return tuple(self._tables())

    @property
    def stored_tables(self) -> tuple[str, ...]:
        """Names of the tables a run directory holds as ``<name>.parquet``."""
        return tuple(self._stored())

    def columns(self, table: str) -> Columns:
        """Return one table's columns, as its Parquet file stores them.

        Raises:
            UnknownTableError: this result has no such table.
        """
        builders = self._tables()
        if table not in builders:
            raise UnknownTableError(
                f"no table {table!r} in a {self.family} result; it has {', '.join(builders)}"
            )
        return builders[table]()

    def to_pandas(self, table: str = "trajectories") -> pd.DataFrame:
        """Return one table as a pandas DataFrame, in long format.

        The columns, their order and dtypes are those of ``<table>.parquet`` in the run
        directory: ``aggregates`` (generation, metric, mean, stderr, std, min, q05..q95,
        max), ``trajectories`` (chain, generation, one column per metric), ``final``
        (chain, generation, one column per name of :attr:`final`), and the family's own
        (:attr:`tables` lists them all).

        Raises:
            UnknownTableError: this result has no such table.
        """
        import pandas as pd

        return pd.DataFrame(self.columns(table))

    def to_xarray(self) -> xr.Dataset:
        """Return the chains' outputs as an ``xarray.Dataset`` labelled by chain and generation.

        Layout:

        * dims ``chain`` (K kept chains), ``generation`` (R recorded), ``stat``
          (:data:`metrics.STATS`) and ``final_chain`` (the F chains of ``final``), each a coordinate;
        * ``<metric>`` ``(chain, generation)``: the kept chains' trajectories;
        * ``<metric>_aggregate`` ``(generation, stat)``: statistics across all chains;
        * ``<name>_final`` ``(final_chain,)``: the last generation of ``final``'s chains;
        * ``attrs``: ``family``, the config's fields as ``config_<field>`` (JSON values),
          and the summary's scalars (numbers, strings, booleans) under their own names.
        """
        import xarray as xr

        from .metrics import STATS

        names = self.metric_names
        k = self.trajectories[names[0]].shape[0]
        c = len(next(iter(self.final.values())))
        data: dict[str, tuple[tuple[str, ...], np.ndarray]] = {
            m: (("chain", "generation"), self.trajectories[m]) for m in names
        }
        for m in names:
            stats = np.stack([self.aggregates[m][s] for s in STATS], axis=1)
            data[f"{m}_aggregate"] = (("generation", "stat"), stats)
        data.update({f"{n}_final": (("final_chain",), v) for n, v in self.final.items()})
        coords = {
            "chain": np.arange(k, dtype=np.int64),
            "generation": self.generations,
            "stat": list(STATS),
            "final_chain": np.arange(c, dtype=np.int64),
        }
        config = json.loads(json.dumps(self.config.to_dict(), default=store._json_default))
        attrs: dict[str, Any] = {"family": self.family}
        attrs.update({f"config_{key}": v for key, v in config.items()})
        attrs.update(
            {key: v for key, v in self.summary.items() if isinstance(v, int | float | str | bool)}
        )
        return xr.Dataset(data, coords=coords, attrs=attrs)


class NeuralResult(Result):
    """A result of one model per generation (the neural families): one chain.

    Subclasses are dataclasses with a ``metrics`` field, metric -> float64 ``(T,)`` over
    generations ``0..T-1``, from which the shared attributes are derived: ``generations``
    is ``arange(T)``, ``trajectories[m]`` is ``metrics[m]`` as ``(1, T)``, ``final[m]`` its
    last value as ``(1,)``, ``aggregates[m]`` the statistics of one chain (mean, min, max
    and quantiles equal to the value; std and stderr NaN). The run directory stores
    ``metrics.parquet``; the ``aggregates``, ``trajectories`` and ``final`` tables of
    :meth:`to_pandas` are derived, and no file holds them.
    """

    metrics: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        from . import metrics as stats

        t = len(next(iter(self.metrics.values())))
        self.generations = np.arange(t, dtype=np.int64)
        self.trajectories = {m: v.reshape(1, t) for m, v in self.metrics.items()}
        self.final = {m: v[-1:] for m, v in self.metrics.items()}
        self.aggregates = {m: stats.aggregate(v) for m, v in self.trajectories.items()}

    def _stored(self) -> dict[str, Callable[[], Columns]]:
        return {"metrics": lambda: {"generation": self.generations, **self.metrics}}

    def _tables(self) -> dict[str, Callable[[], Columns]]:
        return {**self._stored(), **Result._stored(self)}


@overload
def run(config: GaussianConfig, **options: Any) -> GaussianResult: ...
@overload
def run(config: MixtureConfig, **options: Any) -> MixtureResult: ...
@overload
def run(config: TokenConfig, **options: Any) -> TokenResult: ...
@overload
def run(config: VaeConfig, **options: Any) -> VaeResult: ...
@overload
def run(config: LmConfig, **options: Any) -> LmResult: ...
def run(config: Any, **options: Any) -> Result:
    """Run an experiment of any family to the end and return its result.

    Args:
        config: a family's configuration (``GaussianConfig``, ``MixtureConfig``,
            ``TokenConfig``, ``VaeConfig`` or ``LmConfig``).
        **options: the family runner's keyword arguments: ``out`` (a run directory to
            store the run in) and ``resume`` for every family; ``threads``,
            ``batch_chains``, ``block_generations`` and ``checkpoint_seconds`` for the
            chain families, and ``cluster`` (a Dask address such as ``"local:2"``, or a
            connected :class:`collapsesim.cluster.Cluster`) for their Numba kernels.

    Returns:
        The family's :class:`Result`.

    Raises:
        TypeError: ``config`` is no family's configuration, or an unknown option.
        ConfigError: a configuration or option the run cannot take.
        store.RunDirError: ``out`` cannot take this run.
    """
    from .families import of_config

    result: Result = of_config(config).run(config, **options)
    return result


def load(directory: str | os.PathLike[str]) -> Result:
    """Load the complete run stored in ``directory``, whatever its family.

    Raises:
        store.RunDirError: the directory holds no complete run of a known family.
    """
    from .experiments import _common

    out = Path(directory)
    meta = _common.read_meta(out)
    if "family" not in meta and (out / "scan.json").is_file():
        raise store.RunDirError(f"{out} holds a scan, not a run; read its scan.json")
    from .families import FAMILIES

    family = meta.get("family", "gaussian")  # early Gaussian runs stored no family
    if family not in FAMILIES:
        raise store.RunDirError(f"{out} holds a run of an unknown family {family!r}")
    result: Result = FAMILIES[family].load(out)
    return result
