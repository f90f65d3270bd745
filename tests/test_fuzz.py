"""A property-based fuzz of every command's options: exit 0 or 2, never a traceback.

Each example gives one option of one command a value drawn from hostile and ordinary
ones (huge and negative integers, NaN and infinities, empty and random text, paths that
are missing, directories or damaged files) beside small run sizes. Whatever comes out,
the command exits 0 or 2; on 2 it prints one line and no traceback; on 0 with ``--json``
stdout is one JSON object. Examples are derandomised (the same every session) and
bounded so the file runs in well under a minute.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapsesim.cli import main
from collapsesim.families import FAMILIES

# Examples of the chain fuzz: bounded for the default session; FUZZ_EXAMPLES=2000 for a
# longer hunt.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
SMALL = {
    "gaussian": ["--chains", "20", "--generations", "6", "--samples", "10"],
    "mixture": ["--chains", "6", "--generations", "3", "--samples", "30", "--heldout", "50"],
    "tokens": ["--chains", "20", "--generations", "6", "--samples", "30", "--categories", "50"],
    "mvgaussian": ["--chains", "6", "--generations", "4", "--samples", "12", "--dim", "3"],
    "regression": ["--chains", "6", "--generations", "4", "--samples", "40", "--dim", "5"],
    "kde": ["--chains", "6", "--generations", "3", "--samples", "20", "--heldout", "8"],
}
INTS: list[Any] = [-1, 0, 1, 2, 3, 7, 2**31, 2**63, 2**64, 10**30, "x", "", "1.5", "1e3"]
FLOATS: list[Any] = [
    "nan", "inf", "-inf", 1e300, -1e300, 1e-300, -0.0, 0.0, -1.0, 0.5, 1.0, 2.0, 1e20, "x", "",
]  # fmt: skip
TEXTS: list[Any] = ["", " ", "x", "replace", "accumulate", "fresh", "keep-original",
                    "accumulate-subsample", "sample", "sufficient", "auto", "jax", "numba",
                    "float32", "full", "diag", "warm", "kmeans++", "zipf", "uniform",
                    "standard", "nature", "two", "\u00e9\u00e8", "-1", "1e3",
                    "PATH:missing", "PATH:dir", "PATH:empty", "PATH:junk", "PATH:json-object",
                    "PATH:npy-object", "PATH:weights"]  # fmt: skip
# Values legal for these fields but long to run at the sizes above.
SLOW = {"num_generations", "num_samples", "num_chains", "max_iter", "heldout", "categories",
        "keep_chains", "record_every", "dim", "num_components"}  # fmt: skip


def _options(family: str) -> list[tuple[str, str, list[Any]]]:
    """(flag, field, values) of each option of a chain family."""
    out = []
    for f in dataclasses.fields(FAMILIES[family].config):
        if not f.metadata.get("cli", True) or f.type == "bool":
            continue
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        if f.type == "int":
            values = [v for v in INTS if not (f.name in SLOW and isinstance(v, int) and v > 7)]
        elif f.type == "float":
            values = FLOATS
        else:
            values = TEXTS
        out.append((flag, f.name, values))
    return out


def _materialise(value: Any, where: Path) -> str:
    """A value as the command line gets it, making the files that PATH: values name."""
    if not isinstance(value, str) or not value.startswith("PATH:"):
        return str(value)
    kind = value[5:]
    path = where / f"f-{kind}"
    if kind == "dir":
        path.mkdir(exist_ok=True)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "junk":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "json-object":
        path.write_text('{"a": 1, "b": 2}')
    elif kind == "npy-object":
        import numpy as np

        np.save(path.with_suffix(".npy"), np.array({"a": 1}, dtype=object), allow_pickle=True)
        path = path.with_suffix(".npy")
    elif kind == "weights":
        path.write_text("3 2 1 1")
    return str(path)


def _invoke(args: list[str]) -> tuple[int, str, str]:
    """Run the console script's ``main`` on ``args``: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["collapsesim", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 (any other exception is a traceback: report it)
        err.write(traceback.format_exc())
        code = -1
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def _check(args: list[str]) -> int:
    code, out, err = _invoke(args)
    assert code in (0, 2), (args, code, out, err)
    assert "Traceback" not in out + err, (args, err)
    if code == 2:
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("Warning:")]
        assert len(lines) == 1, (args, err)
        assert not out.strip(), (args, out)
    elif "--json" in args:
        assert isinstance(json.loads(out.strip()), dict), (args, out)
    return code


@st.composite
def _chain_case(draw: Any) -> tuple[str, list[tuple[str, Any]]]:
    family = draw(st.sampled_from(sorted(SMALL)))
    options = _options(family)
    chosen = draw(
        st.lists(st.sampled_from(options), min_size=1, max_size=2, unique_by=lambda o: o[0])
    )
    return family, [(flag, draw(st.sampled_from(values))) for flag, _, values in chosen]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(case=_chain_case(), as_json=st.booleans())
def test_chain_commands_never_trace_back(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[str, list[tuple[str, Any]]], as_json: bool
) -> None:
    family, options = case
    where = tmp_path_factory.mktemp("fuzz")
    args = [family, *SMALL[family]]
    for flag, value in options:
        args += [flag, _materialise(value, where)]
    _check(args + (["--json"] if as_json else []))


RUN_VALUES: list[tuple[str, Any]] = [
    ("--threads", v) for v in (-1, 0, 10**30, "x")
] + [("--checkpoint-every", v) for v in ("nan", "-1", "inf", "x")] + [
    ("--cluster", v) for v in ("x", "local:0", "udp://h:1")
] + [
    ("--out", "PATH:junk"), ("--out", "PATH:dotfiles"), ("--plot", "/proc/x.png"),
    ("--plot", "PATH:junk"), ("--plot", "x.txt"), ("--resume", None),
]  # fmt: skip


@pytest.mark.parametrize(("flag", "value"), RUN_VALUES)
@pytest.mark.parametrize("family", sorted(SMALL))
def test_run_options_never_trace_back(tmp_path: Path, family: str, flag: str, value: Any) -> None:
    args = [family, *SMALL[family], "--json"]
    if value is None:
        args.append(flag)
    elif value == "PATH:dotfiles":
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / ".hidden").write_text("x")
        args += [flag, str(tmp_path / "d")]
    else:
        args += [flag, _materialise(value, tmp_path)]
    _check(args)


SCAN_VALUES = ["1e3", "10,x", ",", "5,5", "10,20", "-1,10", "nan,10", "2**63,10", "10,1e30", ""]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(samples=st.sampled_from(SCAN_VALUES), other=st.sampled_from([*SCAN_VALUES, None]),
       family=st.sampled_from(["gaussian", "mixture", "tokens"]))  # fmt: skip
def test_scan_grids_never_trace_back(samples: str, other: str | None, family: str) -> None:
    args = ["scan", family, "--samples", samples, "--chains", "6", "--generations", "3"]
    if other is not None:
        args += ["--fresh-fraction" if family != "mixture" else "--keep-fraction", other]
    _check([*args, "--json"])


# The neural commands: values that must be refused before any training starts.
NEURAL_BAD = [
    ("vae", "--latent", str(10**30)), ("vae", "--epochs", str(10**30)), ("vae", "--latent", "0"),
    ("vae", "--widths", "1,2,3"), ("vae", "--widths", "0,5"), ("vae", "--widths", "x"),
    ("vae", "--batch-size", "-1"), ("vae", "--learning-rate", "nan"), ("vae", "--data", ""),
    ("vae", "--data", "PATH:junk"), ("vae", "--generations", "0"), ("vae", "--seed", "-1"),
    ("vae", "--train-size", str(10**12)), ("vae", "--fresh-fraction", "2"),
    ("lm", "--width", str(10**30)), ("lm", "--width", "30"), ("lm", "--heads", "0"),
    ("lm", "--corpus", ""), ("lm", "--corpus", "PATH:dir"), ("lm", "--corpus", "PATH:junk"),
    ("lm", "--corpus", "PATH:empty"), ("lm", "--top-p", "nan"), ("lm", "--temperature", "0"),
    ("lm", "--tokenizer", "x"), ("lm", "--bpe-merges", "-1"), ("lm", "--block", "0"),
    ("lm", "--epochs", str(10**30)), ("lm", "--width", "16384", ), ("lm", "--preset", "nope"),
]  # fmt: skip


@pytest.mark.parametrize(("command", "flag", "value"), NEURAL_BAD)
def test_neural_commands_refuse_bad_values_in_one_line(
    tmp_path: Path, command: str, flag: str, value: str
) -> None:
    args = [command, flag, _materialise(value, tmp_path)]
    if command == "lm" and flag == "--width" and value == "16384":
        args += ["--layers", "1000", "--batch-size", "100000"]  # beyond any machine's memory
    assert _check(args) == 2, args
