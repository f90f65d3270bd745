"""The JAX backend: exact theory by z-score, agreement with Numba in distribution,
chunking and sharding invariance, and the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from collapsesim import theory
from collapsesim.config import ConfigError, GaussianConfig
from collapsesim.experiments import gaussian as runner
from collapsesim.jaxchains import gaussian as jg

cli = CliRunner()


def _run(c, t, n, *, regime=0, num_real=0, sufficient=True, dtype="float64", seed=0, chunk=2**20):  # type: ignore[no-untyped-def]
    st = jg.init_state(c, 0.0, 1.0)
    slots = np.full(t, -1)
    slots[-1] = 0
    mu, ls = np.zeros((c, 1)), np.zeros((c, 1))
    jg.advance(
        st, seed, np.arange(c), 0, t, slots, mu, ls, num_samples=n, ddof=0, regime=regime,
        num_real=num_real, sufficient=sufficient, mu0=0.0, sigma0=1.0, dtype=dtype, chunk=chunk,
    )  # fmt: skip
    return mu[:, 0], ls[:, 0]


@pytest.mark.parametrize(
    ("sufficient", "dtype"), [(True, "float64"), (True, "float32"), (False, "float64")]
)
def test_replace_matches_exact_theory(sufficient: bool, dtype: str) -> None:
    c, t, n = 20000, 100, 50
    _, ls = _run(c, t, n, sufficient=sufficient, dtype=dtype, seed=11)
    elog = float(theory.mean_log_std(t, n, 0, 1.0, "replace"))
    slog = float(theory.std_log_std(t, n, 0, "replace"))
    assert abs(ls.mean() - elog) / (slog / math.sqrt(c)) < 4
    e1 = float(theory.moment_std(1, t, n, 0, 1.0, "replace"))
    e2 = float(theory.moment_std(2, t, n, 0, 1.0, "replace"))
    sig = np.exp(ls)
    assert abs(sig.mean() - e1) / math.sqrt((e2 - e1 * e1) / c) < 4


def test_float32_log_scale_survives_ten_thousand_generations() -> None:
    # sigma falls far below float32's smallest normal number; log sigma stays exact.
    c, t, n = 1000, 10_000, 20
    _, ls = _run(c, t, n, dtype="float32", seed=2)
    assert np.all(np.isfinite(ls))
    elog = float(theory.mean_log_std(t, n, 0, 1.0, "replace"))
    slog = float(theory.std_log_std(t, n, 0, "replace"))
    assert elog < -200  # sigma ~ 1e-100: zero in float32
    assert abs(ls.mean() - elog) / (slog / math.sqrt(c)) < 4


@pytest.mark.parametrize("regime", ["fresh", "keep-original", "accumulate", "accumulate-subsample"])
def test_pooled_regimes_agree_with_numba_in_distribution(regime: str) -> None:
    # The JAX subsample pools are the slow case (19 s at 3000 chains): 1000 chains there;
    # the tolerance is the two runs' Monte Carlo standard error either way.
    chains = 1000 if regime == "accumulate-subsample" else 3000
    kw = {"num_chains": chains, "num_generations": 40, "num_samples": 30, "regime": regime}
    a = runner.run(GaussianConfig(**kw, seed=1)).final["log_sigma"]
    b = runner.run(GaussianConfig(**kw, seed=2, backend="jax")).final["log_sigma"]
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    assert abs(a.mean() - b.mean()) / se < 4


def test_chunks_do_not_change_a_chain() -> None:
    a = _run(50, 30, 20, seed=4)
    b = _run(50, 30, 20, seed=4, chunk=7)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])


def test_block_width_does_not_change_a_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sufficient method's blocks of generations (1 to 64 wide) change no value."""
    a = _run(50, 70, 20, seed=4, dtype="float32")
    for width in (1, 8, 64):
        monkeypatch.setattr(jg, "_width", lambda *args, w=width: w)
        b = _run(50, 70, 20, seed=4, dtype="float32")
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("sufficient", [False, True])
def test_sharded_over_two_devices_equals_one_device(tmp_path: Path, sufficient: bool) -> None:
    code = (
        "import numpy as np, jax, sys; sys.path.insert(0, sys.argv[2]);"
        "from tests.test_jax import _run; assert len(jax.local_devices()) == 2;"
        f"mu, ls = _run(61, 25, 15, seed=8, sufficient={sufficient});"
        "np.savez(sys.argv[1], mu=mu, ls=ls)"
    )
    out = tmp_path / "two.npz"
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "2", "JAX_PLATFORMS": "cpu"}
    root = str(Path(__file__).resolve().parents[1])
    subprocess.run([sys.executable, "-c", code, str(out), root], env=env, check=True, cwd=root)
    mu, ls = _run(61, 25, 15, seed=8, sufficient=sufficient)
    with np.load(out) as two:
        np.testing.assert_array_equal(two["ls"], ls)
        np.testing.assert_array_equal(two["mu"], mu)


def test_cli_backend_jax_and_bad_input() -> None:
    quick = ["gaussian", "--chains", "200", "--generations", "20", "--samples", "30"]
    res = cli.invoke(app_(), [*quick, "--backend", "jax", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["backend"] == "jax"
    assert data["theory_mean_final_std"] is not None
    res = cli.invoke(app_(), [*quick, "--backend", "jax", "--precision", "float16"])
    assert res.exit_code == 2
    assert "unknown precision" in res.output
    res = cli.invoke(app_(), [*quick, "--backend", "cuda"])
    assert res.exit_code == 2
    assert "unknown backend" in res.output
    with pytest.raises(ConfigError, match="unknown precision"):
        GaussianConfig(backend="jax", precision="float16")


def app_():  # type: ignore[no-untyped-def]
    from collapsesim.cli import app

    return app


def _tokens(c, t, n, p0, seed=0, **kw):  # type: ignore[no-untyped-def]
    from collapsesim.jaxchains import tokens as jt

    st = jt.init_state(c, len(p0), kw.get("num_real", 0))
    rec = np.zeros((c, t, 8))
    jt.advance(
        st, seed, np.arange(c), 0, t, np.arange(t), rec, num_samples=n,
        regime=kw.pop("regime", 0), num_real=kw.pop("num_real", 0), p0=p0, dtype="float64", **kw,
    )  # fmt: skip
    return rec, st


def test_jax_tokens_follow_wright_fisher() -> None:
    p0 = 1 / np.arange(1, 21)
    p0 /= p0.sum()
    c, n = 4000, 30
    rec, st = _tokens(c, 40, n, p0, seed=3)
    gens = np.array([1, 10, 40])
    het = theory.token_heterozygosity(gens, n, p0)
    sup, fix = theory.token_support_fixation(gens, n, p0)
    for g, h, s, f in zip(gens, het, sup, fix, strict=True):
        col = rec[:, g - 1]
        assert abs(col[:, 0].mean() - h) / (col[:, 0].std() / math.sqrt(c)) < 4
        assert abs(col[:, 2].mean() - s) / (col[:, 2].std() / math.sqrt(c)) < 4
        frac = np.mean((st["fixed_at"] > 0) & (st["fixed_at"] <= g))
        assert abs(frac - f) < 4 * math.sqrt(max(f * (1 - f), 1e-12) / c) + 1e-12


@pytest.mark.parametrize("regime", ["fresh", "accumulate-subsample"])
def test_jax_tokens_agree_with_numba_under_decoding(regime: str) -> None:
    from collapsesim.config import TokenConfig
    from collapsesim.experiments import tokens as trun

    kw = {
        "num_chains": 1500,
        "num_generations": 15,
        "num_samples": 80,
        "categories": 60,
        "regime": regime,
        "temperature": 0.9,
        "top_p": 0.95,
    }
    a = trun.run(TokenConfig(**kw, seed=1)).final["tail10"]
    b = trun.run(TokenConfig(**kw, seed=2, backend="jax")).final["tail10"]
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    assert abs(a.mean() - b.mean()) / se < 4


def test_jax_decode_matches_numba_decode() -> None:
    import jax

    from collapsesim.jaxchains import tokens as jt
    from collapsesim.kernels import categorical as ct

    rng = np.random.default_rng(0)
    for p in (rng.dirichlet(np.ones(30)), np.full(30, 1 / 30)):
        for tau, k, top in ((1.0, 0, 1.0), (0.7, 0, 1.0), (1.0, 5, 1.0), (1.3, 12, 0.8)):
            with jax.enable_x64(True):
                ours = np.asarray(jt.decode(jax.numpy.asarray(p), tau, k, top))
            np.testing.assert_allclose(ours, ct.decode(p, tau, k, top), rtol=1e-12, atol=1e-15)


def test_token_chains_sharded_over_two_devices_equal_one_device(tmp_path: Path) -> None:
    code = (
        "import numpy as np, jax, sys; sys.path.insert(0, sys.argv[2]);"
        "from tests.test_jax import _tokens; assert len(jax.local_devices()) == 2;"
        "p0 = np.arange(1, 16.0) ** -1; p0 /= p0.sum();"
        "rec, st = _tokens(37, 12, 20, p0, seed=5, temperature=0.9);"
        "np.savez(sys.argv[1], rec=rec, counts=st['counts'])"
    )
    out = tmp_path / "two.npz"
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "2", "JAX_PLATFORMS": "cpu"}
    root = str(Path(__file__).resolve().parents[1])
    subprocess.run([sys.executable, "-c", code, str(out), root], env=env, check=True, cwd=root)
    p0 = np.arange(1, 16.0) ** -1
    p0 /= p0.sum()
    rec, st = _tokens(37, 12, 20, p0, seed=5, temperature=0.9)
    with np.load(out) as two:
        np.testing.assert_array_equal(two["counts"], st["counts"])
        np.testing.assert_array_equal(two["rec"], rec)


def _parquets(out: Path) -> dict[str, dict[str, np.ndarray]]:
    from collapsesim import store

    return {p.name: store.read_parquet(p) for p in sorted(out.glob("*.parquet"))}


def _assert_same_run(a: Path, b: Path) -> None:
    pa, pb = _parquets(a), _parquets(b)
    assert sorted(pa) == sorted(pb)
    assert pa
    for name in pa:
        for col in pa[name]:
            np.testing.assert_array_equal(pa[name][col], pb[name][col], err_msg=f"{name}:{col}")


@pytest.mark.parametrize("family", ["gaussian", "tokens"])
def test_jax_run_resumes_mid_batch(family: str, tmp_path: Path) -> None:
    from collapsesim.config import TokenConfig
    from collapsesim.experiments import _common
    from collapsesim.experiments import tokens as token_runner

    if family == "gaussian":
        mod, cfg = runner, GaussianConfig(
            num_chains=9, num_generations=60, num_samples=20, record_every=5, backend="jax",
            method="sample", regime="fresh",
        )  # fmt: skip
    else:
        mod, cfg = token_runner, TokenConfig(
            num_chains=9, num_generations=60, num_samples=40, categories=12, record_every=5,
            backend="jax", regime="keep-original", temperature=0.8,
        )  # fmt: skip
    opts = {"block_generations": 10, "batch_chains": 5, "checkpoint_seconds": 0.0}
    steps = mod.iterate(cfg, out=tmp_path / "killed", **opts)
    for i, _ in enumerate(steps):
        if i == 8:  # second batch, mid-way
            break
    steps.close()
    with np.load(tmp_path / "killed" / "checkpoint.npz") as ck:
        assert int(ck["batch"]) == 1
        assert 0 < int(ck["generation"]) < 60
    _common.drain(mod.iterate(cfg, out=tmp_path / "killed", resume=True, **opts))
    _common.drain(mod.iterate(cfg, out=tmp_path / "whole", **opts))
    _assert_same_run(tmp_path / "killed", tmp_path / "whole")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


def _two_processes(args: list[str], tmp_path: Path) -> tuple[str, str]:
    """Run the CLI as a two-process jax.distributed run (two CPU devices each)."""
    port = _free_port()
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "2", "JAX_PLATFORMS": "cpu"}
    root = str(Path(__file__).resolve().parents[1])
    cmd = [sys.executable, "-c", "from collapsesim.cli import main; main()", *args]
    cluster = ["--coordinator", f"localhost:{port}", "--num-processes", "2"]
    procs = [
        subprocess.Popen(
            [*cmd, *cluster, "--process-id", str(i)],
            env=env,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 0)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    return outs[1][0], outs[0][0]  # stdout of process 0, of process 1


def test_two_process_run_equals_one_process(tmp_path: Path) -> None:
    quick = ["--chains", "13", "--generations", "15", "--record-every", "3", "--backend", "jax"]
    g = ["gaussian", *quick, "--samples", "12", "--method", "sample", "--json"]
    first, second = _two_processes(g, tmp_path)
    assert second == ""  # only process 0 prints
    alone = cli.invoke(app_(), g)
    assert alone.exit_code == 0, alone.output
    timing = ("seconds", "kernel_seconds")
    many = {k: v for k, v in json.loads(first).items() if k not in timing}
    one = {k: v for k, v in json.loads(alone.stdout).items() if k not in timing}
    assert many == one
    t = ["tokens", *quick, "--samples", "30", "--categories", "20", "--temperature", "0.9"]
    first, second = _two_processes([*t, "--out", str(tmp_path / "two")], tmp_path)
    assert second == ""
    assert "Results in" in first
    assert cli.invoke(app_(), [*t, "--out", str(tmp_path / "one")]).exit_code == 0
    _assert_same_run(tmp_path / "two", tmp_path / "one")


def test_distributed_options_bad_input() -> None:
    quick = ["gaussian", "--chains", "10", "--generations", "5", "--samples", "10"]
    res = cli.invoke(app_(), [*quick, "--coordinator", "localhost:1"])
    assert res.exit_code == 2
    assert "need --backend jax" in res.output
    res = cli.invoke(
        app_(), [*quick, "--backend", "jax", "--num-processes", "2", "--process-id", "2"]
    )
    assert res.exit_code == 2
    assert "--process-id must lie in [0, --num-processes)" in res.output
    res = cli.invoke(app_(), [*quick, "--backend", "jax", "--num-processes", "0"])
    assert res.exit_code == 2
    assert "at least 1" in res.output
