"""One results object: collapsesim.run and load for every family, to_pandas and to_xarray."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import collapsesim
from collapsesim import metrics, store
from collapsesim.config import GaussianConfig, MixtureConfig, TokenConfig
from collapsesim.experiments import lm, vae
from collapsesim.experiments.gaussian import GaussianResult
from collapsesim.experiments.mixture import MixtureResult
from collapsesim.experiments.tokens import TokenResult

CHAIN_CONFIGS = {
    "gaussian": GaussianConfig(num_chains=7, num_generations=6, num_samples=10, keep_chains=3,
                               record_every=2, seed=3),
    "mixture": MixtureConfig(num_chains=3, num_generations=3, num_samples=40, heldout=30, seed=1),
    "tokens": TokenConfig(num_chains=5, num_generations=8, num_samples=20, categories=12,
                          keep_chains=2, seed=2),
}  # fmt: skip
# The smallest settings tests/test_vae.py and tests/test_lm.py run, with one epoch each.
VAE = vae.VaeConfig(data="digits", num_generations=2, latent=4, widths=(4, 8), epochs=1,
                    batch_size=64, classifier_epochs=1, train_size=300)  # fmt: skip
LM = lm.LmConfig(corpus="zipf", num_generations=2, train_size=120, block=8, width=16, heads=2,
                 layers=1, epochs=1, batch_size=16)  # fmt: skip
RESULT_TYPES = {"gaussian": GaussianResult, "mixture": MixtureResult, "tokens": TokenResult,
                "vae": vae.VaeResult, "lm": lm.LmResult}  # fmt: skip
EXTRA_TABLES = {"gaussian": (), "mixture": ("components",), "tokens": ("snapshots",),
                "vae": ("classes",), "lm": ("perplexities",)}  # fmt: skip


@pytest.fixture(scope="module", params=[*CHAIN_CONFIGS, "vae", "lm"])
def stored(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[collapsesim.Result, Path]:
    """A small run of one family through collapsesim.run, stored in a run directory."""
    family = request.param
    config = {"vae": VAE, "lm": LM}.get(family) or CHAIN_CONFIGS[family]
    out = tmp_path_factory.mktemp(family) / "run"
    return collapsesim.run(config, out=out), out


def _read(path: Path) -> pd.DataFrame:
    """A Parquet file as DuckDB hands it to pandas (no pyarrow needed)."""
    con = duckdb.connect()
    try:
        return con.execute("SELECT * FROM read_parquet(?)", [str(path)]).df()
    finally:
        con.close()


def _is_neural(result: collapsesim.Result) -> bool:
    return result.family in ("vae", "lm")


def test_run_dispatches_on_the_config_and_stores_every_table(
    stored: tuple[collapsesim.Result, Path],
) -> None:
    result, out = stored
    assert isinstance(result, RESULT_TYPES[result.family])
    assert isinstance(result, collapsesim.Result)
    assert store.read_json(out / store.RUN_FILE)["family"] == result.family
    base = ("metrics",) if _is_neural(result) else ("aggregates", "trajectories", "final")
    assert result.stored_tables == (*base, *EXTRA_TABLES[result.family])
    assert set(result.tables) >= {"aggregates", "trajectories", "final"}
    for name in result.stored_tables:
        assert (out / f"{name}.parquet").is_file(), name


def test_to_pandas_equals_the_parquet_files_of_the_same_run(
    stored: tuple[collapsesim.Result, Path],
) -> None:
    result, out = stored
    loaded = collapsesim.load(out)
    for name in result.stored_tables:
        on_disk = _read(out / f"{name}.parquet")
        assert len(on_disk) > 0
        pd.testing.assert_frame_equal(result.to_pandas(name), on_disk, check_exact=True)
        pd.testing.assert_frame_equal(loaded.to_pandas(name), on_disk, check_exact=True)
    assert list(result.to_pandas().columns) == ["chain", "generation", *result.metric_names]
    agg = result.to_pandas("aggregates")
    assert list(agg.columns) == ["generation", "metric", *metrics.STATS]
    assert agg["generation"].dtype == np.int64
    assert (
        agg["metric"].tolist() == np.repeat(result.metric_names, len(result.generations)).tolist()
    )


def test_load_round_trips_the_arrays(stored: tuple[collapsesim.Result, Path]) -> None:
    result, out = stored
    loaded = collapsesim.load(out)
    assert type(loaded) is type(result)
    assert loaded.config == result.config
    assert loaded.summary == result.summary
    np.testing.assert_array_equal(loaded.generations, result.generations)
    assert list(loaded.trajectories) == list(result.trajectories)
    assert list(loaded.final) == list(result.final)
    for m in result.metric_names:
        np.testing.assert_array_equal(loaded.trajectories[m], result.trajectories[m], err_msg=m)
        for stat in metrics.STATS:
            np.testing.assert_array_equal(
                loaded.aggregates[m][stat], result.aggregates[m][stat], err_msg=f"{m} {stat}"
            )
    for name, values in result.final.items():
        np.testing.assert_array_equal(loaded.final[name], values, err_msg=name)
    if isinstance(result, MixtureResult):
        assert isinstance(loaded, MixtureResult)
        for key, values in result.components.items():
            np.testing.assert_array_equal(loaded.components[key], values, err_msg=key)
    if isinstance(result, TokenResult):
        assert isinstance(loaded, TokenResult)
        np.testing.assert_array_equal(loaded.snapshots, result.snapshots)


def test_stored_nans_load_as_nans(stored: tuple[collapsesim.Result, Path]) -> None:
    result, out = stored
    nan_in = {m for m, v in result.trajectories.items() if np.isnan(v).any()}
    if result.family == "mixture":  # generation 0 is the original, not a fit
        assert "train_loglik" in nan_in
    loaded = collapsesim.load(out)
    for m in nan_in:
        np.testing.assert_array_equal(
            np.isnan(loaded.trajectories[m]), np.isnan(result.trajectories[m])
        )


def test_to_xarray_agrees_with_the_arrays(stored: tuple[collapsesim.Result, Path]) -> None:
    result, _ = stored
    ds = result.to_xarray()
    k, r = result.trajectories[result.metric_names[0]].shape
    c = len(next(iter(result.final.values())))
    assert dict(ds.sizes) == {"chain": k, "generation": r, "stat": len(metrics.STATS),
                              "final_chain": c}  # fmt: skip
    np.testing.assert_array_equal(ds["chain"], np.arange(k))
    np.testing.assert_array_equal(ds["generation"], result.generations)
    assert ds["stat"].values.tolist() == list(metrics.STATS)
    for m in result.metric_names:
        assert ds[m].dims == ("chain", "generation")
        np.testing.assert_array_equal(ds[m].values, result.trajectories[m])
        assert ds[f"{m}_aggregate"].dims == ("generation", "stat")
        np.testing.assert_array_equal(
            ds[f"{m}_aggregate"].sel(stat="q50").values, result.aggregates[m]["q50"]
        )
    for name, values in result.final.items():
        np.testing.assert_array_equal(ds[f"{name}_final"].values, values)
    assert ds.attrs["family"] == result.family
    assert ds.attrs["config_seed"] == result.config.seed
    # The long table and the labelled array hold the same trajectories.
    m = result.metric_names[0]
    frame = ds[m].to_dataframe().reset_index()
    np.testing.assert_array_equal(frame[m].values, result.to_pandas()[m].values)


def test_neural_results_are_one_chain_of_their_per_generation_metrics(
    stored: tuple[collapsesim.Result, Path],
) -> None:
    result, _ = stored
    if not isinstance(result, vae.VaeResult | lm.LmResult):
        pytest.skip("a chain family")
    t = result.config.num_generations
    np.testing.assert_array_equal(result.generations, np.arange(t))
    for m, values in result.metrics.items():
        assert result.trajectories[m].shape == (1, t)
        np.testing.assert_array_equal(result.trajectories[m][0], values)
        np.testing.assert_array_equal(result.final[m], values[-1:])
        np.testing.assert_array_equal(result.aggregates[m]["mean"], values)
        np.testing.assert_array_equal(result.aggregates[m]["q95"], values)
        assert np.isnan(result.aggregates[m]["stderr"]).all()
    traj = result.to_pandas("trajectories")
    assert (traj["chain"] == 0).all()
    metrics_table = result.to_pandas("metrics")
    pd.testing.assert_frame_equal(traj.drop(columns="chain"), metrics_table)


def test_a_bad_table_name_is_a_typed_error_naming_the_tables(
    stored: tuple[collapsesim.Result, Path],
) -> None:
    result, _ = stored
    with pytest.raises(collapsesim.UnknownTableError, match="no table 'chains'") as err:
        result.to_pandas("chains")
    assert isinstance(err.value, ValueError)
    for name in result.tables:
        assert name in str(err.value)


def test_load_refuses_what_is_not_a_complete_run(tmp_path: Path) -> None:
    with pytest.raises(store.RunDirError, match=r"no readable run\.json"):
        collapsesim.load(tmp_path)
    from collapsesim.experiments import gaussian

    out = tmp_path / "killed"
    cfg = GaussianConfig(num_chains=4, num_generations=50, num_samples=10)
    steps = gaussian.iterate(cfg, out=out, block_generations=5)
    next(steps)
    next(steps)
    steps.close()
    assert store.read_json(out / store.RUN_FILE)["status"] == "running"
    with pytest.raises(store.RunDirError, match="not complete"):
        collapsesim.load(out)
    meta = store.read_json(out / store.RUN_FILE)
    store.write_json(out / store.RUN_FILE, {**meta, "status": "complete", "family": "linreg"})
    with pytest.raises(store.RunDirError, match="unknown family 'linreg'"):
        collapsesim.load(out)


def test_run_refuses_what_is_no_family_config() -> None:
    with pytest.raises(TypeError, match="no family runs a dict"):
        collapsesim.run({"num_chains": 3})


def test_import_loads_neither_numba_nor_jax() -> None:
    code = (
        "import sys, collapsesim; "
        "print(sorted(m for m in ('numba', 'jax', 'pandas', 'xarray', 'duckdb') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert {"Result", "load", "run"} <= set(collapsesim.__all__)


@pytest.mark.parametrize(
    "name", ["theory", "metrics", "store", "plots", "images", "text", "distributed", "results"]
)
def test_public_modules_export_only_their_own_api(name: str) -> None:
    module = importlib.import_module(f"collapsesim.{name}")
    for export in module.__all__:
        value = getattr(module, export)
        assert not isinstance(value, type(np)), export  # no module re-exported
    assert not {"np", "math", "special"} & set(module.__all__)
    own = {
        k
        for k, v in vars(module).items()
        if not k.startswith("_")
        and callable(v)
        and getattr(v, "__module__", None) == module.__name__
    }
    assert own <= set(module.__all__), own - set(module.__all__)
