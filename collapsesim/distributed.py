"""Runs over several hosts with ``jax.distributed``: joining the cluster, and who writes.

Every process of a multi-host run executes the same command. Chains are sharded over
the devices of all processes (``jax.devices()``); each process feeds and computes its
own shard, and the results are gathered so that every process holds the whole run.
Process 0 alone writes ``--out`` and prints; the others read the run directory only to
resume, so it must lie on a filesystem every process sees.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DistributedError",
    "agree",
    "host",
    "initialize",
    "is_writer",
    "process_count",
    "smallest",
]

_STATE = {"index": 0, "count": 1}


class DistributedError(RuntimeError):
    """Raised when joining a multi-host run fails or its processes disagree; one line."""


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> tuple[int, int]:
    """Join a multi-host JAX run; return ``(process index, process count)``.

    Arguments left None are detected from the cluster environment (SLURM, Open MPI,
    Cloud TPU and the others ``jax.distributed`` knows) or, for the coordinator, from
    ``JAX_COORDINATOR_ADDRESS``. Must run before any JAX computation. On CPU the
    processes exchange data with gloo.

    Raises:
        DistributedError: bad arguments, or the cluster could not be joined.
    """
    if num_processes is not None and num_processes < 1:
        raise DistributedError(f"--num-processes must be at least 1, got {num_processes}")
    if process_id is not None and (
        process_id < 0 or (num_processes is not None and process_id >= num_processes)
    ):
        raise DistributedError(
            f"--process-id must lie in [0, --num-processes), got {process_id} of {num_processes}"
        )
    import jax

    _native_stdout_to_stderr()
    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=num_processes,
            process_id=process_id,
        )
    except (ValueError, TypeError, RuntimeError) as err:  # XLA errors are RuntimeErrors
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DistributedError(f"could not join the multi-host run: {first}") from None
    _STATE["index"], _STATE["count"] = int(jax.process_index()), int(jax.process_count())
    return _STATE["index"], _STATE["count"]


def _native_stdout_to_stderr() -> None:
    """Send what native libraries print (gloo announces its peers) to stderr.

    File descriptor 1 becomes a copy of 2, and Python's ``sys.stdout`` moves to a new
    descriptor for the real stdout, so ``--json`` output stays one clean object.
    """
    import os
    import sys

    try:
        sys.stdout.flush()
        real = os.dup(1)
        os.dup2(2, 1)
    except OSError:
        return
    sys.stdout = os.fdopen(real, "w", buffering=1, encoding=sys.stdout.encoding or "utf-8")


def process_count() -> int:
    """Processes in this run (1 unless :func:`initialize` joined a cluster)."""
    return _STATE["count"]


def is_writer() -> bool:
    """Whether this process writes results and prints (process 0, or a lone process)."""
    return _STATE["index"] == 0


def agree(values: dict[str, int], what: str) -> None:
    """Check that every process holds the same small integers; DistributedError if not.

    ``what`` names them in the error (for example where a resumed run restarts).
    """
    if process_count() == 1:
        return
    import numpy as np
    from jax.experimental import multihost_utils

    mine = np.array(list(values.values()), np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine)).reshape(process_count(), -1)
    if not (every == every[0]).all():
        raise DistributedError(
            f"the processes disagree on the {what} ({every.tolist()} by process, "
            f"keys {list(values)}); --out must lie on a filesystem every process shares"
        )


def smallest(value: int) -> int:
    """The smallest of ``value`` over all processes (each must call this at the same point)."""
    if process_count() == 1:
        return value
    import numpy as np
    from jax.experimental import multihost_utils

    return int(np.min(multihost_utils.process_allgather(np.array([value], np.int32))))


def host(x: Any) -> Any:
    """A JAX array as a NumPy array on this host, gathered from all processes if need be."""
    import numpy as np

    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
