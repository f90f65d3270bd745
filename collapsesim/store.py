"""Run directories: Parquet results written through DuckDB, provenance, checkpoints, resume.

A run directory holds, once complete::

    run.json            provenance: config, versions, git commit, threads, timings, status
    summary.json        the run's summary (what ``--json`` prints)
    aggregates.parquet  generation, metric, mean, stderr, std, min, q05..q95, max
    trajectories.parquet  chain, generation, metrics: whole trajectories of kept chains
    final.parquet       chain, generation, metrics: every chain at the last generation

While running it holds ``run.json`` (status ``running``) and ``checkpoint.npz``. Every
file is written to a temporary name (``.NAME.XXXX.tmp``) and renamed into place, so a
killed run never leaves a file that looks complete; the Parquet files appear only at the
end, and the temporary files a killed run left are removed when the directory is next
opened. One process at a time writes a run directory: :func:`lock_run_dir` holds an
exclusive lock on ``.collapsesim.lock`` (the operating system drops it when the process
dies, so a killed run's lock never blocks ``--resume``).

Every failure to read or write a run directory's files is a :class:`RunDirError` with a
one-line message naming the file and what to do, a full disk included.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import re
import socket
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CHECKPOINT_FILE",
    "RUN_FILE",
    "DiskFullError",
    "RunDirError",
    "atomic_write",
    "git_commit",
    "load_npz",
    "lock_run_dir",
    "prepare_run_dir",
    "provenance",
    "read_json",
    "read_parquet",
    "remove_leftovers",
    "write_json",
    "write_parquet",
]

RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.npz"
LOCK_FILE = ".collapsesim.lock"
HOLDER_FILE = ".collapsesim.holder"  # who holds the lock: pid, host, since when
_OWN = (LOCK_FILE, HOLDER_FILE)


class RunDirError(ValueError):
    """Raised for an output directory that cannot take this run; the message is one line."""


class DiskFullError(RunDirError):
    """Raised when a file of a run cannot be written for want of space (or quota)."""


_FULL = (errno.ENOSPC, errno.EDQUOT)


def _write_failed(path: Path, err: BaseException) -> RunDirError:
    """The one-line error for a failed write of ``path``."""
    code = getattr(err, "errno", None)
    if code in _FULL or "No space left" in str(err) or "Disk quota" in str(err):
        return DiskFullError(
            f"no space left on the device writing {path}; what was stored is intact: "
            "free some space and rerun with --resume"
        )
    why = getattr(err, "strerror", None) or str(err).splitlines()[0]
    return RunDirError(f"cannot write {path}: {why}")


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` by calling ``write(tmp)`` on a temporary sibling, then renaming it.

    Args:
        path: the final file.
        write: writes the whole content to the path it is given.

    Raises:
        RunDirError: the file cannot be written (:class:`DiskFullError` for a full disk);
            ``path`` is then as it was.
    """
    path = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _write_failed(path, err) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise _write_failed(path, err) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


_LEFTOVER = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # tempfile.mkstemp's names


def _is_leftover(p: Path) -> bool:
    """Whether ``p`` is a temporary file :func:`atomic_write` left (``.NAME.XXXXXXXX.tmp``)."""
    return bool(_LEFTOVER.match(p.name)) and p.is_file()


def remove_leftovers(out: Path) -> None:
    """Remove the temporary files a killed write left in ``out`` and its subdirectories."""
    for p in [*Path(out).glob(".*.tmp"), *Path(out).glob("*/.*.tmp")]:
        if _is_leftover(p):
            with contextlib.suppress(OSError):
                p.unlink()


@contextlib.contextmanager
def lock_run_dir(out: Path) -> Iterator[None]:
    """Hold the exclusive lock of the run directory ``out`` (created if need be).

    Raises:
        RunDirError: another process holds it (the message names that process), or
            ``out`` cannot hold a lock file.
    """
    import filelock

    out = Path(out)
    _make_dir(out)
    lock = filelock.FileLock(str(out / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise RunDirError(f"{out} is in use by {_holder(out)}; wait for it to finish or choose "
                          "another --out") from None  # fmt: skip
    except OSError as err:
        raise RunDirError(f"cannot lock {out}: {err.strerror or err}") from None
    try:
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        with contextlib.suppress(RunDirError):  # the lock holds without it
            write_json(out / HOLDER_FILE, holder)
        yield
    finally:
        with contextlib.suppress(OSError):
            (out / HOLDER_FILE).unlink()
        # The lock file stays: unlinking it would let a process that opened it before the
        # unlink lock the old file while another locks a new one.
        lock.release()


def _holder(out: Path) -> str:
    """Who holds the lock of ``out``, as a phrase."""
    try:
        h = json.loads((out / HOLDER_FILE).read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(h["since"])))
        return f"another collapsesim run (process {int(h['pid'])} on {h['host']}, since {since})"
    except (OSError, ValueError, TypeError, KeyError):
        return "another collapsesim run"


def _make_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out} exists and is not a directory")
    if not out.exists():
        try:
            out.mkdir(parents=True)
        except OSError as err:
            raise RunDirError(f"cannot create {out}: {err.strerror}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object.

    Raises:
        RunDirError: the file is missing, unreadable, or holds no JSON object.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        why = getattr(err, "strerror", None) or "not valid JSON"
        raise RunDirError(f"{path} is damaged ({why})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path} is damaged (it holds {type(data).__name__}, not an object)")
    return data


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file ``path``.

    Raises:
        RunDirError: the file is missing, truncated or not an ``.npz`` of plain arrays.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise RunDirError(f"{path} is damaged (not a file)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError, AttributeError):
        raise RunDirError(f"{path} is damaged (not a readable .npz file)") from None


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
        except duckdb.IOException as err:  # a full disk, say: as the OSError it is
            raise OSError(str(err)) from None
        finally:
            con.close()

    atomic_write(path, write)


def read_parquet(path: Path, query: str = "SELECT * FROM t") -> dict[str, np.ndarray]:
    """Run ``query`` over the Parquet file ``path`` (as table ``t``); return columns as arrays."""
    import duckdb

    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path} is missing")
    con = duckdb.connect()
    try:
        source = str(path).replace("'", "''")
        con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{source}')")
        return {k: _unmasked(v) for k, v in con.execute(query).fetchnumpy().items()}
    except duckdb.Error:
        raise RunDirError(f"{path} is damaged (not a readable Parquet file)") from None
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
    _make_dir(out)
    if not os.access(out, os.W_OK | os.X_OK):
        raise RunDirError(f"{out} is not writable")
    entries = [p for p in out.iterdir() if p.name not in _OWN and not _is_leftover(p)]
    if not entries:
        remove_leftovers(out)
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
    except RunDirError as err:
        raise RunDirError(f"{err}; move the directory aside or choose another --out") from None
    # Compared as JSON round-trips them (tuples come back as lists).
    if stored != json.loads(json.dumps(dict(config), default=_json_default)):
        raise RunDirError(f"{out} holds a run with a different configuration; choose another --out")
    remove_leftovers(out)  # what a killed write of this run left
    return True
