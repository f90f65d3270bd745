"""Chain ensembles on a Dask cluster: a :class:`LocalCluster` here, or a scheduler there.

``--cluster local`` (or ``local:N``) starts N worker processes on this machine, their
Numba threads sharing its cores (workers x threads = cores); ``--cluster tcp://HOST:PORT``
or ``--cluster PATH.json`` (a scheduler file, as ``dask scheduler --scheduler-file``
writes) joins a cluster already running: on an HPC system through dask-jobqueue, in the
cloud, or started by hand. The driver (``experiments/_driver.py``) sends every batch of
chains to the cluster as one task and collects the finished batches in chain order, so
a run's results are the one-process run's, bit for bit.

Nothing here imports Dask until a cluster is asked for.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError

__all__ = ["Cluster", "ClusterError", "connect", "parse"]

CONNECT_SECONDS = 10.0
"""How long joining a scheduler may take before the run gives up."""


class ClusterError(ConfigError):
    """A cluster that cannot be started or reached; the message is one line."""


@dataclass
class Cluster:
    """A connected cluster: the Dask client, where it is, and its task slots.

    ``threads`` is the Numba threads a task uses (None: each worker's own setting, by
    default all of its host's cores); ``slots`` the tasks the cluster runs at once.
    """

    client: Any
    address: str
    threads: int | None
    local: bool

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    @property
    def slots(self) -> int:
        return max(1, self.workers)

    def describe(self) -> dict[str, Any]:
        """What run.json records of the cluster (the results do not depend on it)."""
        return {"address": self.address, "workers": self.workers, "threads": self.threads}


def parse(address: str) -> tuple[str, Any]:
    """``("local", N)``, ``("scheduler", address)`` or ``("file", path)``; ClusterError else."""
    text = address.strip()
    cores = os.cpu_count() or 1
    if text == "local":
        return "local", cores
    if text.startswith("local:"):
        count = text[len("local:") :]
        if not count.isdigit() or int(count) < 1:
            raise ClusterError(f"--cluster {address!r}: local:N needs a worker count N >= 1")
        return "local", int(count)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme not in ("tcp", "tls", "ucx", "inproc", "ws", "wss"):
            raise ClusterError(f"--cluster {address!r}: unknown protocol {scheme!r} (give "
                               "tcp://HOST:PORT, a scheduler file, local or local:N)")  # fmt: skip
        return "scheduler", text
    path = Path(text)
    if path.suffix == ".json":
        if not path.is_file():
            raise ClusterError(f"--cluster {address!r}: no scheduler file there")
        return "file", path
    raise ClusterError(f"--cluster {address!r} is neither local, local:N, tcp://HOST:PORT nor a "
                       "scheduler file (.json)")  # fmt: skip


@contextlib.contextmanager
def connect(address: str, threads: int | None = None) -> Iterator[Cluster]:
    """Start or join the cluster ``address`` (see :func:`parse`) for the block's duration.

    ``threads``: Numba threads per task; for ``local:N`` the default is cores // N (at
    least 1), set in the workers' environment before they start.

    Raises:
        ClusterError: a bad address, or a scheduler not reached in ``CONNECT_SECONDS``.
    """
    kind, where = parse(address)
    if threads is not None and threads < 1:
        raise ClusterError(f"--threads must be at least 1, got {threads}")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("--cluster needs Dask: pip install 'collapsesim[cluster]'") from None
    with contextlib.ExitStack() as stack:
        if kind == "local":
            cores = os.cpu_count() or 1
            per = threads or max(1, cores // where)
            env = {"NUMBA_NUM_THREADS": str(per), "OMP_NUM_THREADS": "1",
                   "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip
            local = LocalCluster(
                n_workers=where,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # a free port: clusters side by side do not clash
                env=env,
            )
            stack.enter_context(local)
            client = stack.enter_context(Client(local))
            _check_versions(client, address)
            yield Cluster(client, f"local:{where}", per, True)
            return
        try:
            if kind == "file":
                client = Client(scheduler_file=str(where), timeout=CONNECT_SECONDS)
            else:
                client = Client(where, timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError, ValueError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ClusterError(f"--cluster {address!r}: cannot reach the scheduler ({first})"
                               ) from None  # fmt: skip
        stack.enter_context(client)
        _check_versions(client, address)
        yield Cluster(client, str(address), threads, False)


def _version() -> str:
    from importlib.metadata import version

    return version("collapsesim")


def _check_versions(client: Any, address: str) -> None:
    """ClusterError unless every worker runs this collapsesim (or none is there yet)."""
    mine = _version()
    theirs = set(client.run(_version).values())
    if theirs - {mine}:
        raise ClusterError(f"--cluster {address!r}: the workers run collapsesim "
                           f"{', '.join(sorted(theirs - {mine}))}, this process {mine}")  # fmt: skip
