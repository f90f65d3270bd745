"""Run directories: Parquet results written through DuckDB, provenance, checkpoints, resume.

A run directory holds, once complete::

    run.json            provenance: config, versions, git commit, threads, timings, status
    summary.json        the run's summary (what ``--json`` prints)
    aggregates.parquet  generation, metric, mean, stderr, std, min, q05..q95, max
    trajectories.parquet  chain, generation, metrics: whole trajectories of kept chains
    final.parquet       chain, generation, metrics: every chain at the last generation

While running it holds ``run.json`` (status ``running``) and ``checkpoint.npz``. Every
file is written to a temporary name and renamed into place, so a killed run never
leaves a file that looks complete; the Parquet files appear only at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CHECKPOINT_FILE",
    "RUN_FILE",
    "RunDirError",
    "atomic_write",
    "git_commit",
    "prepare_run_dir",
    "provenance",
    "read_json",
    "read_parquet",
    "write_json",
    "write_parquet",
]

RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.npz"


class RunDirError(ValueError):
    """Raised for an output directory that cannot take this run; the message is one line."""


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` by calling ``write(tmp)`` on a temporary sibling, then renaming it.

    Args:
        path: the final file.
        write: writes the whole content to the path it is given.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object."""
    return dict(json.loads(Path(path).read_text()))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_parquet(path: Path, columns: Mapping[str, np.ndarray]) -> None:
    """Write equal-length columns to a zstd-compressed Parquet file through DuckDB, atomically.

    Args:
        path: the final ``.parquet`` file.
        columns: name -> 1-D array; numeric or string arrays of one length.
    """
    import duckdb  # deferred: only runs that store results need it

    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"columns differ in length: {sorted(lengths)}")

    def write(tmp: Path) -> None:
        con = duckdb.connect()
        try:
            con.register("frame", {k: np.asarray(v) for k, v in columns.items()})
            target = str(tmp).replace("'", "''")
            con.execute(f"COPY frame TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
        finally:
            con.close()

    atomic_write(path, write)


def read_parquet(path: Path, query: str = "SELECT * FROM t") -> dict[str, np.ndarray]:
    """Run ``query`` over the Parquet file ``path`` (as table ``t``); return columns as arrays."""
    import duckdb

    con = duckdb.connect()
    try:
        source = str(path).replace("'", "''")
        con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{source}')")
        return {k: _unmasked(v) for k, v in con.execute(query).fetchnumpy().items()}
    finally:
        con.close()


def _unmasked(column: Any) -> np.ndarray:
    """A fetched column as a plain array, NULL floats as NaN.

    DuckDB stores the NaNs of the written float columns as NULL and fetches NULLs as a
    masked array, whose data under the mask is 0: unmasked naively, a NaN would load as 0.
    """
    if isinstance(column, np.ma.MaskedArray) and column.dtype.kind == "f":
        return np.asarray(column.filled(np.nan))
    return np.asarray(column)


def git_commit(start: Path | None = None) -> str | None:
    """Return the commit of the git work tree holding the package, if any."""
    where = Path(start) if start else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def provenance() -> dict[str, Any]:
    """Return versions and machine facts for ``run.json``."""
    import numba

    from . import __version__

    return {
        "collapsesim": __version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "git_commit": git_commit(),
    }


def prepare_run_dir(out: Path, config: Mapping[str, Any], *, resume: bool) -> bool:
    """Check that ``out`` can take this run; create it if needed.

    Args:
        out: the run directory.
        config: the run's configuration as stored in ``run.json``.
        resume: whether continuing a run stored there is allowed.

    Returns:
        True if ``out`` holds a matching run to resume (complete or not), False if
        the run starts afresh in an empty directory.

    Raises:
        RunDirError: ``out`` is a file, is not writable, holds something other than
        this run, or holds a run while ``resume`` is False. Nothing is overwritten.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out} exists and is not a directory")
    if not out.exists():
        try:
            out.mkdir(parents=True)
        except OSError as err:
            raise RunDirError(f"cannot create {out}: {err.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise RunDirError(f"{out} is not writable")
    entries = [p for p in out.iterdir() if not p.name.startswith(".")]
    if not entries:
        return False
    run_file = out / RUN_FILE
    if not run_file.is_file():
        raise RunDirError(f"{out} is not empty and holds no collapsesim run; choose another --out")
    if not resume:
        raise RunDirError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )
    try:
        stored = read_json(run_file).get("config")
    except (OSError, ValueError):
        raise RunDirError(f"{run_file} is unreadable; choose another --out") from None
    # Compared as JSON round-trips them (tuples come back as lists).
    if stored != json.loads(json.dumps(dict(config), default=_json_default)):
        raise RunDirError(f"{out} holds a run with a different configuration; choose another --out")
    return True
